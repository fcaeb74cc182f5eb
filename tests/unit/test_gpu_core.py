"""The core on CUDA: chunked log-probs vs the naive reference, the memory bound, and the routed loss CPU = GPU.

Marked `gpu`: skipped with the reason on machines without CUDA. scripts/gpu_check.sh runs these (with or without
pytest) on a GPU machine that has only torch.
"""

import pytest
import torch

from srpo_verl.core import (
    RoutedLossConfig,
    distillation_token_loss,
    gather_logprobs_with_entropy,
    routed_policy_loss,
    topk_logprobs_with_entropy,
)

pytestmark = pytest.mark.gpu
VOCAB = 151_936


def test_chunked_matches_naive_on_cuda_in_bf16_and_fp32():
    for dtype in (torch.float32, torch.bfloat16):
        gen = torch.Generator(device="cuda").manual_seed(0)
        logits = torch.empty(64, VOCAB, device="cuda", dtype=dtype).normal_(generator=gen).mul_(3)
        logits.requires_grad_()
        logp, ids, entropy = topk_logprobs_with_entropy(logits, 100, chunk_size=16, backend="chunked")
        ref = torch.log_softmax(logits.detach().float(), -1)
        torch.testing.assert_close(logp, ref.gather(-1, ids), atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy, -(ref.exp() * ref).sum(-1), atol=1e-4, rtol=0)
        gathered, _ = gather_logprobs_with_entropy(logits, ids, chunk_size=16, backend="chunked")
        gathered.sum().backward()
        ref_leaf = logits.detach().clone().requires_grad_()
        torch.log_softmax(ref_leaf.float(), -1).gather(-1, ids).sum().backward()
        torch.testing.assert_close(logits.grad.float(), ref_leaf.grad.float(), atol=1e-4, rtol=1e-3)


def _extra_peak_bytes(run) -> int:
    """Peak CUDA memory allocated by run() beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def test_extra_memory_stays_within_one_chunk():
    # 4 chunks of 256 rows (148 MiB each): the outputs ([N, 100] values and ids, 1.2 MiB) and torch.topk's scratch
    # fit in the 10% allowance; with a much smaller chunk they would not (they scale with N, not with the chunk).
    chunk, rows = 256, 1024
    logits = torch.randn(rows, VOCAB, device="cuda")
    ids = torch.randint(0, VOCAB, (rows, 100), device="cuda")
    extra = _extra_peak_bytes(lambda: (
        gather_logprobs_with_entropy(logits, ids, chunk_size=chunk, backend="chunked"),
        topk_logprobs_with_entropy(logits, 100, chunk_size=chunk, backend="chunked"),
    ))
    budget = chunk * VOCAB * 4
    assert extra <= budget * 1.1, f"extra peak {extra / 2**20:.1f} MiB > chunk budget {budget / 2**20:.1f} MiB"


def _triton_or_skip():
    pytest.importorskip("triton", reason="triton is not installed on this CUDA machine")


def test_triton_backend_equals_chunked_on_cuda():
    _triton_or_skip()
    gen = torch.Generator(device="cuda").manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16):
        logits = torch.empty(96, VOCAB, device="cuda", dtype=dtype).normal_(generator=gen).mul_(3)
        logits[5, :1000] = float("-inf")
        rows = torch.tensor([90, 3, 5, 40, 17], device="cuda")
        # bf16 logits tie at the top-k boundary, so the two backends may pick different ids among equal values:
        # the values must agree position by position, and the gradients are compared at the triton ids.
        leaves = [logits.clone().requires_grad_() for _ in range(2)]
        fused = topk_logprobs_with_entropy(leaves[0], 100, 0.7, chunk_size=16, rows=rows, backend="triton")
        chunked = topk_logprobs_with_entropy(logits, 100, 0.7, chunk_size=16, rows=rows, backend="chunked")
        torch.testing.assert_close(fused[0], chunked[0], atol=5e-6, rtol=0)
        torch.testing.assert_close(fused[2], chunked[2], atol=1e-5, rtol=0)
        at_ids = gather_logprobs_with_entropy(leaves[1], fused[1], 0.7, chunk_size=16, rows=rows, backend="chunked")
        g = torch.randn(5, 100, device="cuda", generator=gen)
        h = torch.randn(5, device="cuda", generator=gen)
        ((fused[0] * g).sum() + (fused[2] * h).sum()).backward()
        ((at_ids[0] * g).sum() + (at_ids[1] * h).sum()).backward()
        one_ulp = 2e-7 if dtype == torch.float32 else 2.0**-7
        torch.testing.assert_close(leaves[0].grad.float(), leaves[1].grad.float(), atol=1e-6, rtol=one_ulp)
        assert not leaves[0].grad[[0, 1, 2, 4]].any()

        ids = torch.randint(0, VOCAB, (96, 8), device="cuda", generator=gen)
        ids[:, 1] = ids[:, 0]
        leaves = [logits.clone().requires_grad_() for _ in range(2)]
        outs = [gather_logprobs_with_entropy(leaf, ids, backend=b) for leaf, b in zip(leaves, ("triton", "chunked"))]
        torch.testing.assert_close(outs[0][0], outs[1][0], atol=5e-6, rtol=0)
        torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-5, rtol=0)
        for logp, _ in outs:
            logp.sum().backward()
        torch.testing.assert_close(leaves[0].grad.float(), leaves[1].grad.float(), atol=1e-6, rtol=one_ulp)


def test_triton_backend_adds_only_its_outputs():
    _triton_or_skip()
    rows = 1024
    logits = torch.randn(rows, VOCAB, device="cuda", dtype=torch.bfloat16)
    ids = torch.randint(0, VOCAB, (rows, 100), device="cuda")
    extra = _extra_peak_bytes(lambda: (
        gather_logprobs_with_entropy(logits, ids, backend="triton"),
        topk_logprobs_with_entropy(logits, 100, chunk_size=64, backend="triton"),
    ))
    assert extra <= 64 * VOCAB * 2 * 1.5 + rows * 100 * 16, f"extra peak {extra / 2**20:.1f} MiB"


def test_auto_backend_on_cuda_is_triton_when_importable():
    _triton_or_skip()
    from srpo_verl.core.logprobs import resolve_backend

    assert resolve_backend("auto", torch.zeros(1, 4, device="cuda")) == "triton"


def test_routed_loss_on_cuda_equals_cpu():
    gen = torch.Generator().manual_seed(1)
    student = torch.log_softmax(torch.randn(4, 6, 50, generator=gen), -1)[..., :8]
    teacher = torch.log_softmax(torch.randn(4, 6, 50, generator=gen), -1)[..., :8]
    log_prob, old = torch.randn(4, 6, generator=gen) - 2, torch.randn(4, 6, generator=gen) - 2
    adv, mask = torch.tensor([1.0, 0.0, -0.5, 0.25]), torch.ones(4, 6)
    distill = torch.tensor([False, True, True, False])
    args = (RoutedLossConfig(), log_prob, old, adv, mask, distill, student, teacher)
    cpu = routed_policy_loss(*args).loss
    gpu = routed_policy_loss(*(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)).loss
    assert abs(cpu.item() - gpu.item()) < 1e-5
    assert distillation_token_loss(student.cuda(), teacher.cuda()).is_cuda
