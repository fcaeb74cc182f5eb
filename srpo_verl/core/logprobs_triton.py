"""Fused Triton kernels for the log-partition and full-vocabulary entropy of logits rows (SRPO_SPEC §5.3, §7.22).

The same maths as :mod:`srpo_verl.core.logprobs`, in one read of each row instead of chunked fp32 copies:

* forward: one program per row streams the row once in BLOCK-wide tiles and keeps, per lane, an online softmax
  state (running max m, Σ e^{l−m}, Σ e^{l−m}(l−m)); the lanes are merged at the end into log Z and
  H = log Z − Σ p l. The top-k (``torch.topk`` on the raw logits: dividing by T > 0 keeps the order) or the gather
  at given ids then only needs log p = l − log Z on [M, K] values. No fp32 [rows, V] tensor exists at all.
* backward: one program per row writes ∂/∂logits = −p·(Σ_k g_k + g_H·(log p + H)) / T for the whole row straight
  into the gradient (in the logits' dtype); the K id columns, which also get + g_k / T, are then overwritten with
  values computed in fp32 (so they are rounded once, as in the chunked path; repeated ids sum their g_k).

Only CUDA tensors are launched on the GPU; under ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors, which
is how the CPU test suite checks them. ``rows`` must not repeat a row (the backward writes rows, it does not add).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from srpo_verl.core.logprobs import chunked_topk

FORWARD_BLOCK = 2048
BACKWARD_BLOCK = 2048
NUM_WARPS = 8


@triton.jit
def _row_of_program(rows_ptr, pid, HAS_ROWS: tl.constexpr):
    """The logits row this program handles: rows[pid] with a row selection, else pid (int64 for the offsets)."""
    if HAS_ROWS:
        return tl.load(rows_ptr + pid).to(tl.int64)
    else:
        return pid.to(tl.int64)


@triton.jit
def _row_stats_kernel(
    logits_ptr, rows_ptr, row_stride, vocab, temperature, log_partition_ptr, entropy_ptr,
    HAS_ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = _row_of_program(rows_ptr, pid, HAS_ROWS)
    base = logits_ptr + row * row_stride
    lanes = tl.arange(0, BLOCK)
    neg_inf = float("-inf")
    run_max = tl.full([BLOCK], neg_inf, tl.float32)
    run_sum = tl.zeros([BLOCK], tl.float32)  # Σ e^{l − run_max}
    run_dot = tl.zeros([BLOCK], tl.float32)  # Σ e^{l − run_max} · (l − run_max)
    for start in range(0, vocab, BLOCK):
        cols = start + lanes
        x = tl.load(base + cols, mask=cols < vocab, other=neg_inf).to(tl.float32) / temperature
        new_max = tl.maximum(run_max, x)
        anchor = tl.where(new_max == neg_inf, 0.0, new_max)  # a lane that has seen only −inf stays empty
        scale = tl.exp(run_max - anchor)
        e = tl.exp(x - anchor)
        old_shift = tl.where(run_sum > 0, run_max - anchor, 0.0)
        new_shift = tl.where(e > 0, x - anchor, 0.0)
        run_dot = scale * (run_dot + run_sum * old_shift) + e * new_shift
        run_sum = scale * run_sum + e
        run_max = new_max
    row_max = tl.max(run_max, 0)
    anchor = tl.where(row_max == neg_inf, 0.0, row_max)
    weight = tl.exp(run_max - anchor)
    shift = tl.where(run_sum > 0, run_max - anchor, 0.0)
    total = tl.sum(weight * run_sum, 0)
    dot = tl.sum(weight * (run_dot + run_sum * shift), 0)
    log_total = tl.log(total)
    tl.store(log_partition_ptr + pid, anchor + log_total)
    tl.store(entropy_ptr + pid, log_total - dot / total)


@triton.jit
def _dense_grad_kernel(
    logits_ptr, rows_ptr, row_stride, grad_ptr, grad_row_stride, vocab, temperature,
    log_partition_ptr, entropy_ptr, grad_sum_ptr, grad_entropy_ptr,
    HAS_ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = _row_of_program(rows_ptr, pid, HAS_ROWS)
    base = logits_ptr + row * row_stride
    out = grad_ptr + row * grad_row_stride
    log_partition = tl.load(log_partition_ptr + pid)
    entropy = tl.load(entropy_ptr + pid)
    grad_sum = tl.load(grad_sum_ptr + pid)
    grad_entropy = tl.load(grad_entropy_ptr + pid)
    lanes = tl.arange(0, BLOCK)
    for start in range(0, vocab, BLOCK):
        cols = start + lanes
        mask = cols < vocab
        logp = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32) / temperature - log_partition
        p = tl.exp(logp)
        grad = tl.where(p > 0, -p * (grad_sum + grad_entropy * (logp + entropy)), 0.0) / temperature
        tl.store(out + cols, grad.to(out.dtype.element_ty), mask=mask)


# True when this module was imported under TRITON_INTERPRET=1: the kernels then run on CPU tensors.
INTERPRETED = not isinstance(_row_stats_kernel, triton.runtime.JITFunction)


def row_stats(
    logits: torch.Tensor, rows: torch.Tensor | None, temperature: float, block: int = FORWARD_BLOCK,
    num_warps: int = NUM_WARPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log Z of logits / T, entropy), float32 [M] for the selected rows (all N rows without ``rows``).

    ``logits`` is [N, V] with unit stride along V.
    """
    count = logits.shape[0] if rows is None else rows.shape[0]
    log_partition = torch.empty(count, dtype=torch.float32, device=logits.device)
    entropy = torch.empty(count, dtype=torch.float32, device=logits.device)
    if count:
        _row_stats_kernel[(count,)](
            logits, rows if rows is not None else log_partition, logits.stride(0), logits.shape[1], temperature,
            log_partition, entropy, HAS_ROWS=rows is not None, BLOCK=block, num_warps=num_warps,
        )
    return log_partition, entropy


def dense_grad(
    logits, rows, grad_logits, temperature, log_partition, entropy, grad_sum, grad_entropy,
    block: int = BACKWARD_BLOCK, num_warps: int = NUM_WARPS,
) -> None:
    """Write −p·(grad_sum + grad_entropy·(log p + H)) / T into the selected rows of ``grad_logits``."""
    _dense_grad_kernel[(log_partition.shape[0],)](
        logits, rows if rows is not None else log_partition, logits.stride(0), grad_logits, grad_logits.stride(0),
        logits.shape[1], temperature, log_partition, entropy, grad_sum, grad_entropy,
        HAS_ROWS=rows is not None, BLOCK=block, num_warps=num_warps,
    )


def _logits_at(logits: torch.Tensor, rows: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
    """logits[row_m, ids[m, k]] as [M, K] without copying any whole row."""
    if rows is None:
        return logits.gather(1, ids)
    return logits[rows.unsqueeze(-1), ids]


def _summed_over_repeats(ids: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """[M, K]: for each (m, k), the sum of grad[m, k'] over every k' with ids[m, k'] == ids[m, k]."""
    if ids.shape[-1] == 1:
        return grad
    sorted_ids, order = ids.sort(dim=-1)
    starts = torch.ones_like(sorted_ids, dtype=torch.bool)
    starts[:, 1:] = sorted_ids[:, 1:] != sorted_ids[:, :-1]
    segment = starts.long().cumsum(-1) - 1
    sums = torch.zeros_like(grad).scatter_add_(-1, segment, grad.gather(-1, order))
    return torch.empty_like(grad).scatter_(-1, order, sums.gather(-1, segment))


class FusedLogProbs(torch.autograd.Function):
    """Same contract as ``logprobs._ChunkedLogProbs``: (log p at ids or top-k [M, K], ids, entropy [M])."""

    @staticmethod
    def forward(ctx, logits, rows, ids, k, temperature, chunk_size):
        ctx.set_materialize_grads(False)  # an unused output's gradient is None, not zeros
        if logits.stride(-1) != 1:
            logits = logits.contiguous()
        log_partition, entropy = row_stats(logits, rows, temperature)
        if ids is None:
            picked, ids = chunked_topk(logits, rows, k, chunk_size)
        else:
            picked = _logits_at(logits, rows, ids)
        logp = picked.float().div_(temperature).sub_(log_partition.unsqueeze(-1))
        ctx.save_for_backward(logits, rows, ids, log_partition, entropy)
        ctx.temperature = temperature
        ctx.mark_non_differentiable(ids)
        return logp, ids, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_ids, grad_entropy):
        logits, rows, ids, log_partition, entropy = ctx.saved_tensors
        temperature = ctx.temperature
        grad_logits = torch.empty_like(logits) if rows is None else torch.zeros_like(logits)
        count = log_partition.shape[0]
        if count == 0:
            return grad_logits, None, None, None, None, None
        zeros = torch.zeros(count, dtype=torch.float32, device=logits.device)
        grad_sum = grad_logp.float().sum(-1) if grad_logp is not None else zeros
        grad_h = grad_entropy.float() if grad_entropy is not None else zeros
        dense_grad(logits, rows, grad_logits, temperature, log_partition, entropy, grad_sum.contiguous(),
                   grad_h.contiguous())
        if grad_logp is not None:
            # The id columns: the dense term recomputed in fp32 plus their own g_k, rounded once.
            logp = _logits_at(logits, rows, ids).float().div_(temperature).sub_(log_partition.unsqueeze(-1))
            p = logp.exp()
            dense = -p * (grad_sum.unsqueeze(-1) + grad_h.unsqueeze(-1) * (logp + entropy.unsqueeze(-1)))
            dense = torch.where(p > 0, dense, 0.0)
            values = (dense + _summed_over_repeats(ids, grad_logp.float())).div_(temperature).to(grad_logits.dtype)
            if rows is None:
                grad_logits.scatter_(1, ids, values)
            else:
                grad_logits[rows.unsqueeze(-1), ids] = values
        return grad_logits, None, None, None, None, None
