"""The synthetic verifiable task of the CPU quickstart: sort three digits.

A prompt is ``Sort: 729`` under a system prompt that asks for the science benchmarks' answer format; the
reference response is ``<answer>279</answer>``. Rows are verl parquet rows with ``data_source="synthetic"``, so the
reward goes through the project's real verifier (``srpo_verl.rewards``: the stripped text of the last ``<answer>``
block must equal the ground truth).

Why this task: the answer has several tokens (one per digit), and a wrong answer is usually wrong in one or two
positions only, which is where SDPO's token-level correction differs from GRPO's one advantage per sequence. The
rule generalises (test prompts are digit strings never seen in training), a 4-layer model learns it within a few
hundred supervised steps, and prompts and answers are a few tokens, so CPU rollouts are short.

The warm start (``srpo_verl.tiny.build``) trains the student prompt towards *noisy* targets: each answer digit is
right with probability ``digit_accuracy(target)`` and a neighbouring digit (``near_misses``) otherwise, so a model
trained to convergence answers right with probability ``target`` under sampling, whatever the machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DATA_SOURCE = "synthetic"
ABILITY = "synthetic"
NUM_DIGITS = 3
SYSTEM_PROMPT = "Reply with the answer only, in the format <answer>X</answer>."
QUESTION_PREFIX = "Sort:"


@dataclass(frozen=True)
class Problem:
    """One task instance: ``question`` is the user message, ``answer`` the ground-truth string."""

    question: str
    answer: str


def problem_of(digits: str) -> Problem:
    """The problem for the digit string ``digits`` (e.g. ``"729"``): answer ``"279"``."""
    return Problem(f"{QUESTION_PREFIX} {digits}", "".join(sorted(digits)))


def make_splits(seed: int, num_train: int, num_test: int) -> tuple[list[Problem], list[Problem]]:
    """Deterministic train/test problems from ``seed``: a seeded shuffle of all ``10**NUM_DIGITS`` digit strings,
    the first ``num_test`` for test, the next ``num_train`` for train (so no test question occurs in train)."""
    space = 10**NUM_DIGITS
    if num_train < 1 or num_test < 1 or num_train + num_test > space:
        raise ValueError(f"num_train and num_test must be >= 1 with num_train + num_test <= {space} (the number of "
                         f"{NUM_DIGITS}-digit strings), got {num_train} and {num_test}")
    strings = [f"{i:0{NUM_DIGITS}d}" for i in range(space)]
    random.Random(f"srpo_verl.tiny.task:{seed}").shuffle(strings)
    test = [problem_of(s) for s in strings[:num_test]]
    train = [problem_of(s) for s in strings[num_test : num_test + num_train]]
    return train, test


def digit_accuracy(answer_accuracy: float) -> float:
    """Per-digit probability of the right digit such that all ``NUM_DIGITS`` are right with ``answer_accuracy``."""
    if not 0.0 < answer_accuracy <= 1.0:
        raise ValueError(f"answer_accuracy must be in (0, 1], got {answer_accuracy}")
    return answer_accuracy ** (1.0 / NUM_DIGITS)


def near_misses(digit: str) -> tuple[str, ...]:
    """The wrong digits a noisy warm-start target may put in place of ``digit``: its neighbours (0 -> 1, 9 -> 8)."""
    d = int(digit)
    return tuple(str(n) for n in (d - 1, d + 1) if 0 <= n <= 9)


def chat_messages(problem: Problem) -> list[dict]:
    """The prompt as chat messages (system + user), as stored in the parquet ``prompt`` column."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem.question}]


def reference_response(problem: Problem) -> str:
    """The correct response text (without the eos token)."""
    return f"<answer>{problem.answer}</answer>"


def teacher_messages(problem: Problem) -> list[dict]:
    """The SRPO/SDPO teacher prompt for ``problem`` with its correct answer shown as the demonstration.

    The warm start also trains on these, with clean targets (the shown answer), standing in for the in-context
    ability of a real LLM: the self-teacher then copies a shown answer, so distilling towards it corrects exactly
    the wrong digits of a failed response.
    """
    from srpo_verl.core.teacher_prompt import build_teacher_messages

    return build_teacher_messages(chat_messages(problem), solution=reference_response(problem))


def verl_rows(problems: list[Problem], split: str) -> list[dict]:
    """verl parquet rows (schema of verl's ``examples/data_preprocess``) for ``problems``."""
    from srpo_verl.data.common import verl_row

    return [
        verl_row(DATA_SOURCE, chat_messages(p), ABILITY, p.answer,
                 {"split": split, "index": i, "question": p.question, "answer": p.answer})
        for i, p in enumerate(problems)
    ]


def is_correct(response_text: str, ground_truth: str) -> bool:
    """The verifier's decision for one response (``srpo_verl.rewards`` synthetic rule)."""
    from srpo_verl.rewards.synthetic import score_synthetic

    return score_synthetic(response_text, ground_truth)["score"] == 1.0


def has_answer_block(response_text: str) -> bool:
    """True when the response has a well-formed last ``<answer>...</answer>`` block."""
    from srpo_verl.rewards.answer_block import parse_last_answer_block

    return parse_last_answer_block(response_text).ok
