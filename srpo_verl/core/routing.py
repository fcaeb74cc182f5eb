"""Sample routing: which rollouts are self-distilled (SDPO) and which go through GRPO (SRPO_SPEC §1.2, §5.2, §7.19).

A rollout is *correct* when its reward is at least the threshold (0.5 in the paper, App. B.5). Its demonstration is
the first correct rollout of the same group, in the order given, other than itself: the SDPO code's
``solution_idxs[0]`` with ``dont_reprompt_on_self_success`` (SRPO_SPEC §5.2), which the paper's Table 6 example follows.
Callers pass samples in rollout-index order (verl's batch balancing reorders batches; see ``srpo_verl`` trainer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

ROUTE_MODES = ("srpo", "sdpo", "sdpo_incorrect_only", "sdpo_correct_only", "grpo")


@dataclass(frozen=True)
class RouteResult:
    """Per-sample routing decision, all tensors of shape [B] on the rewards' device.

    correct: reward ≥ threshold.
    demo_index: index of the first *other* correct sample of the same group (−1 if none).
    teacher_available: a demonstration exists, or environment feedback was supplied for the sample (m_i in §1.2).
    distill: the samples that get self-distillation under ``mode``.
    mode: the routing mode that produced ``distill``.
    memory_demo: bool[B], the demonstration comes from the success memory (``srpo_verl.core.success_memory``;
        None when the memory is off).
    """

    correct: torch.Tensor
    demo_index: torch.Tensor
    teacher_available: torch.Tensor
    distill: torch.Tensor
    mode: str
    memory_demo: torch.Tensor | None = None

    @property
    def grpo(self) -> torch.Tensor:
        """bool[B]: the complement of ``distill`` (z^GRPO = 1 − z^SDPO in SRPO)."""
        return ~self.distill


def group_codes(group_ids: Sequence | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Map arbitrary hashable group ids (str uids, ints, a tensor) to dense codes 0..G−1.

    Returns long[B]. Samples are grouped by id value only, never by position.
    """
    if isinstance(group_ids, torch.Tensor):
        if group_ids.dim() != 1:
            raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
        _, codes = torch.unique(group_ids, return_inverse=True)
        return codes.to(device=device if device is not None else group_ids.device)
    table: dict = {}
    codes = [table.setdefault(g.item() if hasattr(g, "item") else g, len(table)) for g in group_ids]
    return torch.tensor(codes, dtype=torch.long, device=device)


def _first_index_per_group(member: torch.Tensor, codes: torch.Tensor, num_groups: int) -> torch.Tensor:
    """long[G]: the lowest position whose ``member`` flag is set in each group, or B when none."""
    batch = codes.numel()
    position = torch.arange(batch, device=codes.device)
    first = torch.full((num_groups,), batch, dtype=torch.long, device=codes.device)
    candidates = torch.where(member, position, torch.full_like(position, batch))
    return first.scatter_reduce(0, codes, candidates, reduce="amin", include_self=True)


def route_samples(
    rewards: torch.Tensor,
    group_ids: Sequence | torch.Tensor,
    threshold: float = 0.5,
    mode: str = "srpo",
    feedback_available: torch.Tensor | None = None,
) -> RouteResult:
    """Route each rollout to self-distillation or GRPO (SRPO_SPEC §1.2 routing equation and Table 7).

    Args:
        rewards: float[B] sequence rewards, samples in rollout-index order within each group.
        group_ids: B ids (str/int/tensor); samples with equal ids are siblings (rollouts of one prompt).
        threshold: a sample is correct when ``reward >= threshold``.
        mode: ``srpo``: failed samples with a teacher (z^SDPO = (1−c)·m).
            ``sdpo``: every sample with a teacher, correct ones included (the SDPO baseline, SRPO_SPEC §5.2 step 5).
            ``sdpo_incorrect_only`` / ``sdpo_correct_only``: the Fig. 1(b) ablations. ``grpo``: nobody.
        feedback_available: optional bool[B]; environment feedback counts as teacher information (off in the paper).

    Returns:
        A :class:`RouteResult`.
    """
    if mode not in ROUTE_MODES:
        raise ValueError(f"route mode {mode!r} is not one of {ROUTE_MODES}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    codes = group_codes(group_ids, device=rewards.device)
    if codes.numel() != rewards.numel():
        raise ValueError(f"got {rewards.numel()} rewards but {codes.numel()} group ids")
    batch = rewards.numel()
    num_groups = int(codes.max().item()) + 1 if batch else 0

    correct = rewards >= threshold
    first = _first_index_per_group(correct, codes, num_groups)
    position = torch.arange(batch, device=rewards.device)
    is_first = correct & (first[codes] == position)
    second = _first_index_per_group(correct & ~is_first, codes, num_groups)
    demo = torch.where(is_first, second[codes], first[codes])
    has_demo = demo < batch
    demo_index = torch.where(has_demo, demo, torch.full_like(demo, -1))

    teacher_available = has_demo
    if feedback_available is not None:
        teacher_available = teacher_available | feedback_available.to(device=rewards.device, dtype=torch.bool)

    if mode == "grpo":
        distill = torch.zeros_like(correct)
    elif mode == "sdpo":
        distill = teacher_available
    elif mode == "sdpo_correct_only":
        distill = correct & teacher_available
    else:  # srpo and sdpo_incorrect_only route the same samples; their losses differ for the rest
        distill = ~correct & teacher_available
    return RouteResult(correct, demo_index, teacher_available, distill, mode)


def route_metrics(route: RouteResult) -> dict[str, float]:
    """Fractions of the batch logged under ``srpo/route/*`` (SRPO_SPEC §7.27, Fig. 5).

    grpo_frac: not distilled. sdpo_frac: distilled. no_demo_frac: failed with no teacher information (the GRPO
    fallback of Table 7's last row). With the success memory on, memory/routed_frac: distilled with a memory
    demonstration.
    """
    batch = max(route.correct.numel(), 1)
    failed_without_teacher = ~route.correct & ~route.teacher_available
    metrics = {
        "srpo/route/grpo_frac": route.grpo.sum().item() / batch,
        "srpo/route/sdpo_frac": route.distill.sum().item() / batch,
        "srpo/route/no_demo_frac": failed_without_teacher.sum().item() / batch,
    }
    if route.memory_demo is not None:
        metrics["srpo/memory/routed_frac"] = route.memory_demo.sum().item() / batch
    return metrics
