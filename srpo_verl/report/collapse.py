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


@dataclass(frozen=True)
class CollapseEvidence:
    """One run's validation accuracy against what each collapse warning said, and when.

    peak: (best accuracy, its step); first_dip: the first validation ``decline`` or more below the best before it;
    sustained: the first validation from which every later one stays that far below the best so far (None: the run
    never declines for good); final: (accuracy, step) at the last validation; format_warned / entropy_warned: the
    first step each warning fired at (None: never); max_rise: the largest teacher-entropy rise (None: no teacher).
    """

    name: str
    peak: tuple[float, int]
    first_dip: int | None
    sustained: int | None
    final: tuple[float, int]
    format_warned: int | None
    entropy_warned: int | None
    max_rise: float | None


def collapse_evidence(name: str, steps: dict[int, dict], accuracy: dict[int, float], format_threshold: float | None,
                      entropy_threshold: float | None, entropy_window: int, decline: float = 0.10) -> CollapseEvidence:
    """Replay both warnings over a logged run ({step: metrics}) and place them against its validation ``accuracy``
    ({step: acc in 0..1}, step 0 included)."""
    from srpo_verl.core.entropy_watch import RISE_METRIC, TeacherEntropyWatch

    validated = sorted(accuracy.items())
    best_before, first_dip, below = -math.inf, None, []
    for step, acc in validated:
        dipped = acc <= best_before - decline
        below.append((step, dipped))
        if dipped and first_dip is None:
            first_dip = step
        best_before = max(best_before, acc)
    sustained = None
    for index, (step, _) in enumerate(below):
        if all(dipped for _, dipped in below[index:]):
            sustained = step
            break
    entropy = TeacherEntropyWatch(entropy_threshold, entropy_window)
    entropy_warned, max_rise = None, None
    for step, metrics in sorted(steps.items()):
        watch_metrics, line = entropy.update(step, metrics)
        if RISE_METRIC in watch_metrics:
            max_rise = max(max_rise or 0.0, watch_metrics[RISE_METRIC])
        if line and entropy_warned is None:
            entropy_warned = step
    format_warned = next((step for step, _ in replay(format_threshold, steps)), None)
    peak = max(validated, key=lambda item: (item[1], -item[0]))
    return CollapseEvidence(name, (peak[1], peak[0]), first_dip, sustained, (validated[-1][1], validated[-1][0]),
                            format_warned, entropy_warned, max_rise)


def render_evidence_markdown(records: list[CollapseEvidence], format_threshold: float | None,
                             entropy_threshold: float | None, entropy_window: int, decline: float = 0.10) -> str:
    lines = ["| run | peak val acc (step) | first dip | sustained decline from | final (step) | format warning | "
             "teacher-entropy warning | max entropy rise |", "|---|---|---|---|---|---|---|---|"]

    def step_or_dash(step: int | None) -> str:
        return "–" if step is None else str(step)

    for r in records:
        rise = "–" if r.max_rise is None else f"{r.max_rise:.1f}x"
        lines.append(f"| {r.name} | {100 * r.peak[0]:.0f} ({r.peak[1]}) | {step_or_dash(r.first_dip)} | "
                     f"{step_or_dash(r.sustained)} | {100 * r.final[0]:.0f} ({r.final[1]}) | "
                     f"{step_or_dash(r.format_warned)} | {step_or_dash(r.entropy_warned)} | {rise} |")
    lines += ["", f"dip / decline: a validation {100 * decline:g} points or more below the best before it (sustained: "
              f"every later one too); format warning: {WARN_KEY}={format_threshold}; teacher-entropy warning: "
              f"srpo.teacher_entropy_warn={entropy_threshold} over {entropy_window}-step windows (first step fired)."]
    return "\n".join(lines) + "\n"
