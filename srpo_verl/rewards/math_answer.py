"""Math answers checked with math-verify (the field's verifier), bounded so that no completion can stall a step.

Data source family `math_verify` (`math_verify/<set>`, written by `scripts/data/prepare_math.py`). Reward 1 iff
math-verify finds the model's final answer (LaTeX: `\\boxed{...}` first, `$...$`, "final answer is ..."; or a
plain expression) equivalent to the gold answer (parsed as `\\boxed{<gold>}`): 1/2 = 0.5 = \\frac{1}{2}, sets and
intervals, `x = 3` for 3. Otherwise 0. math-verify's conventions are kept: several `\\boxed{}` are read together
as one tuple (`\\boxed{2}, \\boxed{3}` is "2, 3", so a corrected second box is wrong), and `10\\%` is not 10.
`pred` is math-verify's reading of the answer, as LaTeX (`\\boxed{0.5}` gives `\\frac{1}{2}`).

Bounds. math-verify's parse / verify can run for minutes on pathological expressions (sympy simplification of
towers of powers, huge factorials, deeply nested braces), and its own timeouts use signal.alarm, which only works
in the main thread: verl's reward managers score in executor threads. So every verification runs in a separate
worker process (`math_worker`), and the job is bounded three ways:
- a completion over `result.MAX_COMPLETION_CHARS` scores 0 unread (as in the other verifiers);
- only the last `MAX_TAIL_CHARS` characters are given to math-verify (the final answer closes the solution; verl's
  own math scorers read the last 300);
- a worker that has not answered within `TIMEOUT_S` seconds is killed (SIGKILL) and replaced; the completion
  scores 0 with reason `math-verify timed out after 5 s`. A worker that dies (out of memory, a crash) also scores 0
  with the reason, and is replaced.
At most `MAX_WORKERS` workers per scoring process, started on first use (~1-2 s each: sympy's import).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from srpo_verl.rewards.result import MAX_COMPLETION_CHARS, make_result

MAX_TAIL_CHARS = 4096
MAX_GOLD_CHARS = 1024
TIMEOUT_S = 5.0
STARTUP_TIMEOUT_S = 120.0
MAX_WORKERS = 2
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class MathVerifyUnavailable(RuntimeError):
    """math-verify cannot run (not installed, or its worker does not start): a configuration error."""


class _Timeout(Exception):
    pass


class _Worker:
    """One math-verify process and its pipes; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "srpo_verl.rewards.math_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self._buffer = b""
        try:
            first = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        except (_Timeout, EOFError) as err:
            self.kill()
            raise MathVerifyUnavailable(f"the math-verify worker did not start ({type(err).__name__}) "
                                        f"within {STARTUP_TIMEOUT_S:g} s") from None
        if not first.get("ready"):
            self.kill()
            raise MathVerifyUnavailable(f"math-verify does not import in the worker ({first.get('error')}); install "
                                        "it: pip install 'math-verify[antlr4-9-3]' (setup.py's requirement)")

    def _read_line(self, deadline: float) -> dict:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Timeout
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, gold: str, text: str, timeout_s: float) -> dict:
        """The worker's answer; raises _Timeout or EOFError (the worker died or was killed)."""
        try:
            self.process.stdin.write((json.dumps({"gold": gold, "text": text}) + "\n").encode())
        except (BrokenPipeError, OSError):
            raise EOFError from None
        return self._read_line(time.monotonic() + timeout_s)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            pipe.close()


class _Pool:
    """Up to MAX_WORKERS idle workers, shared by the scoring threads of this process."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def run(self, gold: str, text: str, timeout_s: float) -> tuple[dict | None, str]:
        """(answer, "") or (None, reason) when the job timed out or the worker died."""
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker()
            try:
                answer = worker.ask(gold, text, timeout_s)
            except _Timeout:
                worker.kill()
                self._replace()
                return None, f"math-verify timed out after {timeout_s:g} s"
            except EOFError:
                code = worker.process.poll()
                worker.kill()
                self._replace()
                return None, f"math-verify worker died (exit code {code})"
            with self._lock:
                self._idle.append(worker)
            return answer, ""

    def _replace(self) -> None:
        """Start a replacement for a killed worker in the background, so that the next job does not wait for
        sympy's import (a start that fails is left to the next job, which then raises)."""

        def start() -> None:
            try:
                worker = _Worker()
            except MathVerifyUnavailable:
                return
            with self._lock:
                self._idle.append(worker)

        threading.Thread(target=start, name="math-verify-replacement", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.kill()


_POOL = _Pool(MAX_WORKERS)


def check_gold(ground_truth) -> str:
    """The gold answer as a string; ValueError (a data bug) when it is not one math-verify can be given."""
    if isinstance(ground_truth, (int, float)) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError(f"math_verify ground_truth must be a non-empty string, got {ground_truth!r}")
    if len(ground_truth) > MAX_GOLD_CHARS:
        raise ValueError(f"math_verify ground_truth is {len(ground_truth):,} characters, over the "
                         f"{MAX_GOLD_CHARS:,}-character bound")
    return ground_truth.strip()


def score_math(solution_str: str, ground_truth, with_feedback: bool = False, timeout_s: float = TIMEOUT_S) -> dict:
    """Score one completion against a gold answer with math-verify, within the module's bounds.

    Never raises on any `solution_str`; raises ValueError for a gold answer math-verify cannot parse (a data bug:
    no completion could score) and MathVerifyUnavailable when math-verify is not installed.
    """
    gold = check_gold(ground_truth)
    if not isinstance(solution_str, str):
        return make_result(False, "", False, f"completion is {type(solution_str).__name__}, not str")
    if len(solution_str) > MAX_COMPLETION_CHARS:
        return make_result(False, "", False, f"completion is longer than {MAX_COMPLETION_CHARS:,} characters")
    if not solution_str.strip():
        return make_result(False, "", False, "empty completion")
    text = solution_str[-MAX_TAIL_CHARS:]
    answer, problem = _POOL.run(gold, text.encode("utf-8", "replace").decode("utf-8"), timeout_s)
    if answer is None:
        return make_result(False, "", False, problem, _feedback(with_feedback, problem))
    if not answer["gold_ok"]:
        raise ValueError(f"math_verify ground_truth {gold!r} does not parse with math-verify: no completion can "
                         "score on it (scripts/data/prepare_math.py refuses such rows)")
    pred = answer["pred"]
    if pred is None:
        reason = "no final answer found (\\boxed{...} or an expression)"
        return make_result(False, "", False, reason, _feedback(with_feedback, reason))
    reason = "correct" if answer["correct"] else "wrong answer"
    return make_result(answer["correct"], pred, True, reason, _feedback(with_feedback and not answer["correct"], reason))


def _feedback(enabled: bool, reason: str) -> str:
    return f"Your answer was not accepted: {reason}." if enabled else ""


def gold_parses(ground_truth, timeout_s: float = TIMEOUT_S) -> bool:
    """Whether math-verify parses `\\boxed{<ground_truth>}` (the data preparers' check)."""
    answer, _ = _POOL.run(check_gold(ground_truth), "", timeout_s)
    return bool(answer and answer["gold_ok"])
