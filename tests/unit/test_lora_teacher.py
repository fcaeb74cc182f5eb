"""The LoRA teacher (issue 25 §2): every kind on the actor's shared base weights, on a tiny Qwen3 with peft.

  * ``ema`` at rate 1 equals ``live`` and at rate 0 the initial adapter, bit for bit (logits under
    ``AdapterEMA.swapped_in``), and the actor's own adapters come back bit for bit after the swap;
  * ``base`` = peft's ``disable_adapter`` (verl's ``no_lora_adapter`` context) equals the model without peft;
  * the adapter EMA's checkpoint: save, rotate, load verified (names, shapes, dtype, finiteness);
  * the `hf` rollout's adapter sync: the server's merge equals peft's ``merge_and_unload``.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.utils.save_and_load import get_peft_model_state_dict

from srpo_verl.rollout.hf import lora as hf_lora
from srpo_verl.verl_ext.adapter_teacher import AdapterEMA, adapter_shards

VOCAB = 61


def tiny_qwen3(seed: int = 0) -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                         tie_word_embeddings=False, attn_implementation="eager")
    return Qwen3ForCausalLM(config).float().eval()


def lora_model(seed: int = 0) -> torch.nn.Module:
    """verl's FSDP engine's adapter (``_build_lora_module``): task CAUSAL_LM, all-linear, no bias."""
    torch.manual_seed(seed + 1)
    return get_peft_model(tiny_qwen3(seed), LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=16,
                                                       target_modules="all-linear", bias="none"))


INPUT = torch.tensor([[3, 17, 5, 40, 2, 9, 11, 58]])


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUT).logits


def train(model: torch.nn.Module, steps: int = 3) -> None:
    """Adam steps on the adapters (peft's init has B = 0: the first step makes the adapter matter)."""
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    for step in range(steps):
        torch.manual_seed(100 + step)
        target = torch.randint(0, VOCAB, INPUT.shape)
        loss = torch.nn.functional.cross_entropy(model(input_ids=INPUT).logits.flatten(0, 1), target.flatten())
        optim.zero_grad()
        loss.backward()
        optim.step()


@pytest.fixture()
def trained():
    """(initial model, ema built from it at init, the model after 3 steps)."""
    model = lora_model()
    initial = copy.deepcopy(model)
    ema = AdapterEMA(model)
    train(model)
    return initial, ema, model


def test_the_adapters_are_the_trainable_parameters_only():
    shards = adapter_shards(lora_model())
    assert shards and all(".lora_A." in n or ".lora_B." in n for n in shards)
    # 2 layers x 7 linear modules x (A, B)
    assert len(shards) == 28
    ema = AdapterEMA(lora_model())
    assert ema.nbytes == sum(t.numel() * 4 for t in shards.values())


def test_ema_rate_1_is_live_bit_for_bit_and_the_actor_is_restored(trained):
    initial, ema, model = trained
    live = logits(model)
    own = {n: t.clone() for n, t in adapter_shards(model).items()}
    assert not torch.equal(live, logits(initial)), "training did not move the adapter"
    result = ema.update(model, 1.0)
    assert result.applied and result.max_abs_delta > 0
    with ema.swapped_in(model):
        teacher = logits(model)
    assert torch.equal(teacher, live)
    assert all(torch.equal(adapter_shards(model)[n], t) for n, t in own.items())


def test_ema_rate_0_is_the_initial_adapter_bit_for_bit(trained):
    initial, ema, model = trained
    live = logits(model)
    result = ema.update(model, 0.0)
    assert result.applied
    with ema.swapped_in(model):
        teacher = logits(model)
    assert torch.equal(teacher, logits(initial))
    assert not torch.equal(teacher, live)
    assert torch.equal(logits(model), live), "the actor's adapters were not restored"


def test_an_intermediate_rate_lerps_the_adapters(trained):
    initial, ema, model = trained
    ema.update(model, 0.25)
    for name, actor in adapter_shards(model).items():
        start = adapter_shards(initial)[name]
        torch.testing.assert_close(ema.tensors[name], start + 0.25 * (actor - start), rtol=0, atol=1e-7)


def test_a_non_finite_actor_leaves_the_ema_untouched(trained):
    _, ema, model = trained
    before = {n: t.clone() for n, t in ema.tensors.items()}
    name = next(iter(adapter_shards(model)))
    adapter_shards(model)[name].view(-1)[0] = float("nan")
    result = ema.update(model, 0.5)
    assert not result.applied and not result.actor_finite
    assert all(torch.equal(before[n], t) for n, t in ema.tensors.items())


def test_base_is_the_model_with_the_adapters_disabled(trained):
    _, _, model = trained
    plain = tiny_qwen3()
    with model.disable_adapter():  # verl's FSDPEngine.disable_adapter (the no_lora_adapter flag)
        base = logits(model)
    assert torch.equal(base, logits(plain))
    assert not torch.equal(base, logits(model))


def test_save_rotates_and_load_verifies(trained, tmp_path):
    _, ema, model = trained
    ema.update(model, 0.5)
    saved = {n: t.clone() for n, t in ema.tensors.items()}
    folders = [str(tmp_path / f"global_step_{s}" / "teacher") for s in (1, 2, 3)]
    for folder in folders:
        ema.save(folder, rank=0, world_size=1, max_to_keep=2)
    assert [(tmp_path / f"global_step_{s}" / "teacher").is_dir() for s in (1, 2, 3)] == [False, True, True]
    ema.update(model, 1.0)
    assert not all(torch.equal(saved[n], t) for n, t in ema.tensors.items())
    ema.load(folders[2], rank=0, world_size=1, module=model)
    assert all(torch.equal(saved[n], t) for n, t in ema.tensors.items())

    with pytest.raises(FileNotFoundError, match="model_world_size_2_rank_0.pt"):
        ema.load(folders[2], rank=0, world_size=2, module=model)
    bad = dict(saved)
    name = sorted(bad)[0]
    bad[name] = torch.full_like(bad[name], float("inf"))
    torch.save(bad, tmp_path / "global_step_3" / "teacher" / "model_world_size_1_rank_0.pt")
    with pytest.raises(ValueError, match="non-finite"):
        ema.load(folders[2], rank=0, world_size=1, module=model)
    other = lora_model()
    other_rank = get_peft_model(tiny_qwen3(), LoraConfig(task_type="CAUSAL_LM", r=2, lora_alpha=16,
                                                         target_modules="all-linear", bias="none"))
    AdapterEMA(other_rank).save(str(tmp_path / "r2"), rank=0, world_size=1)
    with pytest.raises(ValueError, match="another lora_rank"):
        AdapterEMA(other).load(str(tmp_path / "r2"), rank=0, world_size=1, module=other)


# ---------------------------------------------------------------------------------------------- hf rollout sync
def test_hf_server_merge_equals_peft_merge(trained):
    _, _, model = trained
    adapters = get_peft_model_state_dict(model)  # what verl's collect_lora_params sends (base_sync_done=True)
    peft_config = model.peft_config["default"].to_dict()
    merged_by_peft = copy.deepcopy(model).merge_and_unload()

    from srpo_verl.rollout.hf.server import HFServer

    server = object.__new__(HFServer)  # the server's state that update_adapters touches
    server.model, server._lora_base, server._occurrences = tiny_qwen3(), {}, {}
    server._model_lock, server.global_steps = asyncio.Lock(), 0
    merged = asyncio.run(server.update_adapters(adapters, peft_config, global_steps=3))
    assert merged == 14 and server.global_steps == 3
    ours, theirs = server.model.state_dict(), merged_by_peft.state_dict()
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=2e-7, msg=name)
    torch.testing.assert_close(logits(server.model), logits(model), rtol=0, atol=1e-5)
    # a second sync merges from the kept base copy, never on top of the last merge
    asyncio.run(server.update_adapters(adapters, peft_config))
    for name in ours:
        torch.testing.assert_close(server.model.state_dict()[name], theirs[name], rtol=0, atol=2e-7, msg=name)


def test_hf_sync_names_and_refusals():
    assert hf_lora.base_names({"model.layers.0.mlp.up_proj.base_layer.weight": torch.ones(1)}) == {
        "model.layers.0.mlp.up_proj.weight": torch.ones(1)}
    assert hf_lora.lora_scaling({"r": 4, "lora_alpha": 16}) == 4.0
    assert hf_lora.lora_scaling({"r": 4, "lora_alpha": 16, "use_rslora": True}) == 8.0
    with pytest.raises(NotImplementedError, match="lora.merge=true"):
        hf_lora.lora_scaling({"r": 4, "lora_alpha": 16, "rank_pattern": {"q_proj": 8}})
    with pytest.raises(NotImplementedError, match="lora.merge=true"):
        hf_lora.adapter_pairs({"base_model.model.model.embed_tokens.lora_embedding_A": torch.ones(1)})
    with pytest.raises(ValueError, match="lora_A without lora_B"):
        hf_lora.adapter_pairs({"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": torch.ones(1)})
