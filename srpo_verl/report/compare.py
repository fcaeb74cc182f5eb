"""Methods x seeds on one task: mean +- std curves and a Table-1-style budget table (the toy comparison harness).

Input: ``{method: [StepMetrics of seed 0, seed 1, ...]}`` (verl file-logger JSONL read with
``srpo_verl.report.logs.read_jsonl``). Nothing here launches anything (``srpo_verl.bench.compare`` does).

Curves (one per method, mean over seeds with a +-1 std band; std is the population std over the seeds that logged
the step, 0 with one seed):

=================  ==========================================  =========================================
panel              metric (verl 0.9.1 / srpo_verl names)        note
=================  ==========================================  =========================================
val acc            ``val-core/<source>/acc/mean@N``              validated steps only (step 0 = untrained)
train reward       ``critic/score/mean``                         mean verifier score of the step's rollouts
SDPO-routed frac   ``srpo/route/sdpo_frac``                      paper Fig. 5; GRPO logs none
teacher entropy    ``srpo/teacher/entropy_mean``                 on SDPO tokens (Fig. 1c); steps with no
                                                                 SDPO token log 0 there and are left out
top-K mass gap     ``srpo/topk/mass_gap``                        student − teacher mass on the distilled
                                                                 top-K ids, SDPO tokens (Fig. 1d)
response length    ``response_length/mean``                      tokens
=================  ==========================================  =========================================

against the training step and against training time, ``srpo_verl.report.table.training_seconds`` (init, validation
and checkpoint writing excluded). Seeds have their own clocks: a method's time curve places step k at the mean over
seeds of their training time at step k.

Table: for each method, the best validation accuracy within each step budget and each training-time budget (a
seed's best inside the budget, then mean +- std over seeds; ``srpo_verl.report.table.best_within``), the untrained
accuracy (step 0), the final validation (the last validated step), the area under the validation curve (trapezoids
from step 0 to the last validated step, divided by that span: the mean accuracy over training), mean s/step (``timing_s/step`` over steps >= 2: step 1 pays warm-up), teacher seconds per step
(``timing_s/srpo_teacher``, same steps) and teacher tokens per step (``srpo/teacher/tokens``; both 0 for GRPO).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from srpo_verl.report.logs import RunLog, StepMetrics
from srpo_verl.report.plots import save_figure
from srpo_verl.report.table import METHOD_ORDER, Window, _ordered, best_within, training_seconds, validation_key

REWARD_KEY = "critic/score/mean"
SDPO_FRACTION_KEY = "srpo/route/sdpo_frac"
TEACHER_ENTROPY_KEY = "srpo/teacher/entropy_mean"
TEACHER_TOKENS_KEY = "srpo/teacher/tokens"
RESPONSE_LENGTH_KEY = "response_length/mean"
MASS_GAP_KEY = "srpo/topk/mass_gap"
STEP_SECONDS_KEY = "timing_s/step"
TEACHER_SECONDS_KEY = "timing_s/srpo_teacher"  # the SRPO trainer's teacher pass (marked_timer "srpo_teacher")
# Loss-side metrics reach the log with verl's `actor/` prefix, driver-side ones without: both are looked up.
PREFIXES = ("", "actor/")

# (panel title, metric key or None for validation accuracy, scale for display)
PANELS = (("validation accuracy (%)", None, 100.0), ("train reward", REWARD_KEY, 1.0),
          ("SDPO-routed fraction", SDPO_FRACTION_KEY, 1.0), ("teacher entropy on SDPO tokens", TEACHER_ENTROPY_KEY, 1.0),
          ("top-K mass gap on SDPO tokens", MASS_GAP_KEY, 1.0), ("response length (tokens)", RESPONSE_LENGTH_KEY, 1.0))


def metric_series(steps: StepMetrics, key: str | None, name: str = "run") -> dict[int, float]:
    """{step: value} of one metric (``key`` None: the run's validation accuracy), finite values only.

    The teacher entropy and the mass gap are dropped on steps that routed nothing to SDPO (the trainer logs 0.0
    entropy there).
    """
    log = RunLog(steps)
    if key is None:
        try:
            key = validation_key(log, name)
        except ValueError:
            return {}
        series = log.series(key)
    else:
        series = next((s for s in (log.series(p + key) for p in PREFIXES) if s), {})
    if key in (TEACHER_ENTROPY_KEY, MASS_GAP_KEY):
        routed = metric_series(steps, SDPO_FRACTION_KEY, name)
        series = {s: v for s, v in series.items() if routed.get(s, 0.0) > 0.0}
    return {s: v for s, v in series.items() if math.isfinite(v)}


def area_under_curve(accuracy: dict[int, float]) -> float | None:
    """Trapezoid area under {step: accuracy} from its first to its last step, divided by that span (the curve's
    mean over training); None with fewer than two points."""
    steps = sorted(accuracy)
    if len(steps) < 2:
        return None
    area = sum((b - a) * (accuracy[a] + accuracy[b]) / 2.0 for a, b in zip(steps, steps[1:]))
    return area / (steps[-1] - steps[0])


def mean_std(values: list[float]) -> tuple[float, float]:
    """(mean, population std) of a non-empty list; std 0 for one value."""
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


@dataclass(frozen=True)
class Curve:
    """A method's mean +- std over seeds at each step some seed logged: parallel lists, ``n`` seeds per point."""

    steps: list[int]
    mean: list[float]
    std: list[float]
    n: list[int]


def seed_curve(per_seed: list[dict[int, float]]) -> Curve:
    """Mean +- std over the seeds' {step: value} series, step by step (a step uses the seeds that logged it)."""
    all_steps = sorted({s for series in per_seed for s in series})
    means, stds, counts = [], [], []
    for step in all_steps:
        values = [series[step] for series in per_seed if step in series]
        mean, std = mean_std(values)
        means.append(mean)
        stds.append(std)
        counts.append(len(values))
    return Curve(all_steps, means, stds, counts)


def safe_training_seconds(steps: StepMetrics, name: str) -> dict[int, float]:
    """``table.training_seconds`` of a run, or {} when its log cannot be placed in time (a gap, no timing)."""
    try:
        return training_seconds(RunLog(steps), name)
    except ValueError:
        return {}


def mean_time_at_steps(per_seed: list[StepMetrics], name: str) -> dict[int, float]:
    """{step: mean training seconds at the end of step k over the seeds that reached it}; step 0 is at 0 s."""
    clocks = [safe_training_seconds(steps, f"{name} seed {i}") for i, steps in enumerate(per_seed)]
    reached = sorted({s for clock in clocks for s in clock})
    out = {0: 0.0}
    for step in reached:
        out[step] = statistics.fmean(clock[step] for clock in clocks if step in clock)
    return out


@dataclass(frozen=True)
class Cell:
    """mean +- std over the seeds with a value; ``n`` of ``of`` seeds had one (None mean: no seed had)."""

    mean: float | None
    std: float
    n: int
    of: int

    @classmethod
    def of_values(cls, values: list[float | None]) -> "Cell":
        present = [v for v in values if v is not None]
        if not present:
            return cls(None, 0.0, 0, len(values))
        mean, std = mean_std(present)
        return cls(mean, std, len(present), len(values))

    def render(self, scale: float = 1.0, spec: str = ".1f") -> str:
        if self.mean is None:
            return "–"
        text = f"{self.mean * scale:{spec}} ± {self.std * scale:{spec}}"
        return text if self.n == self.of else f"{text} ({self.n}/{self.of})"


@dataclass(frozen=True)
class MethodRow:
    """One method's table row: base, best val acc per step / time window, s/step, teacher tokens per step."""

    method: str
    seeds: int
    base: Cell
    by_step: list[Cell]
    by_time: list[Cell]
    step_seconds: Cell
    teacher_seconds: Cell
    teacher_tokens: Cell
    final_step: Cell
    final_val: Cell
    auc: Cell


def method_row(method: str, per_seed: list[StepMetrics], step_windows: list[Window],
               time_windows: list[Window]) -> MethodRow:
    """The row of one method from its seeds' logs (module docstring)."""
    by_step, by_time, base, step_s, teacher_s, teacher, final = [], [], [], [], [], [], []
    final_val, auc = [], []
    accuracies, clocks = [], []
    for i, steps in enumerate(per_seed):
        name = f"{method} seed {i}"
        accuracy = metric_series(steps, None, name)
        accuracies.append(accuracy)
        clocks.append(safe_training_seconds(steps, name))
        base.append(accuracy.get(0))
        validated = [s for s in accuracy if s >= 1]
        final_val.append(accuracy[max(validated)] if validated else None)
        auc.append(area_under_curve(accuracy))
        seconds = [m[STEP_SECONDS_KEY] for s, m in steps.items() if s >= 2 and STEP_SECONDS_KEY in m]
        step_s.append(statistics.fmean(seconds) if seconds else None)
        seconds = [m[TEACHER_SECONDS_KEY] for s, m in steps.items() if s >= 2 and TEACHER_SECONDS_KEY in m]
        teacher_s.append(statistics.fmean(seconds) if seconds else (0.0 if method == "grpo" else None))
        tokens = [v for s, v in metric_series(steps, TEACHER_TOKENS_KEY, name).items() if s >= 1]
        teacher.append(statistics.fmean(tokens) if tokens else (0.0 if method == "grpo" else None))
        trained = [s for s in steps if s >= 1]
        final.append(float(max(trained)) if trained else None)
    for windows, positions, out in ((step_windows, None, by_step), (time_windows, clocks, by_time)):
        for window in windows:
            values = []
            for i, accuracy in enumerate(accuracies):
                position = positions[i] if positions is not None else {s: float(s) for s in accuracy}
                best = best_within(accuracy, position, window.limit)
                values.append(None if best is None else best[0])
            out.append(Cell.of_values(values))
    return MethodRow(method, len(per_seed), Cell.of_values(base), by_step, by_time, Cell.of_values(step_s),
                     Cell.of_values(teacher_s), Cell.of_values(teacher), Cell.of_values(final),
                     Cell.of_values(final_val), Cell.of_values(auc))


def default_time_windows(runs: dict[str, list[StepMetrics]], fractions=(0.25, 0.5, 1.0)) -> list[Window]:
    """Time budgets at ``fractions`` of the shortest method's mean total training time (whole seconds), so every
    method is still training inside each budget; [] when no run has timed steps."""
    totals = []
    for method, per_seed in runs.items():
        ends = [max(c.values()) for c in (safe_training_seconds(s, method) for s in per_seed) if c]
        if ends:
            totals.append(statistics.fmean(ends))
    if not totals:
        return []
    shortest = min(totals)
    return [Window(f"{max(1, round(f * shortest))}s", float(max(1, round(f * shortest)))) for f in fractions]


def default_step_windows(total_steps: int, fractions=(0.25, 0.5, 1.0)) -> list[Window]:
    """Step budgets at ``fractions`` of ``total_steps`` (at least 1, duplicates dropped)."""
    limits = sorted({max(1, round(f * total_steps)) for f in fractions})
    return [Window(f"{k}st", float(k)) for k in limits]


def comparison_rows(runs: dict[str, list[StepMetrics]], step_windows: list[Window],
                    time_windows: list[Window]) -> list[MethodRow]:
    """One row per method, in the paper's method order."""
    return [method_row(m, runs[m], step_windows, time_windows) for m in _ordered(runs, METHOD_ORDER)]


def render_table(rows: list[MethodRow], step_windows: list[Window], time_windows: list[Window]) -> str:
    """Markdown: best validation accuracy (%) within each step and time budget, mean ± std over seeds."""
    header = (["method", "seeds", "steps", "val acc step 0"] + [f"best ≤{w.label}" for w in step_windows]
              + [f"best ≤{w.label} train time" for w in time_windows] + ["final", "AUC"]
              + ["s/step", "teacher s/step", "teacher tok/step"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.method, str(row.seeds), row.final_step.render(1.0, ".0f"), row.base.render(100.0)]
        cells += [c.render(100.0) for c in row.by_step] + [c.render(100.0) for c in row.by_time]
        cells += [row.final_val.render(100.0), row.auc.render(100.0)]
        cells += [row.step_seconds.render(1.0, ".2f"), row.teacher_seconds.render(1.0, ".3f"),
                  row.teacher_tokens.render(1.0, ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Validation accuracy in %, mean ± std over seeds of each seed's best validation inside the budget "
              "(steps k ≥ 1; train time = Σ timing_s/step − save time, init and validation excluded); final: the last "
              "validation; AUC: area under the validation curve from step 0 to the last validation over that span "
              "(the mean accuracy over training); (n/m): only "
              "n of m seeds had a value; –: none. s/step, teacher s/step: mean timing_s/step, timing_s/srpo_teacher over "
              "steps ≥ 2; teacher tok/step: mean srpo/teacher/tokens."]
    return "\n".join(lines) + "\n"


def plot_comparison(runs: dict[str, list[StepMetrics]], out_png: Path, title: str = "") -> Path:
    """Two rows (vs step, vs training time) x five panels (PANELS), mean ± std bands per method; PNG at out_png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = _ordered(runs, METHOD_ORDER)
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(2, len(PANELS), figsize=(4.0 * len(PANELS), 6.6), squeeze=False)
    for method in methods:
        per_seed = runs[method]
        clock = mean_time_at_steps(per_seed, method)
        for col, (panel, key, scale) in enumerate(PANELS):
            curve = seed_curve([metric_series(s, key, f"{method} seed {i}") for i, s in enumerate(per_seed)])
            if not curve.steps:
                continue
            marker = "o-" if key is None else "-"
            mean = [v * scale for v in curve.mean]
            low = [(m - s) * scale for m, s in zip(curve.mean, curve.std)]
            high = [(m + s) * scale for m, s in zip(curve.mean, curve.std)]
            label = f"{method} (n={max(curve.n)})"
            for row, xs in ((0, curve.steps), (1, [clock.get(s) for s in curve.steps])):
                keep = [i for i, x in enumerate(xs) if x is not None]
                x = [xs[i] / (60.0 if row else 1.0) for i in keep]
                axis = axes[row][col]
                axis.plot(x, [mean[i] for i in keep], marker, ms=3, color=colours[method], label=label)
                axis.fill_between(x, [low[i] for i in keep], [high[i] for i in keep], color=colours[method],
                                  alpha=0.18, linewidth=0)
    for col, (panel, _, _) in enumerate(PANELS):
        for row, xlabel in ((0, "training step"), (1, "training time (min, init + validation excluded)")):
            axis = axes[row][col]
            axis.set_title(panel, fontsize=9)
            axis.set_xlabel(xlabel, fontsize=8)
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3)
            if axis.get_lines():
                axis.legend(fontsize=7)
            else:
                axis.text(0.5, 0.5, "not logged", transform=axis.transAxes, ha="center", color="grey")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out_png, dpi=100)
