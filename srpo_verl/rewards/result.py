"""The one result shape every verifier returns (SRPO_SPEC §5.4; verl's custom-reward contract).

verl's reward loop collects every key of the returned dict, sample by sample, into `reward_extra_info`. A key that
is missing in one call and present in another breaks that collection, so every verifier builds its result here and
nothing else: the keys never vary and every value is a JSON scalar.
"""

from __future__ import annotations

RESULT_KEYS = ("score", "acc", "pred", "format_ok", "feedback", "reason")

# `pred` and `reason` are logged per sample; a megabyte completion must not be copied into the logs.
MAX_LOGGED_CHARS = 256
# Longest completion the MCQ and tool-use verifiers read (characters); a longer one scores 0 with a reason. It is
# 256 characters per token of the recipes' 8,192-token responses, and keeps one verification in the low
# milliseconds whatever the model writes.
MAX_COMPLETION_CHARS = 1 << 21


def clip_for_log(text: str, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` cut to at most `limit` characters (with a marker saying how much was cut) and made UTF-8 encodable
    (a lone surrogate becomes "?"), so that writing the logs can never fail on it."""
    if len(text) > limit:
        text = f"{text[:limit]}…[+{len(text) - limit} chars]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def make_result(correct: bool, pred: str, format_ok: bool, reason: str, feedback: str = "") -> dict:
    """The verifier result dict (keys = RESULT_KEYS).

    - score, acc: 1.0 if `correct` else 0.0 (binary reward, SRPO_SPEC §1.2: a rollout is correct iff r >= 0.5).
    - pred: what the verifier extracted from the completion (clipped for logging).
    - format_ok: True iff the answer block parsed. (The SDPO code stores the inverse under `incorrect_format`.)
    - feedback: the environment-feedback text offered to the self-teacher; "" unless the run opted in
      (see `srpo_verl.rewards.feedback`).
    - reason: a short diagnostic ("correct", "no <answer> block", ...). Never shown to the teacher.
    """
    value = 1.0 if correct else 0.0
    return {
        "score": value,
        "acc": value,
        "pred": clip_for_log(pred),
        "format_ok": bool(format_ok),
        "feedback": feedback,
        "reason": reason,
    }
