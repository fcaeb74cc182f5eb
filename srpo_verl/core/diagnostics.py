"""Per-step diagnostics of what SRPO did: which samples to show, per-token summaries, the top-K mass gap.

Pure torch (no verl, no ray); used by :mod:`srpo_verl.verl_ext.sample_log` and the routed loss's logits pass.
"""

from __future__ import annotations

import torch

#: route labels of :func:`sample_routes`, in the order :func:`pick_log_samples` cycles through them
ROUTE_LABELS = ("sdpo", "grpo_correct", "grpo_failed")


def sample_routes(distill: torch.Tensor, correct: torch.Tensor) -> list[str]:
    """The route label of each sample: ``sdpo`` (routed to self-distillation), else ``grpo_correct`` or
    ``grpo_failed`` by the verifier.

    Args:
        distill, correct: bool [B] (``RouteResult.distill`` / ``.correct``).

    Returns:
        B labels from :data:`ROUTE_LABELS`.
    """
    return ["sdpo" if bool(d) else ("grpo_correct" if bool(c) else "grpo_failed")
            for d, c in zip(distill.tolist(), correct.tolist(), strict=True)]


def pick_log_samples(routes: list[str], is_padding: torch.Tensor, n: int) -> list[int]:
    """``n`` batch rows to show, deterministic and mixed over routes.

    Rows are taken round-robin over :data:`ROUTE_LABELS` (an SDPO-routed sample first, then a correct GRPO one,
    then a failed GRPO one, again ...), the lowest unshown row of each route each time; a route with no rows left
    is skipped. Padding rows are never shown.

    Args:
        routes: B labels (:func:`sample_routes`); is_padding: bool [B]; n: how many (≥ 0).

    Returns:
        up to ``n`` row indices (fewer when the batch has fewer real rows), in the order picked.
    """
    queues = {label: [i for i, r in enumerate(routes) if r == label and not bool(is_padding[i])]
              for label in ROUTE_LABELS}
    picked: list[int] = []
    while len(picked) < n and any(queues.values()):
        for label in ROUTE_LABELS:
            if queues[label] and len(picked) < n:
                picked.append(queues[label].pop(0))
    return picked


def token_summary(values: torch.Tensor, digits: int = 4) -> dict:
    """Mean / min / max and the per-token list (rounded to ``digits``) of one response's values [T].

    An empty tensor gives None statistics and an empty list.
    """
    values = values.detach().float().flatten()
    if values.numel() == 0:
        return {"mean": None, "min": None, "max": None, "per_token": []}
    return {
        "mean": round(float(values.mean()), digits),
        "min": round(float(values.min()), digits),
        "max": round(float(values.max()), digits),
        "per_token": [round(v, digits) for v in values.tolist()],
    }


def topk_mass_gap(student_topk_logp: torch.Tensor, teacher_topk_logp: torch.Tensor) -> torch.Tensor:
    """Per-token student minus teacher probability mass on the distilled top-K ids (the student's π_old top-K).

    Equal to the teacher's tail bucket minus the student's: > 0 when the teacher puts mass outside the ids the
    student is distilled on (the top-K + tail divergence then sees the teacher mostly as its tail), near 0 when
    the two agree on where the mass is. Detached.

    Args:
        student_topk_logp, teacher_topk_logp: [..., K] log-probs under the full softmax at the same ids.

    Returns:
        [...] in [-1, 1].
    """
    student = student_topk_logp.detach().float().exp().sum(-1)
    teacher = teacher_topk_logp.detach().float().exp().sum(-1)
    return student - teacher
