"""Verifiers of the paper's tasks behind one verl custom-reward function (SRPO_SPEC §2, §5.4).

`compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)` is verl 0.9.1's custom-reward
signature. It dispatches on `data_source`: srpo_verl's families (a bare family name, or `family/<anything>`, e.g.
`synthetic/add`, `math_verify/MATH-500`) first, then verl's own data sources (`openai/gsm8k`, `math_dapo`, `aime*`,
...: `srpo_verl.rewards.verl_sources`, scored by verl's default_compute_score). Either way it returns a dict with the
keys of `srpo_verl.rewards.result.RESULT_KEYS`, always the same and all JSON scalars, `score` in [0, 1].

Reward kwargs (set with `+reward.custom_reward_function.reward_kwargs.<name>=...`):
- env_feedback (bool, default False): fill `feedback` for failed attempts (see `srpo_verl.rewards.feedback`);
- allow_answer_revealing_feedback (bool, default False): required with env_feedback for tool use.
"""

from __future__ import annotations

from srpo_verl.rewards import verl_sources
from srpo_verl.rewards.feedback import feedback_enabled
from srpo_verl.rewards.math_answer import score_math
from srpo_verl.rewards.mcq import score_mcq
from srpo_verl.rewards.result import RESULT_KEYS, make_result
from srpo_verl.rewards.synthetic import score_synthetic
from srpo_verl.rewards.tooluse import score_tooluse

__all__ = ["compute_score", "KNOWN_FAMILIES", "RESULT_KEYS", "data_source_family", "make_result"]

_SCORERS = {
    "math_verify": score_math,
    "sciknoweval": score_mcq,
    "synthetic": score_synthetic,
    "tooluse": score_tooluse,
}
KNOWN_FAMILIES = tuple(sorted(_SCORERS))


VERL = "verl"  # the family of every data source scored by verl's default_compute_score


def data_source_family(data_source: str) -> str:
    """`"sciknoweval"` for `"sciknoweval"` or `"sciknoweval/chemistry"`; `"verl"` for a data source verl 0.9.1
    scores (`"openai/gsm8k"`, `"aime2024"`, ...); ValueError for a source neither knows, or a verl code task."""
    if not isinstance(data_source, str):
        raise ValueError(f"data_source must be a string, got {data_source!r} ({type(data_source).__name__})")
    family = data_source.split("/", 1)[0]
    if family in _SCORERS:
        return family
    if data_source in verl_sources.CODE:
        raise ValueError(verl_sources.refuse_code_source(data_source))
    if verl_sources.is_verl_source(data_source):
        return VERL
    raise ValueError(
        f"unknown data_source {data_source!r}: srpo_verl.rewards knows {', '.join(KNOWN_FAMILIES)} "
        "(optionally followed by '/<anything>'); verl 0.9.1's default_compute_score knows "
        f"{verl_sources.describe_verl_sources()} (exact names)"
    )


# What verl 0.9.1's reward managers add to every call (reward_loop/reward_manager/{naive,dapo,gdpo,limited}.py);
# they pass them only when a reward router is configured. Neither changes the score.
VERL_CALL_KWARGS = ("reward_router_address", "reward_model_tokenizer")
REWARD_KWARGS = ("env_feedback", "allow_answer_revealing_feedback")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth,
    extra_info: dict | None = None,
    env_feedback: bool = False,
    allow_answer_revealing_feedback: bool = False,
    **other_kwargs,
) -> dict:
    """Score one completion (verl custom-reward entry point). Raises only for configuration errors (unknown
    `data_source`, bad or misspelled reward kwargs), never because of what the model wrote.
    """
    unexpected = sorted(set(other_kwargs) - set(VERL_CALL_KWARGS))
    if unexpected:
        raise ValueError(f"compute_score got unknown keyword argument(s) {unexpected}; the reward kwargs are "
                         f"{list(REWARD_KWARGS)} (reward.custom_reward_function.reward_kwargs)")
    family = data_source_family(data_source)
    with_feedback = feedback_enabled(family, env_feedback, allow_answer_revealing_feedback)
    if family == VERL:
        return verl_sources.score_verl_source(data_source, solution_str, ground_truth, extra_info, with_feedback)
    return _SCORERS[family](solution_str, ground_truth, with_feedback=with_feedback)
