"""SciKnowEval multiple-choice verifier (SRPO_SPEC §5.4; SDPO `feedback/mcq.py`).

Reward 1 iff the last `<answer>` block's stripped text equals the stripped gold letter exactly (case-sensitive:
"a" is not "A", "A." is not "A"; that is what the paper's numbers were measured with).
A completion longer than `result.MAX_COMPLETION_CHARS` scores 0 unread (format_ok False, the reason says so): the
parse is linear, ~1 ms per MiB, so the bound keeps one verification in the low milliseconds.
"""

from __future__ import annotations

from srpo_verl.rewards.answer_block import grade_answer_block
from srpo_verl.rewards.result import MAX_COMPLETION_CHARS, clip_for_log, make_result


def mcq_feedback(block_ok: bool, parse_reason: str, pred: str) -> str:
    """Teacher-facing environment feedback for a failed MCQ attempt (only used when a run opts in).

    It states the format problem, or that the chosen option is wrong. It never names the right option, but note that
    on a 2-choice question "option X is wrong" identifies the other one.
    """
    if not block_ok:
        return f"Your response could not be graded: {parse_reason}. End with <answer>\\nLETTER\\n</answer>."
    return f"Your final answer {clip_for_log(pred, 32)!r} is not the correct option."


def score_mcq(solution_str: str, ground_truth: str, with_feedback: bool = False) -> dict:
    """Score one completion against the gold option letter. Never raises on any `solution_str`."""
    if isinstance(solution_str, str) and len(solution_str) > MAX_COMPLETION_CHARS:
        reason = f"completion is longer than {MAX_COMPLETION_CHARS:,} characters"
        return make_result(False, "", False, reason, mcq_feedback(False, reason, "") if with_feedback else "")
    block, correct, reason = grade_answer_block(solution_str, ground_truth, "wrong option")
    feedback = mcq_feedback(block.ok, block.reason or reason, block.content) if with_feedback and not correct else ""
    return make_result(correct, block.content, block.ok, reason, feedback)
