"""Per-token losses of the three methods and their exact batch aggregation (SRPO_SPEC §1.3–§1.7, §5.3, §7.21–§7.26).

Every per-token loss here is un-aggregated ([B, T]); :func:`aggregate_token_loss` turns it into a scalar with a
*given* global denominator, so that summing the micro-batch losses of one update batch (across gradient accumulation
and data-parallel ranks) gives exactly the spec's single token-mean L_final (§1.5):

    L_final = [ Σ_{GRPO tokens} ℓ^GRPO + Σ_{SDPO tokens} w·ℓ^SDPO ] / (number of valid response tokens)

Methods (``RoutedLossConfig.method``) and how each row's loss is formed from the two branches:

==========================  =============================  ====================================================
method                      GRPO branch weight             distillation branch weight
==========================  =============================  ====================================================
grpo                        1                              0
srpo, srpo_no_dw            1 − z (z: routed to SDPO)      z (× entropy weight in ``srpo`` only, §1.4)
sdpo, sdpo_incorrect_only,  0 (non-distilled rows get      z (the SDPO baseline distils every sample with a
sdpo_correct_only           zero loss, SRPO_SPEC §5.2 step 5)   demo; the ablations restrict z, Fig. 1(b))
adv_mix                     λ                              (1 − λ)·z (§1.7, no routing: z = has a demo)
==========================  =============================  ====================================================

``adv_mix`` implements A^Mix = λ·A^GRPO + (1−λ)·A^SDPO as the loss λ·ℓ^GRPO + (1−λ)·ℓ^SDPO: both branches are
linear in their advantages, and the distillation loss is the objective whose gradient is the policy gradient with
SDPO's logit-level advantage (SDPO Prop. 2.1), so the mixed loss has exactly the mixed-advantage gradient. Samples
without a demonstration have no A^SDPO and keep λ·ℓ^GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_verl.core.divergence import add_tail_bucket, distill_divergence

from srpo_verl.core.methods import (  # noqa: F401  (re-exported: the names the loss functions are defined for)
    LOSS_AGG_MODES,
    METHOD_ROUTE_MODE,
    METHODS,
    METHODS_WITH_ENTROPY_WEIGHTS,
    RoutedLossConfig,
)


def is_clip_weights(log_prob: torch.Tensor, old_log_prob: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Detached per-token importance weight min(exp(log π_θ − log π_old), clip) (SRPO_SPEC §5.3); ones when clip is None.

    Shapes: [B, T] → [B, T].
    """
    if clip is None:
        return torch.ones_like(log_prob).detach()
    ratio = torch.exp((log_prob - old_log_prob).detach().clamp(-20.0, 20.0))
    return ratio.clamp(max=clip)


def grpo_clipped_surrogate(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_c: float = 3.0,
) -> torch.Tensor:
    """Per-token PPO/GRPO clipped surrogate with asymmetric (DAPO) and dual clipping (SRPO_SPEC §1.3, §7.11).

    ℓ = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A), and for A < 0 additionally capped at −c·A (dual clip); ρ is the
    token ratio π_θ/π_old with the log-ratio clamped to ±20, as in verl's ``compute_policy_loss_vanilla``.

    Args:
        log_prob, old_log_prob: [B, T] log-probs of the sampled tokens.
        advantages: [B] (sequence-level) or [B, T].

    Returns:
        [B, T] per-token loss (not masked, not aggregated).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp((log_prob - old_log_prob).clamp(-20.0, 20.0))
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss = torch.maximum(unclipped, clipped)
    dual = torch.minimum(-advantages * clip_ratio_c, loss)
    return torch.where(advantages < 0, dual, loss)


def branch_weights(method: str, distill: torch.Tensor, adv_mix_lambda: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """(GRPO weight, distillation weight), each float[B], per the table in this module's docstring."""
    if method not in METHODS:
        raise ValueError(f"srpo.method={method!r} is not one of {METHODS}")
    z = distill.float()
    if method == "grpo":
        return torch.ones_like(z), torch.zeros_like(z)
    if method in ("srpo", "srpo_no_dw"):
        return 1.0 - z, z
    if method == "adv_mix":
        return torch.full_like(z, adv_mix_lambda), (1.0 - adv_mix_lambda) * z
    return torch.zeros_like(z), z


def topk_distribution(topk_logp: torch.Tensor, add_tail: bool) -> torch.Tensor:
    """[..., K] top-K log-probs → the K+1 (tail bucket) or K (renormalised) distribution the divergence runs on."""
    if add_tail:
        return add_tail_bucket(topk_logp)
    topk_logp = topk_logp.float()
    return topk_logp - torch.logsumexp(topk_logp, dim=-1, keepdim=True)


def distillation_token_loss(
    student_topk_logp: torch.Tensor,
    teacher_topk_logp: torch.Tensor,
    alpha: float = 0.5,
    add_tail: bool = True,
) -> torch.Tensor:
    """Per-token top-K distillation divergence ℓ^SDPO (SRPO_SPEC §5.3), teacher detached.

    Args:
        student_topk_logp: [B, T, K] student log-probs at its top-K ids (with gradient).
        teacher_topk_logp: [B, T, K] teacher log-probs at the same ids.

    Returns:
        [B, T].
    """
    student = topk_distribution(student_topk_logp, add_tail)
    teacher = topk_distribution(teacher_topk_logp.detach(), add_tail)
    return distill_divergence(student, teacher, alpha)


def sampled_token_distillation_loss(student_logp: torch.Tensor, teacher_logp: torch.Tensor) -> torch.Tensor:
    """Per-token token-level distillation (SDPO's non-full-logit branch, reverse KL only):
    ``(log π_S(y_t) − log π_T(y_t)).detach() · log π_S(y_t)`` on the sampled token y_t, teacher detached.

    Its value is a sampled-token estimate of KL(π_S‖π_T) times log π_S; its gradient, (log π_S − log π_T)·∇log π_S,
    is the score-function estimate of ∇KL(π_S‖π_T) on tokens sampled from the student.

    Args:
        student_logp: [...] the student's log-prob of each sampled token (with gradient), fp32.
        teacher_logp: [...] the teacher's log-prob of the same token.

    Returns:
        [...].
    """
    return (student_logp - teacher_logp).detach() * student_logp


@dataclass
class RoutedTokenLoss:
    """Per-token loss contributions, each [B, T] and already multiplied by the branch weights (not masked)."""

    grpo: torch.Tensor
    distill: torch.Tensor


def routed_token_loss(
    config: RoutedLossConfig,
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    distill: torch.Tensor,
    student_topk_logp: torch.Tensor | None = None,
    teacher_topk_logp: torch.Tensor | None = None,
    entropy_weights: torch.Tensor | None = None,
    rollout_is_weights: torch.Tensor | None = None,
    divergence: torch.Tensor | None = None,
) -> RoutedTokenLoss:
    """The per-token SRPO/SDPO/GRPO loss before aggregation (SRPO_SPEC §7.21–§7.22).

    Args:
        config: method and hyperparameters.
        log_prob, old_log_prob: [B, T] sampled-token log-probs under π_θ (with gradient) and π_old.
        advantages: [B] or [B, T] GRPO advantages.
        distill: bool[B], the rows routed to self-distillation (``RouteResult.distill``).
        student_topk_logp, teacher_topk_logp: [B, T, K] log-probs at the student's top-K ids; required when any
            row is distilled. Rows that are not distilled may hold anything (they are replaced, so no NaN leaks).
        entropy_weights: [B, T] normalised dynamic weights (:func:`srpo_verl.core.entropy_weights`) applied to the
            distillation tokens; pass them only for ``srpo``.
        rollout_is_weights: [B, T] verl's rollout-correction weights min(π_old/π_rollout, ρ), detached; they
            multiply both branches (SRPO_SPEC §7.9).
        divergence: [B, T] the per-token :func:`distillation_token_loss`, when it was already computed (the verl
            integration computes it inside the engine's logits pass); replaces the two top-K arguments, which the
            parity tests against the official SDPO code use (the equation on top-K log-probs, as that code has it).

    Returns:
        :class:`RoutedTokenLoss` with the branch-weighted GRPO and distillation parts.
    """
    grpo_w, distill_w = branch_weights(config.method, distill, config.adv_mix_lambda)
    grpo_part = grpo_w.unsqueeze(-1) * grpo_clipped_surrogate(
        log_prob, old_log_prob, advantages, config.clip_ratio_low, config.clip_ratio_high, config.clip_ratio_c
    )
    needs_distill = config.method != "grpo"
    if needs_distill and divergence is None and (student_topk_logp is None or teacher_topk_logp is None):
        raise ValueError(f"srpo.method={config.method} needs student and teacher top-K log-probs")
    if needs_distill:
        if divergence is None:
            rows = distill.view(-1, 1, 1)
            # Non-distilled rows compare the student with itself: zero loss, and no NaN from unused teacher rows.
            teacher = torch.where(rows, teacher_topk_logp.detach().float(), student_topk_logp.detach().float())
            divergence = distillation_token_loss(student_topk_logp, teacher, config.alpha, config.add_tail)
        else:
            divergence = torch.where(distill.unsqueeze(-1), divergence, torch.zeros_like(divergence))
        divergence = divergence * is_clip_weights(log_prob, old_log_prob, config.is_clip)
        if entropy_weights is not None:
            divergence = divergence * entropy_weights.detach()
        distill_part = distill_w.unsqueeze(-1) * divergence
    else:
        distill_part = torch.zeros_like(grpo_part)
    if rollout_is_weights is not None:
        grpo_part = grpo_part * rollout_is_weights.detach()
        distill_part = distill_part * rollout_is_weights.detach()
    return RoutedTokenLoss(grpo=grpo_part, distill=distill_part)


def aggregate_token_loss(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    global_token_count: torch.Tensor | float | None = None,
    global_seq_count: torch.Tensor | float | None = None,
    dp_size: int = 1,
) -> torch.Tensor:
    """Aggregate a [B, T] per-token loss of one micro-batch with a global denominator (SRPO_SPEC §1.5, §7.23).

    token-mean: Σ loss·mask / N_tokens, N_tokens the valid tokens of the whole update batch.
    token-sum: Σ loss·mask.
    seq-mean-token-mean: Σ_seq (Σ_t loss·mask / n_seq) / N_seqs (sequences with no valid token add 0).
    seq-mean-token-sum: Σ_seq Σ_t loss·mask / N_seqs.

    With the counts left as None they are this call's own (valid tokens; sequences with a valid token), i.e. the
    plain mean over the given rows. Summing the results of the micro-batches of one batch, each given the batch's
    counts, equals aggregating the batch at once. ``dp_size`` multiplies the result, because data-parallel
    gradient all-reduce averages over ranks; the conventions are those of verl's ``agg_loss``.

    Returns:
        scalar tensor.
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"actor.loss_agg_mode={mode!r} is not one of {LOSS_AGG_MODES}")
    mask = mask.to(loss_mat.dtype)
    masked = loss_mat * mask
    if mode == "token-mean":
        denom = mask.sum().clamp(min=1.0) if global_token_count is None else global_token_count
        return masked.sum() / denom * dp_size
    if mode == "token-sum":
        return masked.sum() * dp_size
    per_seq = masked.sum(dim=-1)
    tokens_per_seq = mask.sum(dim=-1)
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / tokens_per_seq.clamp(min=1.0)
    if global_seq_count is None:
        global_seq_count = (tokens_per_seq > 0).sum().clamp(min=1)
    return per_seq.sum() / global_seq_count * dp_size


@dataclass
class RoutedLoss:
    """The aggregated loss and its parts (scalars); ``loss == grpo + distill`` exactly."""

    loss: torch.Tensor
    grpo: torch.Tensor
    distill: torch.Tensor


def routed_policy_loss(
    config: RoutedLossConfig,
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    distill: torch.Tensor,
    student_topk_logp: torch.Tensor | None = None,
    teacher_topk_logp: torch.Tensor | None = None,
    entropy_weights: torch.Tensor | None = None,
    rollout_is_weights: torch.Tensor | None = None,
    loss_agg_mode: str = "token-mean",
    global_token_count: torch.Tensor | float | None = None,
    global_seq_count: torch.Tensor | float | None = None,
    dp_size: int = 1,
    divergence: torch.Tensor | None = None,
) -> RoutedLoss:
    """L_final of one micro-batch (SRPO_SPEC §1.5): :func:`routed_token_loss` aggregated by :func:`aggregate_token_loss`.

    ``response_mask`` is [B, T] (valid response tokens). Returns the loss and its GRPO/distillation parts, each
    normalised by the same global denominator so that they add up to the loss.
    """
    parts = routed_token_loss(
        config, log_prob, old_log_prob, advantages, distill, student_topk_logp, teacher_topk_logp,
        entropy_weights, rollout_is_weights, divergence,
    )
    counts = (loss_agg_mode, global_token_count, global_seq_count, dp_size)
    grpo = aggregate_token_loss(parts.grpo, response_mask, *counts)
    distill_loss = aggregate_token_loss(parts.distill, response_mask, *counts)
    return RoutedLoss(loss=grpo + distill_loss, grpo=grpo, distill=distill_loss)
