"""Reward-function failures counted per step and bounded (``srpo.max_reward_error_rate``).

verl 0.9.1 logs a traceback when ``compute_score`` raises, marks the prompt's group failed, and its sync replay
buffer trains on what is left, padding the batch with synthetic rows (``Upsampled batch from 8 to 32 with 24
synthetic padding samples``); nothing counts them, and when every call fails it stops with a replay-buffer message
that names neither the reward function nor the error. Here:

- the custom reward function verl loads (``verl.trainer.ppo.reward.get_custom_reward_fn``, in each reward worker) is
  wrapped: an exception is recorded (data source, exception, the response and ground truth) in a named Ray actor
  the trainer owns, then re-raised, so verl's own handling is unchanged;
- each step the SRPO trainer drains the records and logs ``srpo/reward/errors``, ``srpo/batch/dropped_frac``
  (expected rollouts that are not in the batch) and ``srpo/batch/padding_frac`` (synthetic rows of the batch); a
  reward error rate above ``srpo.max_reward_error_rate`` stops the run naming the reward function, the data source,
  the exception and one offending sample, and so does verl's all-failed replay-buffer error.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from srpo_verl.import_hooks import after_import, mark_wrapper

REWARD_MODULE = "verl.trainer.ppo.reward"
ACTOR_NAME = "srpo_reward_errors"
MARKER = "_srpo_reward_errors"
#: verl's sync replay buffer's message when every group of a step failed
ALL_FAILED = "no materializable trajectories"


class RewardErrorStop(RuntimeError):
    """The run stops: the reward function failed too often (one line)."""


@dataclass
class RewardError:
    data_source: str
    error: str
    response: str
    ground_truth: str

    def sample(self) -> str:
        return f"ground_truth={self.ground_truth!r:.80} response={self.response!r:.160}"


def record_of(kwargs: dict, error: BaseException) -> dict:
    """What one failed call leaves for the trainer (plain types: it crosses Ray)."""
    text = " ".join(str(error).split())[:300]
    return {"data_source": str(kwargs.get("data_source")), "error": f"{type(error).__name__}: {text}",
            "response": str(kwargs.get("solution_str", ""))[:400], "ground_truth": str(kwargs.get("ground_truth"))}


# ----------------------------------------------------------------------------------------------- reward worker side
_SINK: list[Callable[[dict], None]] = []


def _send(record: dict) -> None:
    if _SINK:
        _SINK[0](record)
        return
    import ray

    try:
        actor = ray.get_actor(ACTOR_NAME)
    except ValueError:  # verl's own trainer (cpu_grpo) owns no log: verl's handling alone
        return
    ray.get(actor.record.remote(record))


def wrap_reward_fn(fn: Callable | None) -> Callable | None:
    """``fn`` recording each exception before re-raising it (async functions stay async)."""
    if fn is None or getattr(fn, MARKER, False):
        return fn
    target = getattr(fn, "func", fn)  # verl returns functools.partial(_call_with_kwargs[_async], raw_fn, kwargs)
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn)

    if is_async:
        async def recorded(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as error:
                _send(record_of(kwargs, error))
                raise
    else:
        def recorded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                _send(record_of(kwargs, error))
                raise

    return mark_wrapper(recorded, fn, MARKER)


def patch_reward_module(module: ModuleType) -> None:
    """Make verl's ``get_custom_reward_fn`` return the recording wrapper (idempotent)."""
    original = module.get_custom_reward_fn
    if getattr(original, MARKER, False):
        return

    def get_custom_reward_fn(config):
        return wrap_reward_fn(original(config))

    module.get_custom_reward_fn = mark_wrapper(get_custom_reward_fn, original, MARKER)


def install() -> None:
    after_import(REWARD_MODULE, patch_reward_module)


# ------------------------------------------------------------------------------------------------- trainer side
def reward_fn_name(config: Any) -> str:
    """``name (path)`` of the configured custom reward function, or verl's default scorer."""
    reward = (config.get("reward") or {}) if hasattr(config, "get") else {}
    custom = reward.get("custom_reward_function") or {}
    if custom.get("path"):
        return f"reward.custom_reward_function {custom.get('name')} ({custom.get('path')})"
    return "verl's default_compute_score"


def step_verdict(step: int, log: dict, expected: int, real: int, padding: int, rows: int, max_rate: float,
                 fn_name: str) -> tuple[dict, str | None]:
    """The step's metrics and, when the reward error rate exceeds ``max_rate``, the line that stops the run.

    ``log``: what :meth:`ErrorLog.drain` returned; ``expected``: rollouts the step asked for (train_batch_size ×
    rollout.n); ``real``/``padding``: the batch's real and synthetic rows (``rows`` in all)."""
    count = log["count"]
    rate = count / expected if expected else 0.0
    metrics = {
        "srpo/reward/errors": float(count),
        "srpo/reward/error_rate": rate,
        "srpo/batch/dropped_frac": max(expected - real, 0) / expected if expected else 0.0,
        "srpo/batch/padding_frac": padding / rows if rows else 0.0,
    }
    if not count or rate <= max_rate:
        return metrics, None
    return metrics, describe(step, log, expected, fn_name, f"above srpo.max_reward_error_rate={max_rate}")


def describe(step: int, log: dict, expected: int | None, fn_name: str, why: str) -> str:
    by_source = Counter(log["by_source"])
    source, _ = by_source.most_common(1)[0]
    first = RewardError(**next(r for r in log["samples"] if r["data_source"] == source))
    share = f" of {expected} rollouts ({log['count'] / expected:.1%})" if expected else " rollouts"
    sources = ", ".join(f"{s}: {n}" for s, n in by_source.most_common())
    return (f"step {step}: {fn_name} raised on {log['count']}{share}, {why} (by data source: {sources}); data source "
            f"{source!r}: {first.error}; one sample: {first.sample()}; fix the reward function or the data, or raise "
            "srpo.max_reward_error_rate")


def all_failed_line(step: int, log: dict, fn_name: str) -> str | None:
    """verl's all-failed replay-buffer error, said with the reward function's failures (None without any)."""
    if not log["count"]:
        return None
    return describe(step, log, None, fn_name,
                    "and no trajectory of the step was left to train on (verl's replay buffer dropped every group)")


class ErrorLog:
    """The Ray actor (``ACTOR_NAME``) the reward workers record into and the trainer drains each step: the count
    and the count per data source are exact; a few samples per source are kept."""

    SAMPLES_PER_SOURCE = 3

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self.count = 0
        self.by_source: Counter = Counter()
        self.samples: list[dict] = []

    def record(self, record: dict) -> None:
        self.count += 1
        self.by_source[record["data_source"]] += 1
        if self.by_source[record["data_source"]] <= self.SAMPLES_PER_SOURCE:
            self.samples.append(record)

    def drain(self) -> dict:
        out = {"count": self.count, "by_source": dict(self.by_source), "samples": self.samples}
        self._reset()
        return out
