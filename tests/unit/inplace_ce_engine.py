"""One SRPO update micro-batch through verl 0.9.1's own FSDP output code, with a choice of cross-entropy.

Shared by tests/unit/test_inplace_cross_entropy.py (chunked backend, in process) and
tests/unit/triton_interpreter_checks.py (Triton backend under TRITON_INTERPRET=1). Loaded by file path (pytest runs
with --import-mode=importlib, so test modules do not see each other by name).

The micro-batch goes through ``FSDPEngineWithLMHead.prepare_model_outputs`` (the padded branch or the remove-padding
branch, unchanged verl code) with srpo_verl's loss callable as the logits processor and then as the loss, exactly as
``forward_step`` chains them; the logits come from a tiny linear "model" (hidden @ W), so the gradient that reaches
``W`` is what the optimizer would see. verl's ``logprobs_from_logits`` is pointed at the in-place stand-in of
flash-attn's Triton cross-entropy (tests/fixtures/inplace_flash_attn) or left on its torch path.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import torch
from tensordict import TensorDict

STANDIN_PATH = (Path(__file__).resolve().parents[1] / "fixtures" / "inplace_flash_attn" / "flash_attn" / "ops"
                / "triton" / "cross_entropy.py")

PROMPT_LENS = [3, 2, 4, 2]
RESPONSE_LENS = [3, 4, 2, 3]
DISTILL = [True, False, True, False]
HIDDEN, VOCAB, TOPK = 8, 37, 5
LOGIT_SCALE = 1.0  # std of the weights (logits of std ~3)
ADVANTAGES = (0.0, 0.05, 0.0, -0.05)  # GRPO rows 1, 3 (small: the distillation part of the gradient stays visible)


def load_standin():
    """The stand-in module, loaded from its file (never put on sys.path: other tests must not see a flash_attn)."""
    spec = importlib.util.spec_from_file_location("srpo_test_inplace_cross_entropy", STANDIN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def verl_cross_entropy(standin):
    """Make verl's logprobs_from_logits use ``standin.cross_entropy_loss`` (None: verl's torch path)."""
    import verl.utils.torch_functional as verl_F

    saved = (verl_F.FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE, getattr(verl_F, "cross_entropy_loss", None))
    verl_F.FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE = standin is not None
    if standin is not None:
        verl_F.cross_entropy_loss = standin.cross_entropy_loss
    try:
        yield
    finally:
        verl_F.FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE = saved[0]
        if saved[1] is not None:
            verl_F.cross_entropy_loss = saved[1]


def _nested(rows):
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def micro_batch(flags: dict, remove_padding: bool, temperature: float, old_log_probs=None) -> TensorDict:
    """An update-phase micro-batch with every field the routed loss reads (seeded, so every call is identical);
    ``old_log_probs``: [Σ R_i] π_old's log-probs of the response tokens (random near −2.5 when None)."""
    from verl.utils import tensordict_utils as tu

    from srpo_verl.verl_ext import loss as L
    from srpo_verl.verl_ext.layout import pack_response_field

    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, VOCAB, (p,), generator=gen) for p in PROMPT_LENS]
    responses = [torch.randint(0, VOCAB, (r,), generator=gen) for r in RESPONSE_LENS]
    lens, rows = torch.tensor(RESPONSE_LENS), torch.tensor(DISTILL)
    distilled_tokens = int(lens[rows].sum())
    topk_ids = torch.randint(0, VOCAB, (distilled_tokens, TOPK), generator=gen)
    teacher = torch.log_softmax(torch.randn(distilled_tokens, VOCAB, generator=gen), -1)[:, :TOPK]
    fields = {
        "prompts": _nested(prompts),
        "responses": _nested(responses),
        "input_ids": _nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]),
        "response_mask": _nested([torch.ones(r, dtype=torch.long) for r in RESPONSE_LENS]),
        "old_log_probs": _nested([torch.randn(r, generator=gen) * 0.1 - 2.5 for r in RESPONSE_LENS]
                                 if old_log_probs is None else list(old_log_probs.split(RESPONSE_LENS))),
        "advantages": _nested([torch.full((r,), a) for r, a in zip(RESPONSE_LENS, ADVANTAGES)]),
        L.DW_WEIGHT: _nested([torch.rand(r, generator=gen) + 0.5 for r in RESPONSE_LENS]),
        L.DISTILL_MASK: _nested([torch.full((r,), float(d)) for r, d in zip(RESPONSE_LENS, DISTILL)]),
        L.TOPK_IDS: pack_response_field(topk_ids.int(), lens, rows),
        L.TEACHER_LOGP: pack_response_field(teacher, lens, rows),
    }
    data = TensorDict(fields, batch_size=len(PROMPT_LENS))
    tu.assign_non_tensor(data, use_remove_padding=remove_padding, temperature=temperature, dp_size=1,
                         batch_num_tokens=int(lens.sum()), global_batch_size=len(PROMPT_LENS), **flags)
    tu.assign_non_tensor_data(data, L.PHASE, "update")
    return data


def on_policy_log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """[Σ R_i] log_softmax(logits / T) at each response token (π_old = π_θ: the first update of a step)."""
    from srpo_verl.verl_ext.layout import response_positions

    data = micro_batch({}, False, temperature)
    positions = response_positions(torch.tensor(PROMPT_LENS), torch.tensor(RESPONSE_LENS))
    labels = data["input_ids"].values()[positions + 1]
    with torch.no_grad():
        logp = torch.log_softmax(logits.float()[positions] / temperature, -1)
    return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def actor_config():
    from verl.workers.config.actor import ActorConfig

    return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size=2, clip_ratio=0.2, clip_ratio_low=0.2,
                       clip_ratio_high=0.28, loss_agg_mode="token-mean")


def update_gradient(backend: str, standin, flags: dict, remove_padding: bool, temperature: float,
                    dtype: torch.dtype = torch.float32, legacy: bool = False):
    """(loss, d loss / d W, the loss's log-probs [nnz]) of one update micro-batch through verl's output code.

    ``legacy``: the loss takes verl's ``model_output["log_probs"]`` instead of the processor's, as srpo_verl did
    before the fix (run it with ``distillation_only=False`` so that verl computes them)."""
    from functools import partial

    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    from srpo_verl.verl_ext import loss as L
    from srpo_verl.verl_ext.settings import SRPOSettings

    settings = SRPOSettings(topk=TOPK, logits_chunk_size=4, logits_backend=backend)
    loss_fn = partial(L.srpo_loss, settings, actor_config())
    gen = torch.Generator().manual_seed(1)
    seq_lens = [p + r for p, r in zip(PROMPT_LENS, RESPONSE_LENS)]
    hidden = torch.randn(sum(seq_lens), HIDDEN, generator=gen).to(dtype)
    weight = (torch.randn(HIDDEN, VOCAB, generator=gen) * LOGIT_SCALE).to(dtype).requires_grad_()
    data = micro_batch(flags, remove_padding, temperature, on_policy_log_probs(hidden @ weight, temperature))
    input_ids = data["input_ids"]
    args = {"temperature_is_one": temperature == 1.0, "pad_size": 0,
            "input_ids_rmpad_rolled": torch.roll(input_ids.values(), shifts=-1, dims=0)}
    if remove_padding:
        logits = (hidden @ weight).unsqueeze(0)  # [1, nnz, V], as the model's packed forward returns
        args["temperature_rmpad"] = torch.full((1, sum(seq_lens)), temperature).squeeze(0)
    else:
        padded = torch.zeros(len(seq_lens), max(seq_lens), HIDDEN, dtype=dtype)
        offset = 0
        for i, n in enumerate(seq_lens):
            padded[i, :n] = hidden[offset : offset + n]
            offset += n
        logits = padded @ weight  # [B, S, V]
        args["temperature"] = torch.full((len(seq_lens),), temperature)
    engine = SimpleNamespace(_gather_and_unpad_packed=lambda t, pad: t[:-pad] if pad else t, engine_config=None)
    with verl_cross_entropy(standin):
        model_output = FSDPEngineWithLMHead.prepare_model_outputs(
            engine, SimpleNamespace(logits=logits), args, data, logits_processor_func=loss_fn)
        if legacy:
            model_output[L.LOG_PROBS] = model_output["log_probs"]
        loss, _ = loss_fn(model_output=model_output, data=data)
        loss.backward()
    return loss.detach(), weight.grad.detach().clone(), model_output[L.LOG_PROBS].values().detach()


def hazard_gradient(backend: str, standin) -> torch.Tensor:
    """d/d W of (our Function's log-probs + verl's sampled-token log-probs) on the *same* logits, the way the update
    pass combined them before the fix: with the in-place stand-in, our backward reads the gradient it left behind."""
    import verl.utils.torch_functional as verl_F

    from srpo_verl.core.logprobs import gather_logprobs_with_entropy

    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(12, HIDDEN, generator=gen)
    weight = torch.randn(HIDDEN, VOCAB, generator=gen).requires_grad_()
    ids = torch.randint(0, VOCAB, (12, TOPK), generator=gen)
    labels = torch.randint(0, VOCAB, (12,), generator=gen)
    logits = hidden @ weight
    with verl_cross_entropy(standin):
        ours, _ = gather_logprobs_with_entropy(logits, ids[1:11], backend=backend, rows=torch.arange(1, 11))
        theirs = verl_F.logprobs_from_logits(logits, labels)
        (ours.square().sum() + theirs.sum()).backward()
    return weight.grad.detach().clone()
