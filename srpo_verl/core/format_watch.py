"""The validation format rate against its best so far: the collapse early warning the SRPO trainer prints.

A policy can lose the answer format while its train reward stays high (a third-party SRPO reproduction did at
~step 400). verl 0.9.1's validation logs the mean of every numeric reward extra key per data source; srpo_verl's
verifiers return ``format_ok`` (the answer block parsed), so the format rate is
``val-aux/<source>/format_ok/mean@<N>`` (``val-core`` never: the core variable is ``acc``).

Pure Python (no verl, no torch): the SRPO trainer feeds it each validation's metrics; the offline report
(srpo_verl.report.collapse) replays logged runs through it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from srpo_verl.console import PREFIX

FORMAT_RATE = re.compile(r"^val-(?:core|aux)/(?P<source>[^/]+)/format_ok/mean@(?P<n>\d+)$")

#: metrics of :meth:`FormatDropWatch.update`
DROP_METRIC = "srpo/val/format_drop"  # the largest drop of a source's format rate below its best so far
WARN_METRIC = "srpo/val/format_drop_warn"  # 1.0 when that drop exceeds srpo.format_drop_warn, else 0.0

WARN_KEY = "srpo.format_drop_warn"


def format_rate_keys(metrics: dict) -> dict[str, str]:
    """{data source: its format-rate key} in one validation's metrics; with several ``mean@N`` of a source (verl
    logs mean@1, mean@2, ... mean@n for n samples per prompt), the largest N (all samples)."""
    found: dict[str, tuple[int, str]] = {}
    for key in metrics:
        match = FORMAT_RATE.match(key)
        if match:
            n = int(match.group("n"))
            if match.group("source") not in found or n > found[match.group("source")][0]:
                found[match.group("source")] = (n, key)
    return {source: key for source, (_, key) in sorted(found.items())}


def warning_line(best: float, best_step: int, value: float, step: int, threshold: float, source: str = "") -> str:
    """The one console line of a format-rate drop (``source`` appended when given)."""
    where = f" [{source}]" if source else ""
    return (f"{PREFIX} WARNING: validation format rate fell from {best:.3f} (step {best_step}) to {value:.3f} "
            f"(step {step}), more than {WARN_KEY}={threshold:g}{where}")


@dataclass
class FormatDropWatch:
    """The best validation format rate of each data source so far, and the warning when one falls too far.

    ``threshold``: srpo.format_drop_warn (a drop in rate, 0..1); None turns the warning off (the drop is still
    measured).
    """

    threshold: float | None
    best: dict[str, tuple[float, int]] = field(default_factory=dict)  # source → (best rate, its step)

    def observe(self, source: str, step: int, value: float) -> float | None:
        """Record one finite rate of ``source`` at ``step``; returns its drop below the best before it (None for
        the source's first rate). The best is updated after the comparison, so a new best never counts as a drop."""
        drop = None
        if source in self.best:
            drop = self.best[source][0] - value
        if source not in self.best or value > self.best[source][0]:
            self.best[source] = (value, step)
        return drop

    def update(self, step: int, metrics: dict) -> tuple[dict[str, float], str | None]:
        """Feed one validation's metrics (logged at ``step``).

        Returns ({DROP_METRIC, WARN_METRIC} or {} when the metrics hold no format rate, the warning line or None).
        The line names the source with the largest drop when it is beyond the threshold (the source is appended
        when several were validated). Non-finite rates are ignored.
        """
        keys = format_rate_keys(metrics)
        if not keys:
            return {}, None
        worst: tuple[float, str, float, int, float] | None = None  # (drop, source, best, best step, value)
        for source, key in keys.items():
            value = float(metrics[key])
            if not math.isfinite(value):
                continue
            previous = self.best.get(source)
            drop = self.observe(source, step, value)
            if drop is not None and (worst is None or drop > worst[0]):
                worst = (drop, source, previous[0], previous[1], value)
        fired = self.threshold is not None and worst is not None and worst[0] > self.threshold
        line = None
        if fired:
            _, source, best, best_step, value = worst
            line = warning_line(best, best_step, value, step, self.threshold, source if len(keys) > 1 else "")
        return {DROP_METRIC: max(worst[0], 0.0) if worst else 0.0, WARN_METRIC: float(fired)}, line

    def state_dict(self) -> dict:
        return {"best": {source: list(pair) for source, pair in self.best.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.best = {source: (float(value), int(step)) for source, (value, step) in state["best"].items()}
