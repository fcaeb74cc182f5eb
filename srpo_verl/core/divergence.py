"""Top-K distillation distributions and the generalised Jensen-Shannon divergence (SRPO_SPEC §1.4, §5.3).

The student's top-K tokens (K = 100) plus one tail bucket holding the remaining probability mass form a (K+1)-way
distribution on both sides; the teacher's log-probs are gathered at the student's ids (SDPO App. A.3, Eq. 11).
"""

from __future__ import annotations

import math

import torch

_LOG_HALF = -math.log(2.0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate at both ends (Mächler 2012): expm1 near 0, log1p far from it."""
    return torch.where(x > _LOG_HALF, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def add_tail_bucket(topk_logp: torch.Tensor, max_log_mass: float = -1e-7) -> torch.Tensor:
    """Append the tail bucket log(1 − Σ_k p_k) to top-K log-probs (SRPO_SPEC §5.3).

    Args:
        topk_logp: [..., K] log-probs under the full softmax (not renormalised).
        max_log_mass: the top-K log-mass is clamped to at most this value, so the tail stays finite (log 1e-7 ≈
            −16.1) when the top-K mass rounds to 1; the SDPO code uses the same clamp.

    Returns:
        [..., K+1] log-probs in fp32 (or fp64 if given), summing to 1 up to the clamp.
    """
    if topk_logp.dtype not in (torch.float32, torch.float64):
        topk_logp = topk_logp.float()
    log_mass = torch.logsumexp(topk_logp, dim=-1, keepdim=True).clamp(max=max_log_mass)
    return torch.cat([topk_logp, log1mexp(log_mass)], dim=-1)


def _kl_from_logs(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ p (log p − log q) over the last dim (inputs finite)."""
    return (torch.exp(logp) * (logp - logq)).sum(dim=-1)


def distill_divergence(student_logp: torch.Tensor, teacher_logp: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Per-token divergence between student S and teacher T over the last dim (SRPO_SPEC §5.3).

    α = 0: KL(T‖S) (forward). α = 1: KL(S‖T) (reverse). Otherwise the generalised JSD
    (1−α)·KL(S‖M) + α·KL(T‖M) with M = (1−α)·S + α·T, computed in log space.
    The teacher is the stop-gradient target: pass it detached.

    Args:
        student_logp, teacher_logp: [..., K+1] normalised log-distributions (e.g. from :func:`add_tail_bucket`).
        alpha: in [0, 1].

    Returns:
        [...] per-token divergence.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if student_logp.shape != teacher_logp.shape:
        raise ValueError(f"student {tuple(student_logp.shape)} and teacher {tuple(teacher_logp.shape)} shapes differ")
    # Zero-probability buckets (log p = −inf) would give NaN gradients through the mixture's logsumexp; any
    # log-prob below −1e4 is exactly 0 in fp32/fp64 probability, so the clamp changes no value.
    student_logp = student_logp.clamp(min=-1e4)
    teacher_logp = teacher_logp.clamp(min=-1e4)
    if alpha == 0.0:
        return _kl_from_logs(teacher_logp, student_logp)
    if alpha == 1.0:
        return _kl_from_logs(student_logp, teacher_logp)
    log_mix = torch.logsumexp(
        torch.stack([student_logp + math.log(1.0 - alpha), teacher_logp + math.log(alpha)]), dim=0
    )
    return (1.0 - alpha) * _kl_from_logs(student_logp, log_mix) + alpha * _kl_from_logs(teacher_logp, log_mix)
