"""Who may put environment feedback into the self-teacher's prompt (SRPO_SPEC §5.1 `include_environment_feedback`).

Off by default for every task: the SRPO experiments use none (SRPO_SPEC §1.2, App. B.5), only a correct sibling.
A run opts in per task with the reward kwarg `env_feedback=true`. The tool-use feedback text lists the expected
tool calls, i.e. the gold answer: a teacher that sees it is no longer a self-teacher but an answer key, and SDPO's
own scripts keep it off for that reason. Enabling it for tool use therefore needs a second, explicit kwarg,
`allow_answer_revealing_feedback=true`.
"""

from __future__ import annotations

# Task families whose feedback text contains the gold answer.
ANSWER_REVEALING_FAMILIES = frozenset({"tooluse"})


def feedback_enabled(family: str, env_feedback: bool, allow_answer_revealing_feedback: bool) -> bool:
    """Whether the verifier of `family` should fill the `feedback` key.

    Raises ValueError when feedback is requested for an answer-revealing family without the second flag, so a
    misconfigured run fails at its first reward instead of silently training on leaked answers.
    """
    for name, value in (("env_feedback", env_feedback), ("allow_answer_revealing_feedback",
                                                         allow_answer_revealing_feedback)):
        if not isinstance(value, bool):
            raise ValueError(f"reward kwarg {name} must be a bool, got {value!r} ({type(value).__name__})")
    if not env_feedback:
        return False
    if family in ANSWER_REVEALING_FAMILIES and not allow_answer_revealing_feedback:
        raise ValueError(
            f"env_feedback=true for data_source family {family!r}, whose feedback reveals the gold answer "
            "(the expected tool calls). Set the reward kwarg allow_answer_revealing_feedback=true as well if that "
            "is really intended (see docs/TASKS.md), or leave env_feedback off as in the SRPO/SDPO experiments."
        )
    return True
