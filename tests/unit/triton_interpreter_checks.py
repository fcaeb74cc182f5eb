"""Checks of the fused Triton log-prob kernels, run by tests/unit/test_logprobs_triton.py in a subprocess with
TRITON_INTERPRET=1 set before triton is imported (the interpreter replaces triton.language at import time, so it
cannot be switched on inside the pytest process). Prints one JSON object: check name → "ok" or the traceback.
"""

import json
import math
import os
import traceback

import torch

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"

from srpo_verl.core.logprobs import gather_logprobs_with_entropy, topk_logprobs_with_entropy  # noqa: E402
from srpo_verl.core.logprobs_triton import FORWARD_BLOCK, INTERPRETED  # noqa: E402


def approx(value: float, expected: float, tol: float) -> bool:
    return abs(value - expected) <= tol


def check_hand_computed_distribution():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]]).log()  # p = [.1, .2, .3, .4]
    logp, ids, entropy = topk_logprobs_with_entropy(logits, 2, backend="triton")
    assert ids.tolist() == [[3, 2]]
    torch.testing.assert_close(logp, torch.tensor([[math.log(0.4), math.log(0.3)]]), atol=1e-6, rtol=0)
    expected = -sum(p * math.log(p) for p in (0.1, 0.2, 0.3, 0.4))
    assert approx(entropy.item(), expected, 1e-6), (entropy.item(), expected)


def check_tiles_merge_across_blocks_and_match_log_softmax():
    # V spans several kernel tiles plus a ragged tail, with one huge and one −inf logit per row.
    vocab = 2 * FORWARD_BLOCK + 37
    logits = torch.randn(5, vocab, generator=torch.Generator().manual_seed(0)) * 4
    logits[1, 3] = 60.0
    logits[2, : vocab // 2] = float("-inf")
    logp, ids, entropy = topk_logprobs_with_entropy(logits, 7, temperature=0.7, backend="triton")
    ref = torch.log_softmax(logits / 0.7, -1)
    torch.testing.assert_close(logp, ref.topk(7, -1).values, atol=2e-6, rtol=0)
    assert torch.equal(ids, ref.topk(7, -1).indices)
    ref_entropy = -(ref.exp() * ref.nan_to_num(neginf=0.0)).sum(-1)
    torch.testing.assert_close(entropy, ref_entropy, atol=5e-6, rtol=0)


def check_topk_with_entropy_gradient_equals_chunked(dtype, temperature):
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(6, 3000, generator=gen) * 3).to(dtype)
    logits[4, :50] = float("-inf")
    fused_leaf, chunked_leaf = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    fused = topk_logprobs_with_entropy(fused_leaf, 9, temperature, chunk_size=4, backend="triton")
    chunked = topk_logprobs_with_entropy(chunked_leaf, 9, temperature, chunk_size=4, backend="chunked")
    torch.testing.assert_close(fused[0], chunked[0], atol=2e-6, rtol=0)
    assert torch.equal(fused[1], chunked[1])
    torch.testing.assert_close(fused[2], chunked[2], atol=2e-6, rtol=0)
    g_logp, g_entropy = torch.randn(6, 9, generator=gen), torch.randn(6, generator=gen)
    for (logp, _, entropy), leaf in ((fused, fused_leaf), (chunked, chunked_leaf)):
        ((logp * g_logp).sum() + (entropy * g_entropy).sum()).backward()
    assert not fused_leaf.grad.isnan().any()
    one_ulp = 2e-7 if dtype == torch.float32 else 2.0**-7  # each rounds once from fp32 values that agree to ~1e-7
    torch.testing.assert_close(fused_leaf.grad.float(), chunked_leaf.grad.float(), atol=1e-6, rtol=one_ulp)


def check_gather_on_selected_rows_with_repeated_ids_matches_autograd():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(7, 2500, generator=gen) * 2
    rows = torch.tensor([5, 0, 3])
    ids = torch.randint(0, 2500, (3, 6), generator=gen)
    ids[:, 1] = ids[:, 0]  # a repeated id sums both gradients
    leaf = logits.clone().requires_grad_()
    logp, entropy = gather_logprobs_with_entropy(leaf, ids, temperature=0.8, rows=rows, backend="triton")
    weights = torch.randn(3, 6, generator=gen)
    (logp * weights).sum().backward()

    ref_leaf = logits.clone().requires_grad_()
    ref = torch.log_softmax(ref_leaf / 0.8, -1)[rows]
    (ref.gather(-1, ids) * weights).sum().backward()
    torch.testing.assert_close(logp, ref.detach().gather(-1, ids), atol=2e-6, rtol=0)
    torch.testing.assert_close(entropy, -(ref.exp() * ref).sum(-1).detach(), atol=5e-6, rtol=0)
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, atol=1e-7, rtol=1e-5)
    assert not leaf.grad[[1, 2, 4, 6]].any()  # rows that were not selected get exactly zero


def check_single_id_per_row_and_entropy_only_gradient():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 500, generator=gen)
    sampled = torch.randint(0, 500, (2, 3), generator=gen)
    leaf = logits.clone().requires_grad_()
    logp, entropy = gather_logprobs_with_entropy(leaf, sampled, backend="triton")
    assert logp.shape == (2, 3) and entropy.shape == (2, 3)
    entropy.sum().backward()  # only ∂H/∂l = −p (log p + H)
    ref = torch.log_softmax(logits, -1)
    expected = -ref.exp() * (ref + (-(ref.exp() * ref).sum(-1, keepdim=True)))
    torch.testing.assert_close(leaf.grad, expected, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(logp, ref.gather(-1, sampled.unsqueeze(-1)).squeeze(-1), atol=2e-6, rtol=0)


def check_update_gradient_does_not_depend_on_verls_in_place_cross_entropy():
    """The fused Function through verl's output code (both branches) with the in-place flash-attn stand-in: the same
    gradient as verl's torch path, verl's cross-entropy never runs; and the hazard the fix removes is real for it."""
    import importlib.util
    from pathlib import Path

    from srpo_verl.verl_ext import loss as L

    spec = importlib.util.spec_from_file_location("inplace_ce_engine", Path(__file__).with_name("inplace_ce_engine.py"))
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    standin = engine.load_standin()
    correct, corrupted = engine.hazard_gradient("triton", None), engine.hazard_gradient("triton", standin)
    assert (correct - corrupted).norm() > 0.1 * correct.norm(), "the stand-in did not corrupt the fused backward"
    for remove_padding in (False, True):
        for temperature in (1.0, 0.7):
            reference = engine.update_gradient("triton", None, L.PROCESSOR_FLAGS, remove_padding, temperature)
            calls = dict(standin.CALLS)
            fixed = engine.update_gradient("triton", standin, L.PROCESSOR_FLAGS, remove_padding, temperature)
            assert standin.CALLS == calls, "verl's cross-entropy ran under distillation_only"
            torch.testing.assert_close(fixed[1], reference[1], atol=0, rtol=1e-6)
            chunked = engine.update_gradient("chunked", None, L.PROCESSOR_FLAGS, remove_padding, temperature)
            torch.testing.assert_close(reference[1], chunked[1], atol=1e-7, rtol=1e-5)
            torch.testing.assert_close(reference[2], chunked[2], atol=2e-6, rtol=0)


CASES = {
    "hand_computed_distribution": check_hand_computed_distribution,
    "update_gradient_does_not_depend_on_verls_in_place_cross_entropy":
        check_update_gradient_does_not_depend_on_verls_in_place_cross_entropy,
    "tiles_merge_across_blocks_and_match_log_softmax": check_tiles_merge_across_blocks_and_match_log_softmax,
    "gather_on_selected_rows_with_repeated_ids_matches_autograd":
        check_gather_on_selected_rows_with_repeated_ids_matches_autograd,
    "single_id_per_row_and_entropy_only_gradient": check_single_id_per_row_and_entropy_only_gradient,
}
for _dtype in ("float32", "bfloat16"):
    for _temperature in (1.0, 0.6):
        CASES[f"topk_with_entropy_gradient_equals_chunked[{_dtype}-{_temperature}]"] = (
            lambda d=getattr(torch, _dtype), t=_temperature: check_topk_with_entropy_gradient_equals_chunked(d, t)
        )

if __name__ == "__main__":
    import warnings

    # numpy evaluates both branches of tl.where; the −inf branch warns, and its result is selected away
    warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
    assert INTERPRETED
    results = {}
    for name, case in CASES.items():
        try:
            case()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc()
    print(json.dumps(results))
