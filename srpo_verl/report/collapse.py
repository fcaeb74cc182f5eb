"""Collapse early warning in logged runs: the SRPO trainer's format-rate watch (srpo_verl.core.format_watch)
replayed over a run's validations, and its per-run summaries for the report.

Pure Python (no verl, no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from srpo_verl.core.format_watch import (  # noqa: F401  (re-exported for the report and its tests)
    DROP_METRIC,
    FORMAT_RATE,
    WARN_KEY,
    WARN_METRIC,
    FormatDropWatch,
    format_rate_keys,
    warning_line,
)


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
