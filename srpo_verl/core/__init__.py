"""The pure SRPO / SDPO / GRPO algorithm: plain torch and Python, no verl or ray import.

Every function documents its shapes and the section of ``SRPO_SPEC.md`` it implements; the verl integration calls
these and nothing else does the maths.
"""

from srpo_verl.core.advantages import group_advantages
from srpo_verl.core.divergence import add_tail_bucket, distill_divergence, log1mexp
from srpo_verl.core.logprobs import (
    DEFAULT_CHUNK_SIZE,
    gather_logprobs_with_entropy,
    topk_logprobs_with_entropy,
    topk_token_ids,
)
from srpo_verl.core.losses import (
    LOSS_AGG_MODES,
    METHOD_ROUTE_MODE,
    METHODS,
    METHODS_WITH_ENTROPY_WEIGHTS,
    RoutedLoss,
    RoutedLossConfig,
    RoutedTokenLoss,
    aggregate_token_loss,
    branch_weights,
    distillation_token_loss,
    grpo_clipped_surrogate,
    is_clip_weights,
    routed_policy_loss,
    routed_token_loss,
    topk_distribution,
)
from srpo_verl.core.routing import ROUTE_MODES, RouteResult, group_codes, route_metrics, route_samples
from srpo_verl.core.teacher_prompt import (
    FEEDBACK_TEMPLATE,
    REPROMPT_TEMPLATE,
    SOLUTION_TEMPLATE,
    TRUNCATION_MODES,
    TeacherPrompt,
    TeacherTemplates,
    build_teacher_messages,
    demonstration_texts,
    select_teacher_context,
    strip_thinking,
    tokenize_teacher_prompt,
)
from srpo_verl.core.weights import entropy_weight_stats, entropy_weights

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FEEDBACK_TEMPLATE",
    "LOSS_AGG_MODES",
    "METHODS",
    "METHODS_WITH_ENTROPY_WEIGHTS",
    "METHOD_ROUTE_MODE",
    "REPROMPT_TEMPLATE",
    "ROUTE_MODES",
    "RouteResult",
    "RoutedLoss",
    "RoutedLossConfig",
    "RoutedTokenLoss",
    "SOLUTION_TEMPLATE",
    "TRUNCATION_MODES",
    "TeacherPrompt",
    "TeacherTemplates",
    "add_tail_bucket",
    "aggregate_token_loss",
    "branch_weights",
    "build_teacher_messages",
    "demonstration_texts",
    "distill_divergence",
    "distillation_token_loss",
    "entropy_weight_stats",
    "entropy_weights",
    "gather_logprobs_with_entropy",
    "group_advantages",
    "group_codes",
    "grpo_clipped_surrogate",
    "is_clip_weights",
    "log1mexp",
    "route_metrics",
    "route_samples",
    "routed_policy_loss",
    "routed_token_loss",
    "select_teacher_context",
    "strip_thinking",
    "tokenize_teacher_prompt",
    "topk_distribution",
    "topk_logprobs_with_entropy",
    "topk_token_ids",
]
