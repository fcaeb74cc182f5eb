"""Unit tests of the CPU backend (srpo_verl/cpu): sampling, batched generation, the hf server, patches, platform."""

import asyncio
import math
import sys
from types import SimpleNamespace

import pytest
import torch

from srpo_verl.cpu import is_enabled
from srpo_verl.rollout.hf.generation import generate_batch, left_pad
from srpo_verl.rollout.hf.sampling import SamplingSpec, filter_logits, request_key, request_seed, sample_token


# ---------------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------------

def test_filter_logits_top_k_keeps_the_k_largest():
    logits = torch.tensor([1.0, 4.0, 3.0, 2.0])
    out = filter_logits(logits, top_k=2, top_p=1.0)
    assert out.tolist() == [float("-inf"), 4.0, 3.0, float("-inf")]


def test_filter_logits_top_p_keeps_the_smallest_prefix_reaching_p():
    # probabilities 0.5, 0.3, 0.2 (in that order): p=0.7 needs the first two (0.5 < 0.7 <= 0.8), p=0.5 only one.
    logits = torch.log(torch.tensor([0.3, 0.5, 0.2]))
    kept = torch.isfinite(filter_logits(logits, top_k=-1, top_p=0.7)).tolist()
    assert kept == [True, True, False]
    kept = torch.isfinite(filter_logits(logits, top_k=0, top_p=0.5)).tolist()
    assert kept == [False, True, False]


def test_filter_logits_disabled_filters_are_identity():
    logits = torch.tensor([0.1, -2.0, 3.0])
    assert torch.equal(filter_logits(logits, top_k=-1, top_p=1.0), logits)
    assert torch.equal(filter_logits(logits, top_k=3, top_p=1.0), logits)


def test_sample_token_greedy_returns_argmax_and_raw_logprob():
    logits = torch.tensor([0.0, 2.0, 1.0])
    token, logprob = sample_token(logits, SamplingSpec(temperature=0.0), torch.Generator().manual_seed(0),
                                  "processed_logprobs")
    expected = 2.0 - math.log(math.exp(0.0) + math.exp(2.0) + math.exp(1.0))
    assert token == 1
    assert logprob == pytest.approx(expected, abs=1e-6)


def test_sample_token_processed_vs_raw_logprobs_under_temperature_and_top_k():
    logits = torch.tensor([1.0, 0.0, -1.0])
    spec = SamplingSpec(temperature=0.5, top_k=2)
    tok_p, lp_processed = sample_token(logits, spec, torch.Generator().manual_seed(3), "processed_logprobs")
    tok_r, lp_raw = sample_token(logits, spec, torch.Generator().manual_seed(3), "raw_logprobs")
    assert tok_p == tok_r and tok_p in (0, 1)  # top-2 never samples token 2
    scaled = [2.0, 0.0]  # logits / T over the kept two
    norm = math.log(sum(math.exp(x) for x in scaled))
    assert lp_processed == pytest.approx(scaled[tok_p] - norm, abs=1e-6)
    raw_norm = math.log(sum(math.exp(x) for x in [1.0, 0.0, -1.0]))
    assert lp_raw == pytest.approx([1.0, 0.0][tok_p] - raw_norm, abs=1e-6)


def test_sample_token_follows_the_distribution():
    probs = torch.tensor([0.1, 0.6, 0.3])
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(3)
    for _ in range(4000):
        token, _ = sample_token(probs.log(), SamplingSpec(), gen, "processed_logprobs")
        counts[token] += 1
    assert torch.allclose(counts / 4000, probs, atol=0.03)


def test_sample_token_rejects_unknown_logprobs_mode():
    with pytest.raises(ValueError, match="logprobs_mode='raw_logits'"):
        sample_token(torch.zeros(3), SamplingSpec(), torch.Generator(), "raw_logits")


def test_request_seed_is_a_stable_function_of_its_inputs():
    key = request_key("det-0", [5, 6], 0)
    seed = request_seed(42, 3, key)
    assert seed == request_seed(42, 3, request_key("det-0", [5, 6], 0))
    assert 0 <= seed < 2**63
    others = {request_seed(42, 3, request_key("det-0", [5, 6], 1)), request_seed(42, 3, request_key("det-0", [5, 7], 0)),
              request_seed(42, 3, request_key("det-1", [5, 6], 0)), request_seed(42, 4, key), request_seed(43, 3, key)}
    assert len(others | {seed}) == 6


# ---------------------------------------------------------------------------------------------------------------
# batched generation on a random tiny Qwen3
# ---------------------------------------------------------------------------------------------------------------

VOCAB, EOS, PAD = 40, 3, 0


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128,
                         eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True)
    config._attn_implementation = "eager"
    return Qwen3ForCausalLM(config).eval()


def test_left_pad_masks_and_positions():
    ids, mask, pos = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]
    with pytest.raises(ValueError, match="empty prompt"):
        left_pad([[]], pad_id=0)


def _full_forward_logprobs(model, prompt, response, temperature=1.0):
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(response)[:, None])[:, 0]


def test_generate_batch_is_independent_of_batch_composition(tiny_lm):
    prompts = [[5, 9, 11, 2], [7, 8], [20, 21, 22, 23, 24, 25]]
    specs = [SamplingSpec(max_tokens=6, seed=s) for s in (11, 12, 13)]
    together = generate_batch(tiny_lm, prompts, specs, {EOS}, PAD)
    for prompt, spec, batched in zip(prompts, specs, together):
        alone = generate_batch(tiny_lm, [prompt], [spec], {EOS}, PAD)[0]
        assert alone.token_ids == batched.token_ids
        assert torch.allclose(torch.tensor(alone.log_probs), torch.tensor(batched.log_probs), atol=1e-5)


def test_generate_batch_logprobs_match_a_full_forward(tiny_lm):
    prompts = [[5, 9, 11, 2], [7, 8]]
    out = generate_batch(tiny_lm, prompts, [SamplingSpec(temperature=0.7, max_tokens=8, seed=s) for s in (1, 2)],
                         set(), PAD)
    for prompt, gen in zip(prompts, out):
        assert len(gen.token_ids) == 8 and gen.finish_reason == "length"
        expected = _full_forward_logprobs(tiny_lm, prompt, gen.token_ids, temperature=0.7)
        assert torch.allclose(torch.tensor(gen.log_probs), expected, atol=1e-5)


def test_generate_batch_same_seed_same_tokens_other_seed_differs(tiny_lm):
    prompt = [[5, 9, 11, 2]]
    first = generate_batch(tiny_lm, prompt, [SamplingSpec(max_tokens=12, seed=5)], set(), PAD)[0]
    again = generate_batch(tiny_lm, prompt, [SamplingSpec(max_tokens=12, seed=5)], set(), PAD)[0]
    other = generate_batch(tiny_lm, prompt, [SamplingSpec(max_tokens=12, seed=6)], set(), PAD)[0]
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids


def test_generate_batch_stops_at_stop_token_and_keeps_it(tiny_lm):
    prompt = [[5, 9, 11, 2]]
    greedy = generate_batch(tiny_lm, prompt, [SamplingSpec(temperature=0.0, max_tokens=3)], set(), PAD)[0]
    stop = greedy.token_ids[1]  # make the greedy continuation's 2nd token a stop token
    out = generate_batch(tiny_lm, prompt, [SamplingSpec(temperature=0.0, max_tokens=10)], {stop}, PAD)[0]
    first_stop = greedy.token_ids.index(stop)
    assert out.token_ids == greedy.token_ids[: first_stop + 1]
    assert out.finish_reason == "stop"


# ---------------------------------------------------------------------------------------------------------------
# the hf server (driven directly, without Ray)
# ---------------------------------------------------------------------------------------------------------------

from srpo_verl.rollout.hf.server import (  # noqa: E402
    HFServer,
    load_state_checked,
    resolve_max_tokens,
    sampling_spec_from_params,
)


def test_resolve_max_tokens_follows_the_vllm_server_rules():
    assert resolve_max_tokens({}, prompt_len=10, prompt_length=16, response_length=8, max_model_len=None) == 8
    assert resolve_max_tokens({}, prompt_len=20, prompt_length=16, response_length=8, max_model_len=None) == 4
    assert resolve_max_tokens({"max_tokens": 3}, 10, 16, 8, None) == 3
    assert resolve_max_tokens({"max_tokens": 100}, 10, 16, 8, None) == 14
    with pytest.raises(ValueError, match="no room"):
        resolve_max_tokens({}, 24, 16, 8, None)


def test_sampling_spec_refuses_unknown_keys_and_repetition_penalty():
    spec = sampling_spec_from_params({"temperature": 0.5, "top_k": None, "top_p": 0.9}, max_tokens=4, seed=7)
    assert spec == SamplingSpec(temperature=0.5, top_k=-1, top_p=0.9, max_tokens=4, seed=7)
    assert sampling_spec_from_params({"seed": 3}, 4, 7).seed == 3
    with pytest.raises(ValueError, match="unsupported sampling_params \\['min_p'\\]"):
        sampling_spec_from_params({"min_p": 0.1}, 4, 7)
    with pytest.raises(ValueError, match="repetition_penalty=1.2"):
        sampling_spec_from_params({"repetition_penalty": 1.2}, 4, 7)


def test_load_state_checked_rejects_unknown_and_uncovered_names(tiny_lm):
    import copy

    model = copy.deepcopy(tiny_lm)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tied = [k for k in state if k == "lm_head.weight"]
    for k in tied:  # the tied head may be omitted: it shares storage with the embedding
        del state[k]
    assert load_state_checked(model, state) == len(state)
    with pytest.raises(KeyError, match="lacks"):
        load_state_checked(model, {**state, "not.a.weight": torch.zeros(1)})
    partial = dict(state)
    del partial["model.norm.weight"]
    with pytest.raises(KeyError, match="model.norm.weight"):
        load_state_checked(model, partial)


@pytest.fixture()
def server(tiny_lm, tmp_path):
    tiny_lm.save_pretrained(tmp_path / "model")
    config = SimpleNamespace(prompt_length=16, response_length=6, max_model_len=None, seed=42, max_num_seqs=64,
                             logprobs_mode="processed_logprobs", dtype="float32", ignore_eos=False)
    model_config = SimpleNamespace(local_path=str(tmp_path / "model"),
                                   override_config={"attn_implementation": "eager"}, trust_remote_code=False)
    srv = HFServer(config=config, model_config=model_config, replica_rank=0)
    asyncio.run(srv.init_model())
    return srv


def _generate_all(server, prompts, params, ids):
    async def run():
        return await asyncio.gather(*[server.generate(prompt_ids=p, sampling_params=dict(params), request_id=i)
                                      for p, i in zip(prompts, ids)])

    return asyncio.run(run())


def test_server_concurrent_requests_are_reproducible_and_seeded_per_request(server):
    prompts = [[5, 9, 11, 2]] * 4 + [[7, 8]]
    ids = ["det-0"] * 5  # verl's V1 agent loop names every request det-0 under full_determinism
    params = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    first = _generate_all(server, prompts, params, ids)
    asyncio.run(server.set_global_steps(0))  # a new weight version restarts the occurrence counts
    again = _generate_all(server, prompts[::-1], params, ids[::-1])[::-1]
    # identical requests are interchangeable: the group of 4 gets the same multiset of samples, the other the same one
    assert sorted(o.token_ids for o in first[:4]) == sorted(o.token_ids for o in again[:4])
    assert first[4].token_ids == again[4].token_ids
    assert len({tuple(o.token_ids) for o in first[:4]}) > 1  # the n samples of one prompt differ
    third = _generate_all(server, prompts, params, ids)  # same weight version, counts continue: fresh samples
    assert sorted(o.token_ids for o in third[:4]) != sorted(o.token_ids for o in first[:4])
    for o in first:
        assert o.stop_reason == "completed" and o.extra_fields == {"global_steps": 0}
        assert 1 <= len(o.token_ids) <= 6 and len(o.log_probs) == len(o.token_ids)
        assert (o.token_ids[-1] == EOS) == (len(o.token_ids) < 6) or len(o.token_ids) == 6
    asyncio.run(server.set_global_steps(0))
    no_lp = _generate_all(server, prompts[:1], {**params, "logprobs": False}, ids[:1])[0]
    assert no_lp.log_probs is None and no_lp.token_ids == first[0].token_ids


def test_server_weight_update_changes_samples_and_global_steps(server):
    params = {"temperature": 0.0, "logprobs": True}
    before = _generate_all(server, [[5, 9, 11, 2]], params, ["det-0"])[0]
    # lm_head.weight is tied to the embedding: sending both with different values would be ambiguous
    state = {k: torch.randn_like(v) for k, v in server.model.state_dict().items() if k != "lm_head.weight"}
    assert asyncio.run(server.update_weights(state, global_steps=3)) == len(state)
    after = _generate_all(server, [[5, 9, 11, 2]], params, ["det-0"])[0]
    assert after.extra_fields["global_steps"] == 3
    served = asyncio.run(server.get_state_dict())
    assert all(torch.equal(served[k], state[k]) for k in state)
    assert after.log_probs != before.log_probs
    with pytest.raises(KeyError):
        asyncio.run(server.update_weights({"bogus": torch.zeros(1)}, global_steps=4))


def test_server_refuses_multimodal_and_bad_logprobs_mode(server):
    with pytest.raises(NotImplementedError, match="multimodal"):
        asyncio.run(server.generate(prompt_ids=[5], sampling_params={}, request_id="x", image_data=["img"]))
    bad = SimpleNamespace(**{**vars(server.config), "logprobs_mode": "processed_logits"})
    with pytest.raises(ValueError, match="logprobs_mode='processed_logits'"):
        HFServer(config=bad, model_config=server.model_config, replica_rank=0)


# ---------------------------------------------------------------------------------------------------------------
# activation flag, patches, platform
# ---------------------------------------------------------------------------------------------------------------

def test_is_enabled_parses_the_flag_and_refuses_garbage():
    assert is_enabled({"SRPO_VERL_CPU": "1"}) and is_enabled({"SRPO_VERL_CPU": " True "})
    assert not is_enabled({}) and not is_enabled({"SRPO_VERL_CPU": "0"})
    with pytest.raises(ValueError, match="SRPO_VERL_CPU='maybe'"):
        is_enabled({"SRPO_VERL_CPU": "maybe"})


def test_after_import_patches_a_module_on_first_import(tmp_path, monkeypatch):
    from srpo_verl.cpu.patches import after_import, applied_patches

    (tmp_path / "srpo_cpu_probe_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def bump(module):
        module.VALUE += 10

    after_import("srpo_cpu_probe_mod", bump)
    assert "srpo_cpu_probe_mod" not in sys.modules
    import srpo_cpu_probe_mod

    assert srpo_cpu_probe_mod.VALUE == 11
    assert "srpo_cpu_probe_mod:bump" in applied_patches()
    after_import("srpo_cpu_probe_mod", bump)  # already imported: runs at once
    assert srpo_cpu_probe_mod.VALUE == 21
    del sys.modules["srpo_cpu_probe_mod"]


def test_process_group_patch_defaults_to_gloo_and_passes_explicit_backends():
    from srpo_verl.cpu.patches import patch_process_group_backend

    calls = []
    module = SimpleNamespace(__name__="fake", initialize_global_process_group_ray=lambda timeout_second=None,
                             backend=None: calls.append(backend))
    patch_process_group_backend(module)
    patch_process_group_backend(module)  # idempotent: not wrapped twice
    module.initialize_global_process_group_ray()
    module.initialize_global_process_group_ray(backend="cpu:gloo")
    assert calls == ["gloo", "cpu:gloo"]
    with pytest.raises(RuntimeError, match="verl changed"):
        patch_process_group_backend(SimpleNamespace(__name__="other"))


def test_offload_policy_patch_forces_unpinned_memory():
    from srpo_verl.cpu.patches import patch_offload_policy_pinning

    module = SimpleNamespace(__name__="fake", CPUOffloadPolicy=lambda pin_memory=True: ("policy", pin_memory))
    patch_offload_policy_pinning(module)
    assert module.CPUOffloadPolicy(pin_memory=True) == ("policy", False)


def test_cpu_platform_and_device_module():
    from srpo_verl.cpu.platform import CPU_DEVICE_MODULE, PlatformCPU

    platform = PlatformCPU()
    assert (platform.device_name, platform.communication_backend_name(), platform.ray_resource_name()) == (
        "cpu", "gloo", "GPU")
    assert platform.current_device() == torch.device("cpu")
    assert not platform.is_platform_available(use_smi_check=True)  # never auto-detected
    assert not platform.is_ipc_supported()
    dev = platform.device_module
    assert dev is CPU_DEVICE_MODULE
    assert dev.memory_reserved() == 0 and dev.max_memory_allocated() == 0
    free, total = dev.mem_get_info()
    assert 0 < free <= total
    state = dev.get_rng_state()
    a = torch.rand(3)
    dev.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)
    assert dev.Stream is torch.cpu.Stream  # everything else falls through to torch.cpu
    dev.empty_cache(), dev.synchronize(), dev.set_device(0)
