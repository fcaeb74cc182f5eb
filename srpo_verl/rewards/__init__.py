"""Verifiers of the paper's tasks behind one verl custom-reward function (spec §2, §5.4).

`compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)` is verl 0.9.1's custom-reward
signature. It dispatches on `data_source` (a bare family name, or `family/<anything>`, e.g. `synthetic/add`) and
returns a dict with the keys of `srpo_verl.rewards.result.RESULT_KEYS`, always the same and all JSON scalars.

Reward kwargs (set with `+reward.custom_reward_function.reward_kwargs.<name>=...`):
- env_feedback (bool, default False): fill `feedback` for failed attempts (see `srpo_verl.rewards.feedback`);
- allow_answer_revealing_feedback (bool, default False): required with env_feedback for tool use.
"""

from __future__ import annotations

from srpo_verl.rewards.feedback import feedback_enabled
from srpo_verl.rewards.mcq import score_mcq
from srpo_verl.rewards.result import RESULT_KEYS, make_result
from srpo_verl.rewards.synthetic import score_synthetic
from srpo_verl.rewards.tooluse import score_tooluse

__all__ = ["compute_score", "KNOWN_FAMILIES", "RESULT_KEYS", "data_source_family", "make_result"]

_SCORERS = {
    "sciknoweval": score_mcq,
    "synthetic": score_synthetic,
    "tooluse": score_tooluse,
}
KNOWN_FAMILIES = tuple(sorted(_SCORERS))


def data_source_family(data_source: str) -> str:
    """`"sciknoweval"` for `"sciknoweval"` or `"sciknoweval/chemistry"`; ValueError for an unknown source."""
    family = str(data_source).split("/", 1)[0]
    if family not in _SCORERS:
        raise ValueError(
            f"unknown data_source {data_source!r}: srpo_verl.rewards knows {', '.join(KNOWN_FAMILIES)} "
            "(optionally followed by '/<anything>')"
        )
    return family


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth,
    extra_info: dict | None = None,
    env_feedback: bool = False,
    allow_answer_revealing_feedback: bool = False,
    **verl_kwargs,
) -> dict:
    """Score one completion (verl custom-reward entry point). Raises only for configuration errors (unknown
    `data_source`, bad feedback kwargs), never because of what the model wrote.

    `verl_kwargs` absorbs what verl's reward manager adds to every call (e.g. reward-router arguments); none of it
    changes the score.
    """
    family = data_source_family(data_source)
    with_feedback = feedback_enabled(family, env_feedback, allow_answer_revealing_feedback)
    return _SCORERS[family](solution_str, ground_truth, with_feedback=with_feedback)
