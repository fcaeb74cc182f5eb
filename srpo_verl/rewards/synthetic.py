"""Verifier of the synthetic CPU task (the CPU-backend issue's tiny task): same answer-block rule as the MCQ one.

Reward 1 iff the stripped text of the last `<answer>` block equals `str(ground_truth).strip()` exactly.
"""

from __future__ import annotations

from srpo_verl.rewards.answer_block import grade_answer_block
from srpo_verl.rewards.result import make_result


def score_synthetic(solution_str: str, ground_truth, with_feedback: bool = False) -> dict:
    """Score one completion of the synthetic task. Never raises on any `solution_str`.

    Feedback (opt-in) names only the format problem or "wrong answer"; it never reveals the gold answer.
    """
    block, correct, reason = grade_answer_block(solution_str, ground_truth, "wrong answer")
    feedback = ""
    if with_feedback and not correct:
        feedback = f"Your answer was not accepted: {reason}."
    return make_result(correct, block.content, block.ok, reason, feedback)
