"""Extraction of the final `<answer>…</answer>` block (SRPO_SPEC §5.4, SDPO `feedback/mcq.py` semantics).

The answer is the text between the LAST `<answer>` tag and the first `</answer>` after it, stripped. Malformed
layouts are reported, never raised:
- no `<answer>` tag at all, or the last `<answer>` is never closed;
- a `</answer>` left over after the block: the tags were nested (`<answer><answer>A</answer></answer>`) or a stray
  closing tag follows; the block is then ambiguous, so it does not parse.
Repeated, well-formed blocks are fine: the last one counts (a model that revises its answer is judged on the revision).
"""

from __future__ import annotations

from typing import NamedTuple

OPEN_TAG = "<answer>"
CLOSE_TAG = "</answer>"


class AnswerBlock(NamedTuple):
    """`content`: the stripped text of the last block ("" when it does not parse); `ok`: it parsed;
    `reason`: a short explanation when it did not ("" when ok)."""

    content: str
    ok: bool
    reason: str


def parse_last_answer_block(text: str) -> AnswerBlock:
    """Parse the last `<answer>…</answer>` block of `text` (any length; O(len(text)), no regex backtracking)."""
    if not isinstance(text, str):
        return AnswerBlock("", False, f"completion is {type(text).__name__}, not str")
    start = text.rfind(OPEN_TAG)
    if start < 0:
        return AnswerBlock("", False, "no <answer> block" if text.strip() else "empty completion")
    content_start = start + len(OPEN_TAG)
    end = text.find(CLOSE_TAG, content_start)
    if end < 0:
        return AnswerBlock("", False, "last <answer> tag is never closed")
    if text.find(CLOSE_TAG, end + len(CLOSE_TAG)) >= 0:
        return AnswerBlock("", False, "nested or stray </answer> tag after the last block")
    return AnswerBlock(text[content_start:end].strip(), True, "")


class GradedAnswer(NamedTuple):
    """The last answer block of a completion, whether it equals the gold answer, and a short reason."""

    block: AnswerBlock
    correct: bool
    reason: str


def grade_answer_block(text: str, ground_truth, wrong_reason: str) -> GradedAnswer:
    """Exact match of the last ``<answer>`` block's stripped content with ``str(ground_truth).strip()``.

    ``reason`` is "correct", the parse problem, "empty <answer> block", or ``wrong_reason``.
    """
    block = parse_last_answer_block(text)
    correct = block.ok and block.content == str(ground_truth).strip()
    if correct:
        reason = "correct"
    elif not block.ok:
        reason = block.reason
    elif not block.content:
        reason = "empty <answer> block"
    else:
        reason = wrong_reason
    return GradedAnswer(block, correct, reason)
