"""Memory-bounded log-probs and full-vocabulary entropy from logits (SRPO_SPEC §1.4, §5.3, §7.22).

Both functions work chunk by chunk over the token rows with fp32 maths and hold at most one fp32 [chunk, V] scratch
buffer at a time (two in a backward that also needs the entropy's gradient), so no fp32 [N, V] tensor exists on top
of the logits the engine already holds. The backward is hand-written for the same reason: autograd through
``log_softmax`` would save an [N, V] fp32 tensor per call.

For each row with scaled logits l = logits / T, log-partition Z and p = softmax(l):
    log p_k = l_k − log Z
    H = −Σ_v p_v log p_v = log Z − Σ_v p_v l_v
    ∂ log p_k / ∂ l_j = 1[j = k] − p_j
    ∂ H / ∂ l_j = −p_j (log p_j + H)
and ∂/∂logits = (∂/∂l) / T.

Backends: ``chunked`` (this module, any device) and ``triton`` (:mod:`srpo_verl.core.logprobs_triton`: fused
one-read kernels, CUDA). ``auto`` picks triton for CUDA logits when the package is importable, chunked otherwise; the
environment variable ``SRPO_VERL_LOGPROBS_BACKEND`` sets the default for a whole run.
"""

from __future__ import annotations

import functools
import logging
import os

import torch

from srpo_verl.core.methods import LOGPROB_BACKENDS as BACKENDS

DEFAULT_CHUNK_SIZE = 1024
BACKEND_ENV = "SRPO_VERL_LOGPROBS_BACKEND"
logger = logging.getLogger(__name__)


def _shifted_chunk(logits_chunk: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 copy of a [C, V] chunk divided by T and shifted by its row max, in place on the copy; the max [C])."""
    scratch = logits_chunk.to(torch.float32, copy=True)
    if temperature != 1.0:
        scratch.div_(temperature)
    row_max = scratch.amax(dim=-1, keepdim=True)
    scratch.sub_(row_max)
    return scratch, row_max.squeeze(-1)


def _forward_chunk(
    logits_chunk: torch.Tensor, k: int | None, ids_chunk: torch.Tensor | None, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk: (log-probs at ids [C, K], ids [C, K], log Z of the scaled logits [C], entropy [C])."""
    shifted, row_max = _shifted_chunk(logits_chunk, temperature)
    if ids_chunk is None:
        picked, ids_chunk = shifted.topk(k, dim=-1)
    else:
        picked = shifted.gather(-1, ids_chunk)
    weights = shifted.exp_()  # reuses the buffer: e_v = exp(l_v − max)
    partition = weights.sum(dim=-1)
    weights.xlogy_(weights)  # e_v · log e_v = e_v · (l_v − max), still in the same buffer
    weighted_logit_sum = weights.sum(dim=-1)
    log_partition = partition.log()
    entropy = log_partition - weighted_logit_sum / partition
    return picked - log_partition.unsqueeze(-1), ids_chunk, row_max + log_partition, entropy


def _rows_of(logits: torch.Tensor, rows: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
    """The [stop − start, V] logits of selected rows start:stop (a view without ``rows``, a chunk copy with it)."""
    return logits[start:stop] if rows is None else logits.index_select(0, rows[start:stop])


def chunked_topk(
    logits: torch.Tensor, rows: torch.Tensor | None, k: int, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values in the logits' dtype, ids) of the k largest raw logits of the selected rows, [M, k] each, computed
    ``chunk_size`` rows at a time so that ``torch.topk``'s scratch (and a row-selection copy) stays one chunk."""
    count = logits.shape[0] if rows is None else rows.shape[0]
    values = torch.empty(count, k, dtype=logits.dtype, device=logits.device)
    ids = torch.empty(count, k, dtype=torch.long, device=logits.device)
    for start in range(0, count, chunk_size):
        stop = min(start + chunk_size, count)
        torch.topk(_rows_of(logits, rows, start, stop), k, dim=-1, out=(values[start:stop], ids[start:stop]))
    return values, ids


class _ChunkedLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, rows, ids, k, temperature, chunk_size):
        # An output that is not used (usually the entropy) gets None in the backward, not a zero tensor to test.
        ctx.set_materialize_grads(False)
        count = logits.shape[0] if rows is None else rows.shape[0]
        width = k if ids is None else ids.shape[-1]
        logp = torch.empty(count, width, dtype=torch.float32, device=logits.device)
        out_ids = torch.empty(count, width, dtype=torch.long, device=logits.device)
        log_partition = torch.empty(count, dtype=torch.float32, device=logits.device)
        entropy = torch.empty(count, dtype=torch.float32, device=logits.device)
        for start in range(0, count, chunk_size):
            stop = min(start + chunk_size, count)
            chunk_ids = None if ids is None else ids[start:stop]
            lp, cid, lz, ent = _forward_chunk(_rows_of(logits, rows, start, stop), k, chunk_ids, temperature)
            logp[start:stop], out_ids[start:stop], log_partition[start:stop], entropy[start:stop] = lp, cid, lz, ent
        ctx.save_for_backward(logits, rows, out_ids, log_partition, entropy)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        ctx.mark_non_differentiable(out_ids)
        return logp, out_ids, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_ids, grad_entropy):
        logits, rows, ids, log_partition, entropy = ctx.saved_tensors
        temperature, chunk_size = ctx.temperature, ctx.chunk_size
        # With ``rows``, the rows that were not selected get a zero gradient.
        grad_logits = torch.empty_like(logits) if rows is None else torch.zeros_like(logits)
        in_place = logits.dtype == torch.float32 and rows is None
        count = ids.shape[0]
        for start in range(0, count, chunk_size):
            stop = min(start + chunk_size, count)
            target = grad_logits[start:stop]
            chunk = _rows_of(logits, rows, start, stop)
            # fp32 logits without row selection: the gradient's own slice is the scratch buffer (no extra memory).
            buf = target.copy_(chunk) if in_place else chunk.to(torch.float32, copy=True)
            if temperature != 1.0:
                buf.div_(temperature)
            # log p, floored at −1e4 (where p = 0 in fp32 anyway) so that a −inf logit gives 0, not 0·inf = nan
            buf.sub_(log_partition[start:stop].unsqueeze(-1)).clamp_(min=-1e4)
            g_k = grad_logp[start:stop] if grad_logp is not None else None
            g_sum = g_k.sum(dim=-1, keepdim=True) if g_k is not None else 0.0
            if grad_entropy is not None:
                g_h = grad_entropy[start:stop].unsqueeze(-1)
                coeff = buf.add(entropy[start:stop].unsqueeze(-1)).mul_(g_h).add_(g_sum)  # second buffer
                buf.exp_().mul_(coeff).neg_()
                del coeff
            else:
                buf.exp_().mul_(-g_sum if g_k is not None else 0.0)
            if g_k is not None:
                buf.scatter_add_(-1, ids[start:stop], g_k.to(buf.dtype))
            if temperature != 1.0:
                buf.div_(temperature)
            if rows is not None:
                grad_logits.index_add_(0, rows[start:stop], buf.to(grad_logits.dtype))
            elif not in_place:
                target.copy_(buf)
            del buf  # before the next chunk's copy is made, or two fp32 chunks are alive at once
        return grad_logits, None, None, None, None, None


@functools.lru_cache(maxsize=None)
def _fused_module():
    """srpo_verl.core.logprobs_triton, or the ImportError that prevents it."""
    try:
        from srpo_verl.core import logprobs_triton
    except ImportError as err:
        return err
    return logprobs_triton


def resolve_backend(backend: str | None, logits: torch.Tensor) -> str:
    """The backend that will run for these logits: ``chunked`` or ``triton`` (see the module docstring)."""
    choice = backend or os.environ.get(BACKEND_ENV) or "auto"
    if choice not in BACKENDS:
        source = "backend" if backend else BACKEND_ENV
        raise ValueError(f"{source}={choice!r} is not one of {', '.join(BACKENDS)}")
    if choice == "chunked" or (choice == "auto" and not logits.is_cuda):
        return "chunked"
    fused = _fused_module()
    if isinstance(fused, ImportError):
        if choice == "triton":
            raise RuntimeError(f"log-prob backend 'triton' needs the triton package, which failed to import: {fused}")
        _warn_once(f"triton is not importable ({fused}); CUDA log-probs use the chunked PyTorch path")
        return "chunked"
    if not logits.is_cuda and not fused.INTERPRETED:
        raise ValueError("log-prob backend 'triton' runs on CUDA tensors (or on CPU under TRITON_INTERPRET=1)")
    return "triton"


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    logger.warning(message)


def _autograd_function(backend: str | None, logits: torch.Tensor):
    if resolve_backend(backend, logits) == "triton":
        return _fused_module().FusedLogProbs
    return _ChunkedLogProbs


def _flatten(logits: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    if logits.dim() < 1:
        raise ValueError("logits must have a vocabulary dimension")
    lead = tuple(logits.shape[:-1])
    return logits.reshape(-1, logits.shape[-1]), lead


def _check(temperature: float, chunk_size: int) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")


def topk_logprobs_with_entropy(
    logits: torch.Tensor,
    k: int,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k log-probs (under the full softmax of logits / T), their ids, and the full-vocabulary entropy.

    Args:
        logits: [..., V] in any float dtype; gradients flow back to it through the log-probs and the entropy.
        k: number of top tokens (1 ≤ k ≤ V).
        temperature: the logits are divided by it (the rollout temperature).
        chunk_size: rows per fp32 scratch chunk (the triton backend uses it only to bound ``torch.topk``).
        rows: optional long [M] indices into the flattened rows of ``logits``, without repeats; only those rows are
            computed (e.g. the response tokens of a packed sequence batch) and the outputs are [M, ...].
        backend: ``auto`` (default), ``chunked`` or ``triton``; see the module docstring.

    Returns:
        (topk_logp float32 [..., k] sorted descending, topk_ids long [..., k], entropy float32 [...]).
    """
    _check(temperature, chunk_size)
    flat, lead = _flatten(logits)
    if not 1 <= k <= flat.shape[-1]:
        raise ValueError(f"k must be in [1, V={flat.shape[-1]}], got {k}")
    if rows is not None:
        lead = (rows.shape[0],)
        if rows.numel() == 0:  # nothing selected: no autograd node, so no [N, V] zero gradient in the backward
            empty = flat.new_zeros((0, k), dtype=torch.float32)
            return empty, empty.long(), flat.new_zeros(0, dtype=torch.float32)
    function = _autograd_function(backend, flat)
    logp, ids, entropy = function.apply(flat, rows, None, k, float(temperature), int(chunk_size))
    return logp.reshape(*lead, k), ids.reshape(*lead, k), entropy.reshape(lead)


def topk_token_ids(
    logits: torch.Tensor, k: int, chunk_size: int = DEFAULT_CHUNK_SIZE, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """The ids of the k most likely tokens per row, without log-probs or entropy (the π_old pass needs only these).

    Dividing by a temperature T > 0 keeps the order, so the raw logits are ranked; no fp32 copy is made.

    Args:
        logits: [..., V]; k: 1 ≤ k ≤ V; chunk_size, rows: as in :func:`topk_logprobs_with_entropy`.

    Returns:
        long [..., k] (or [M, k] with ``rows``), in descending order of the logits.
    """
    _check(1.0, chunk_size)
    flat, lead = _flatten(logits)
    if not 1 <= k <= flat.shape[-1]:
        raise ValueError(f"k must be in [1, V={flat.shape[-1]}], got {k}")
    if rows is not None:
        lead = (rows.shape[0],)
    with torch.no_grad():
        _, ids = chunked_topk(flat, rows, k, chunk_size)
    return ids.reshape(*lead, k)


def gather_logprobs_with_entropy(
    logits: torch.Tensor,
    ids: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rows: torch.Tensor | None = None,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs (under the full softmax of logits / T) at given token ids, and the full-vocabulary entropy.

    Args:
        logits: [..., V].
        ids: long [..., K] (K ids per row, e.g. the student's stored top-k) or [...] (one id per row, e.g. the
            sampled token); repeated ids are allowed.
        temperature, chunk_size, rows, backend: as in :func:`topk_logprobs_with_entropy`; with ``rows`` [M], ``ids`` is
            [M, K] or [M].

    Returns:
        (logp float32 with the shape of ``ids``, entropy float32 [...]).
    """
    _check(temperature, chunk_size)
    flat, lead = _flatten(logits)
    if rows is not None:
        lead = (rows.shape[0],)
        if rows.numel() == 0:  # nothing selected: no autograd node, so no [N, V] zero gradient in the backward
            return flat.new_zeros(ids.shape, dtype=torch.float32), flat.new_zeros(0, dtype=torch.float32)
    single = ids.dim() == len(lead)
    if tuple(ids.shape[: len(lead)]) != lead or ids.dim() not in (len(lead), len(lead) + 1):
        raise ValueError(f"ids shape {tuple(ids.shape)} does not match logits' leading shape {lead}")
    flat_ids = ids.reshape(-1, 1) if single else ids.reshape(-1, ids.shape[-1])
    function = _autograd_function(backend, flat)
    logp, _, entropy = function.apply(flat, rows, flat_ids.long(), None, float(temperature), int(chunk_size))
    return logp.reshape(ids.shape), entropy.reshape(lead)
