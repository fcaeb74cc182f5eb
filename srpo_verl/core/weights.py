"""Entropy-aware dynamic weights for SDPO tokens (SRPO_SPEC §1.4 "Entropy weighting", §7.22).

    w̃_{i,t} = exp(−β·H_{i,t}),    w_{i,t} = w̃_{i,t} / mean_{(j,s) ∈ Ω_sdpo} w̃_{j,s}

with H the teacher's full-vocabulary entropy and Ω_sdpo every valid SDPO token of the *update batch*. The mean must
not be taken per micro-batch (with one sequence per micro-batch it would cancel the cross-sample weighting), so
the normaliser is split out: :func:`entropy_weight_stats` gives a (sum, count) pair that can be summed over
micro-batches and data-parallel ranks (or computed once in the driver), and :func:`entropy_weights` applies it.
"""

from __future__ import annotations

import torch


def entropy_weight_stats(entropy: torch.Tensor, mask: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_Ω exp(−β·H), |Ω|) over the masked tokens, both float64 scalars (sums of partial stats are exact enough).

    Args:
        entropy: float[...] teacher entropy per token.
        mask: bool/0-1 [...] valid SDPO tokens (Ω).
        beta: the dynamic-weighting temperature β > 0 (1 in the paper).
    """
    _check_beta(beta)
    mask = mask.bool()
    unnormalised = torch.exp(-beta * entropy.detach().double())
    return torch.where(mask, unnormalised, torch.zeros_like(unnormalised)).sum(), mask.sum().double()


def entropy_weights(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    beta: float = 1.0,
    weight_sum: torch.Tensor | float | None = None,
    weight_count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Normalised weights w = exp(−β·H) / mean_Ω exp(−β·H), constants (no gradient).

    Args:
        entropy: float[...] teacher entropy per token.
        mask: [...] the tokens Ω the mean runs over (valid SDPO tokens).
        beta: β > 0.
        weight_sum, weight_count: the global (Σ_Ω w̃, |Ω|) from :func:`entropy_weight_stats` summed over the whole
            update batch; when omitted they are computed from this call's ``entropy`` and ``mask``.

    Returns:
        float32 [...]: the weights on ``mask`` (mean exactly 1 over Ω when the stats are this call's), 1 elsewhere.
        An empty Ω gives all ones, never NaN.
    """
    _check_beta(beta)
    if (weight_sum is None) != (weight_count is None):
        raise ValueError("pass both weight_sum and weight_count, or neither")
    if weight_sum is None:
        weight_sum, weight_count = entropy_weight_stats(entropy, mask, beta)
    weight_sum = torch.as_tensor(weight_sum, dtype=torch.float64, device=entropy.device)
    weight_count = torch.as_tensor(weight_count, dtype=torch.float64, device=entropy.device)
    # Tensor conditions instead of Python branches: no host-device sync on the hot path.
    usable = (weight_count > 0) & (weight_sum > 0)
    scale = torch.where(usable, weight_count / torch.where(usable, weight_sum, torch.ones_like(weight_sum)), 1.0)
    weights = torch.exp(-beta * entropy.detach().double()) * scale
    return torch.where(mask.bool() & usable, weights, torch.ones_like(weights)).float()


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"srpo.dw_beta must be > 0, got {beta}")
