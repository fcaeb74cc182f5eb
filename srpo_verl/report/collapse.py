"""Collapse early warning: the validation format rate against its best so far (issue 16 §3).

A policy can lose the answer format while its train reward stays high (a third-party SRPO reproduction did at
~step 400). verl 0.9.1's validation logs the mean of every numeric reward extra key per data source; srpo_verl's
verifiers return ``format_ok`` (the answer block parsed), so the format rate is
``val-aux/<source>/format_ok/mean@<N>`` (``val-core`` never: the core variable is ``acc``).

Pure Python (no verl, no torch): the SRPO trainer feeds it each validation's metrics; the report reads the same key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

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
    return (f"[srpo] WARNING: validation format rate fell from {best:.3f} (step {best_step}) to {value:.3f} "
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


def replay(threshold: float | None, steps: dict[int, dict]) -> list[tuple[int, str]]:
    """The warnings a run's logged metrics ({step: metrics}) would have printed, in step order: (step, line)."""
    watch = FormatDropWatch(threshold)
    lines = []
    for step, metrics in sorted(steps.items()):
        _, line = watch.update(step, metrics)
        if line:
            lines.append((step, line))
    return lines


@dataclass(frozen=True)
class FormatSummary:
    """One run's validation format rate for one data source: (value, step) pairs at the first, best and last
    validation (step 0 included), the accuracy at that last validation, the largest drop below the best so far and
    the steps a :class:`FormatDropWatch` at the threshold warned at."""

    name: str
    source: str
    first: tuple[float, int]
    best: tuple[float, int]
    last: tuple[float, int]
    last_acc: float | None
    max_drop: float
    warned_at: tuple[int, ...]


def format_summaries(name: str, steps: dict[int, dict], threshold: float | None) -> list[FormatSummary]:
    """The :class:`FormatSummary` of each data source validated in ``steps`` ({step: metrics}); [] when the run
    logged no format rate (a verifier without ``format_ok``, or no validation)."""
    sources = sorted({source for metrics in steps.values() for source in format_rate_keys(metrics)})
    summaries = []
    for source in sources:
        series = []  # (step, rate, acc)
        for step, metrics in sorted(steps.items()):
            key = format_rate_keys(metrics).get(source)
            if key is None or not math.isfinite(float(metrics[key])):
                continue
            n = FORMAT_RATE.match(key).group("n")
            acc = next((metrics[k] for k in (f"val-core/{source}/acc/mean@{n}", f"val-aux/{source}/acc/mean@{n}")
                        if k in metrics), None)
            series.append((step, float(metrics[key]), acc))
        if not series:
            continue
        watch = FormatDropWatch(threshold)
        warned, max_drop = [], 0.0
        for step, rate, _ in series:
            drop = watch.observe(source, step, rate) or 0.0
            max_drop = max(max_drop, drop)
            if threshold is not None and drop > threshold:
                warned.append(step)
        best = max(series, key=lambda item: (item[1], -item[0]))
        summaries.append(FormatSummary(name, source, (series[0][1], series[0][0]), (best[1], best[0]),
                                       (series[-1][1], series[-1][0]), series[-1][2], max_drop, tuple(warned)))
    return summaries


def render_format_markdown(summaries: list[FormatSummary], threshold: float | None) -> str:
    """A markdown table: run, source, val acc at the last validation next to its format rate, first and best
    format rates, the largest drop from the best and the steps a warning would have fired at."""
    lines = ["### Validation format rate (collapse early warning)", "",
             "| run | source | val acc (last) | format rate (last) | first | best | largest drop | warned at |",
             "|---|---|---|---|---|---|---|---|"]

    def at(pair: tuple[float, int]) -> str:
        return f"{100 * pair[0]:.1f} (step {pair[1]})"

    for s in summaries:
        acc = "–" if s.last_acc is None else f"{100 * s.last_acc:.1f}"
        warned = ", ".join(map(str, s.warned_at)) or "–"
        lines.append(f"| {s.name} | {s.source} | {acc} | {at(s.last)} | {at(s.first)} | {at(s.best)} | "
                     f"{100 * s.max_drop:.1f} | {warned} |")
    rule = "off" if threshold is None else f"a drop of more than {100 * threshold:g} points below the best so far"
    lines += ["", f"format rate: val-aux/<source>/format_ok/mean@N (%); warned at: {rule} ({WARN_KEY})."]
    return "\n".join(lines) + "\n"
