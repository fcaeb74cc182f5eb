"""Group-relative advantages (SRPO_SPEC §1.3, §7.10).

A_i = r_i − mean_g(r), optionally divided by (std_g(r) + eps), over the *whole* group of G rollouts, including
those routed to self-distillation. This reproduces verl's ``compute_grpo_outcome_advantage`` exactly: unbiased std
(N−1), and a group of one sample has mean 0 and std 1 (so its advantage is its reward).

Training uses verl's own function; this one is the executable statement of the formula that
tests/unit/test_advantages.py holds verl's to (a verl upgrade that changes it fails there) and that the loss tests
build their advantages with.
"""

from __future__ import annotations

from typing import Sequence

import torch

from srpo_verl.core.routing import group_codes


def group_advantages(
    rewards: torch.Tensor,
    group_ids: Sequence | torch.Tensor,
    norm_by_std: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Sequence-level GRPO advantages.

    Args:
        rewards: float[B] sequence rewards.
        group_ids: B ids; equal ids form a group.
        norm_by_std: divide by (std + eps) as the SRPO equation writes it (§1.3); the baselines' config and our
            default is Dr.GRPO's plain centring (``norm_adv_by_std_in_grpo=False``).
        eps: added to the std.

    Returns:
        float[B] advantages (same dtype as ``rewards``).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    codes = group_codes(group_ids, device=rewards.device)
    if codes.numel() != rewards.numel():
        raise ValueError(f"got {rewards.numel()} rewards but {codes.numel()} group ids")
    if rewards.numel() == 0:
        return rewards.clone()
    num_groups = int(codes.max().item()) + 1
    count = torch.zeros(num_groups, dtype=rewards.dtype, device=rewards.device).index_add_(
        0, codes, torch.ones_like(rewards)
    )
    total = torch.zeros(num_groups, dtype=rewards.dtype, device=rewards.device).index_add_(0, codes, rewards)
    mean = total / count
    singleton = count == 1
    mean = torch.where(singleton, torch.zeros_like(mean), mean)
    centred = rewards - mean[codes]
    if not norm_by_std:
        return centred
    deviation = rewards - (total / count)[codes]
    sq = torch.zeros_like(total).index_add_(0, codes, deviation * deviation)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    std = torch.where(singleton, torch.ones_like(std), std)
    return centred / (std[codes] + eps)
