"""The pure SRPO / SDPO / GRPO algorithm: plain torch and Python, no verl or ray import.

Every function documents its shapes and the section of ``SRPO_SPEC.md`` it implements; the verl integration calls
these and nothing else does the maths.
"""

import importlib

#: public name -> the submodule that defines it; imported on first use (PEP 562), so importing a torch-free
#: submodule (methods, teacher_prompt, routing) does not pull torch in through this package.
_EXPORTS = {
    "DEFAULT_CHUNK_SIZE": "logprobs",
    "FEEDBACK_TEMPLATE": "teacher_prompt",
    "LOSS_AGG_MODES": "losses",
    "METHODS": "losses",
    "METHODS_WITH_ENTROPY_WEIGHTS": "losses",
    "METHOD_ROUTE_MODE": "losses",
    "REPROMPT_TEMPLATE": "teacher_prompt",
    "ROUTE_MODES": "routing",
    "RouteResult": "routing",
    "RoutedLoss": "losses",
    "RoutedLossConfig": "losses",
    "RoutedTokenLoss": "losses",
    "SOLUTION_TEMPLATE": "teacher_prompt",
    "TRUNCATION_MODES": "teacher_prompt",
    "TeacherPrompt": "teacher_prompt",
    "TeacherTemplates": "teacher_prompt",
    "add_tail_bucket": "divergence",
    "aggregate_token_loss": "losses",
    "branch_weights": "losses",
    "build_teacher_messages": "teacher_prompt",
    "demonstration_texts": "teacher_prompt",
    "distill_divergence": "divergence",
    "distillation_token_loss": "losses",
    "sampled_token_distillation_loss": "losses",
    "entropy_weight_stats": "weights",
    "entropy_weights": "weights",
    "gather_logprobs_with_entropy": "logprobs",
    "group_advantages": "advantages",
    "group_codes": "routing",
    "grpo_clipped_surrogate": "losses",
    "is_clip_weights": "losses",
    "log1mexp": "divergence",
    "route_metrics": "routing",
    "route_samples": "routing",
    "routed_policy_loss": "losses",
    "routed_token_loss": "losses",
    "select_teacher_context": "teacher_prompt",
    "strip_thinking": "teacher_prompt",
    "tokenize_teacher_prompt": "teacher_prompt",
    "topk_distribution": "losses",
    "topk_logprobs_with_entropy": "logprobs",
    "topk_token_ids": "logprobs",
}


__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
