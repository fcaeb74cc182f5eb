"""The synthetic verifiable task of the CPU quickstart: name the largest of four digits.

A prompt is ``Largest digit: 7 2 9 4`` under a system prompt that asks for the science benchmarks' answer format;
the reference response is ``<answer>9</answer>``. Rows are verl parquet rows with ``data_source="synthetic"``, so
the reward goes through the project's real verifier (``srpo_verl.rewards``: the stripped text of the last
``<answer>`` block must equal the ground truth).

Why this task: the rule generalises (test prompts are unseen digit strings), a 4-layer model picks it up within a
few hundred supervised steps, and the answer is one token, so CPU rollouts are short. Always answering "9" already
scores 1 - 0.9^4 ≈ 34%, so the warm start is stopped by *sampled* accuracy, not by format alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DATA_SOURCE = "synthetic"
ABILITY = "synthetic"
NUM_DIGITS = 4
SYSTEM_PROMPT = "Reply with the answer only, in the format <answer>X</answer>."
QUESTION_PREFIX = "Largest digit:"


@dataclass(frozen=True)
class Problem:
    """One task instance: ``question`` is the user message, ``answer`` the ground-truth string."""

    question: str
    answer: str


def make_problem(rng: random.Random) -> Problem:
    """Draw ``NUM_DIGITS`` uniform digits; the answer is the largest one."""
    digits = [rng.randrange(10) for _ in range(NUM_DIGITS)]
    return Problem(f"{QUESTION_PREFIX} {' '.join(map(str, digits))}", str(max(digits)))


def make_splits(seed: int, num_train: int, num_test: int) -> tuple[list[Problem], list[Problem]]:
    """Deterministic train/test problems from ``seed``; no test question also occurs in train."""
    if num_train < 1 or num_test < 1:
        raise ValueError(f"num_train and num_test must be >= 1, got {num_train} and {num_test}")
    rng = random.Random(f"srpo_verl.tiny.task:{seed}")
    train = [make_problem(rng) for _ in range(num_train)]
    seen = {p.question for p in train}
    test: list[Problem] = []
    attempts = 0
    while len(test) < num_test:
        attempts += 1
        if attempts > 100 * num_test:
            raise ValueError(f"cannot draw {num_test} test problems disjoint from {num_train} train problems")
        problem = make_problem(rng)
        if problem.question not in seen:
            seen.add(problem.question)
            test.append(problem)
    return train, test


def chat_messages(problem: Problem) -> list[dict]:
    """The prompt as chat messages (system + user), as stored in the parquet ``prompt`` column."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem.question}]


def reference_response(problem: Problem) -> str:
    """The correct response text (without the eos token)."""
    return f"<answer>{problem.answer}</answer>"


def teacher_messages(problem: Problem) -> list[dict]:
    """The SRPO/SDPO teacher prompt for ``problem`` with its correct answer shown as the demonstration.

    The warm start also trains on these (target: the same answer), standing in for the in-context ability of a
    real LLM: without it a tiny model's self-teacher is out of its distribution on the teacher prompt, and
    distilling towards it only adds noise.
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
