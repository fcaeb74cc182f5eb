"""The teacher's entropy on SDPO tokens against its lowest level so far: a collapse early warning from training steps.

The paper traces SDPO's late decline to a self-teacher whose reliability decays; the teacher's mean entropy on the
tokens it distils is that reliability seen from the student's side. It needs no validation, so it is read every
step. The evidence for it, and for the threshold, against the validation format rate
(:mod:`srpo_verl.core.format_watch`): docs/TOY_RESULTS.md, "The collapse warning".

Pure Python (no verl, no torch): the SRPO trainer feeds it each step's metrics; the offline report
(srpo_verl.report.collapse) replays logged runs through it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from srpo_verl.console import PREFIX

ENTROPY_METRIC = "srpo/teacher/entropy_mean"
TOKENS_METRIC = "srpo/teacher/tokens"

#: metrics of :meth:`TeacherEntropyWatch.update`
RISE_METRIC = "srpo/teacher/entropy_rise"  # window mean / its lowest window mean so far
WARN_METRIC = "srpo/teacher/entropy_rise_warn"  # 1.0 while the rise is above srpo.teacher_entropy_warn

WARN_KEY = "srpo.teacher_entropy_warn"

#: a floor under the baseline so that a teacher with (near) zero entropy early on does not make any rise infinite
BASELINE_FLOOR = 1e-3


def warning_line(rise: float, mean: float, baseline: float, baseline_step: int, step: int, threshold: float,
                 window: int) -> str:
    return (f"{PREFIX} WARNING: teacher entropy on SDPO tokens rose {rise:.1f}x, from {baseline:.3f} (the "
            f"{window}-step mean to step {baseline_step}) to {mean:.3f} (to step {step}), above "
            f"{WARN_KEY}={threshold:g}: the self-teacher is becoming unreliable (SDPO's collapse precursor)")


@dataclass
class TeacherEntropyWatch:
    """The rolling mean of the teacher's entropy over the last ``window`` steps that distilled anything, its lowest
    value so far, and one warning line each time their ratio crosses ``threshold`` from below.

    ``threshold``: srpo.teacher_entropy_warn (a ratio > 1); None turns the warning off (the rise is still measured).
    """

    threshold: float | None
    window: int = 20
    recent: deque = field(default_factory=deque)
    baseline: tuple[float, int] | None = None  # (lowest window mean, the step it ended at)
    above: bool = False

    def update(self, step: int, metrics: dict) -> tuple[dict[str, float], str | None]:
        """Feed one training step's metrics; returns ({RISE_METRIC, WARN_METRIC} once a window is full, else {},
        the warning line or None). Steps that distilled nothing (no teacher tokens) or logged a non-finite entropy
        leave the watch as it is."""
        value = metrics.get(ENTROPY_METRIC)
        if value is None or not metrics.get(TOKENS_METRIC) or not math.isfinite(float(value)):
            return {}, None
        self.recent.append(float(value))
        if len(self.recent) > self.window:
            self.recent.popleft()
        if len(self.recent) < self.window:
            return {}, None
        mean = sum(self.recent) / self.window
        if self.baseline is None or mean < self.baseline[0]:
            self.baseline = (mean, step)
        rise = mean / max(self.baseline[0], BASELINE_FLOOR)
        crossed = self.threshold is not None and rise > self.threshold
        line = None
        if crossed and not self.above:
            line = warning_line(rise, mean, self.baseline[0], self.baseline[1], step, self.threshold, self.window)
        self.above = crossed
        return {RISE_METRIC: rise, WARN_METRIC: float(crossed)}, line

    def state_dict(self) -> dict:
        return {"window": self.window, "recent": list(self.recent),
                "baseline": None if self.baseline is None else list(self.baseline), "above": self.above}

    def load_state_dict(self, state: dict) -> None:
        """Restore a saved watch; a state saved with another window is refused (its means are not comparable)."""
        if state.get("window") != self.window:
            raise ValueError(f"teacher entropy watch saved with window {state.get('window')!r}, this run uses "
                             f"{self.window}")
        self.recent = deque(float(v) for v in state["recent"][-self.window:])
        self.baseline = None if state["baseline"] is None else (float(state["baseline"][0]), int(state["baseline"][1]))
        self.above = bool(state["above"])
