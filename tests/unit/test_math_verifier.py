"""The math-verify verifier (data source family `math_verify`): equivalences, and bounded work on adversarial
outputs (huge inputs, pathological expressions that hang sympy, nested braces, timeouts) from verl's scoring
threads, where math-verify's own signal-based timeouts cannot work."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from srpo_verl.rewards import RESULT_KEYS, compute_score, math_answer
from srpo_verl.rewards.result import MAX_COMPLETION_CHARS

SOURCE = "math_verify/MATH-500"


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    """Start the workers once (sympy's import takes seconds on a loaded machine)."""
    with ThreadPoolExecutor(math_answer.MAX_WORKERS) as pool:
        list(pool.map(lambda _: compute_score(SOURCE, "\\boxed{1}", "1"), range(math_answer.MAX_WORKERS)))
    yield


# (completion, gold, score, pred)
EQUIVALENT = [
    ("So the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", 1.0, "\\frac{1}{2}"),
    ("\\boxed{0.5}", "\\frac12", 1.0, "\\frac{1}{2}"),  # pred: math-verify's reading, as LaTeX
    ("\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{\\sqrt2}{2}", 1.0, "\\frac{\\sqrt{2}}{2}"),
    ("The final answer is $x = 3$", "3", 1.0, "x = 3"),
    ("\\boxed{(1, 2]}", "(1,2]", 1.0, "(1, 2]"),
    ("\\boxed{\\{1,2,3\\}}", "\\{3,2,1\\}", 1.0, "\\{1,2,3\\}"),
    # math-verify's conventions, kept: a percent sign is not dropped, and several boxes are read as one tuple
    ("\\boxed{10\\%}", "10", 0.0, "10\\%"),
    ("first \\boxed{2}, then on reflection \\boxed{3}", "3", 0.0, "2,3"),
    ("\\boxed{2}, \\boxed{3}", "2, 3", 1.0, "2,3"),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", 0.0, "\\frac{1}{3}"),
    ("\\boxed{2\\pi}", "\\pi", 0.0, "2\\pi"),
    ("x = 1/2", "\\frac{1}{2}", 1.0, "1/2"),
]


@pytest.mark.parametrize("completion, gold, score, pred", EQUIVALENT)
def test_answers_are_compared_as_math(completion, gold, score, pred):
    result = compute_score(SOURCE, completion, gold)
    assert tuple(result) == RESULT_KEYS
    assert (result["score"], result["acc"], result["pred"], result["format_ok"]) == (score, score, pred, True)
    assert result["reason"] == ("correct" if score else "wrong answer")


# (completion, reason): every case scores 0 with format_ok False
NO_ANSWER = [
    ("", "empty completion"),
    ("   \n\t", "empty completion"),
    ("I do not know.", "no final answer found (\\boxed{...} or an expression)"),
    ("\\boxed{" + "{" * 3000, "no final answer found (\\boxed{...} or an expression)"),  # never closed
    ("x" * (MAX_COMPLETION_CHARS + 1), f"completion is longer than {MAX_COMPLETION_CHARS:,} characters"),
]


@pytest.mark.parametrize("completion, reason", NO_ANSWER, ids=["empty", "blank", "words", "unclosed", "huge"])
def test_no_answer_scores_zero_with_the_reason(completion, reason):
    result = compute_score(SOURCE, completion, "2")
    assert (result["score"], result["format_ok"], result["reason"]) == (0.0, False, reason)


def test_non_string_and_unicode_completions():
    assert math_answer.score_math(None, "2")["reason"] == "completion is NoneType, not str"
    lone_surrogate = "\\boxed{2} \ud800 é ∑"
    result = compute_score(SOURCE, lone_surrogate, "2")
    assert result["score"] == 1.0
    result["pred"].encode("utf-8")


def test_only_the_tail_is_read():
    filler = "step. " * 200_000  # 1.2 MB of reasoning
    assert compute_score(SOURCE, filler + "\\boxed{7}", "7")["score"] == 1.0
    # an answer before the last MAX_TAIL_CHARS characters is not seen
    late = compute_score(SOURCE, "\\boxed{7}" + "x" * (math_answer.MAX_TAIL_CHARS + 10), "7")
    assert late["score"] == 0.0 and late["format_ok"] is False


@pytest.mark.parametrize("completion", [
    "\\boxed{9^{9^{9^{9^{9}}}}}",                                   # sympy evaluates the tower
    "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",          # nested braces
], ids=["power-tower", "nested-frac"])
def test_pathological_expressions_time_out_and_the_pool_recovers(completion, monkeypatch):
    killed = []
    kill = math_answer._Worker.kill
    monkeypatch.setattr(math_answer._Worker, "kill", lambda worker: (killed.append(worker), kill(worker))[-1])
    result = math_answer.score_math(completion, "2", timeout_s=1.0)
    assert (result["score"], result["format_ok"], result["reason"]) == (0.0, False, "math-verify timed out after 1 s")
    # the worker was killed at the timeout, not left to the minutes sympy would take
    (worker,) = killed
    assert worker.process.returncode == -signal.SIGKILL
    assert compute_score(SOURCE, "\\boxed{2}", "2")["score"] == 1.0  # a replacement worker answers


def test_scoring_threads_get_bounded_answers():
    """verl's reward managers call compute_score from executor threads: answers stay right and bounded there."""
    jobs = [("\\boxed{%d}" % (i % 5), str(i % 3)) for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: compute_score(SOURCE, *job), jobs))
    assert [r["score"] for r in results] == [1.0 if i % 5 == i % 3 else 0.0 for i in range(24)]
    assert threading.current_thread() is threading.main_thread()


def test_a_killed_worker_scores_zero_with_the_reason():
    pool = math_answer._Pool(1)
    try:
        assert pool.run("2", "\\boxed{2}", 60.0)[0]["correct"] is True
        pool._idle[0].process.kill()
        answer, reason = pool.run("2", "\\boxed{2}", 60.0)
        assert answer is None and reason.startswith("math-verify worker died (exit code")
    finally:
        pool.close()


@pytest.mark.parametrize("gold, message", [
    ("", "must be a non-empty string"),
    (None, "must be a non-empty string"),
    ("1" * (math_answer.MAX_GOLD_CHARS + 1), "over the 1,024-character bound"),
])
def test_bad_gold_answers_are_data_errors(gold, message):
    with pytest.raises(ValueError, match=message):
        compute_score(SOURCE, "\\boxed{1}", gold)


def test_numeric_gold_is_accepted():
    assert compute_score(SOURCE, "\\boxed{34}", 34)["score"] == 1.0


def test_missing_math_verify_is_a_configuration_error(tmp_path, monkeypatch):
    broken = tmp_path / "math_verify"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('no math-verify here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    pool = math_answer._Pool(1)
    with pytest.raises(math_answer.MathVerifyUnavailable, match="no math-verify here.*pip install"):
        pool.run("1", "\\boxed{1}", 5.0)


def test_feedback_is_opt_in_and_never_the_gold():
    result = compute_score(SOURCE, "\\boxed{3}", "17", env_feedback=True)
    assert result["feedback"] == "Your answer was not accepted: wrong answer." and "17" not in result["feedback"]
