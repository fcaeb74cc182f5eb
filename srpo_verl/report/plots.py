"""Training-curve figures (PNG, matplotlib Agg): one row per task, one line per method, five panels.

Panels (SRPO_SPEC §3.2–3.4, App. C): validation avg@N vs training hours (Fig. 3), mean response length vs training hours
(Fig. 4a), seconds per step vs step (Fig. 4b), route fractions vs step (Fig. 5: SDPO solid, GRPO dashed, no-demo
dotted), teacher entropy vs step (Fig. 1c). Hours use the training time of `table.training_seconds`. A panel whose
metric a method did not log (GRPO has no routes) says so instead of drawing nothing silently.
"""

from __future__ import annotations

from pathlib import Path

from srpo_verl.report.table import (
    TASK_ORDER,
    METHOD_ORDER,
    RunEntry,
    _ordered,
    training_seconds,
    validation_key,
)

RESPONSE_LENGTH_KEY = "response_length/mean"
ROUTE_KEYS = (("srpo/route/sdpo_frac", "-"), ("srpo/route/grpo_frac", "--"), ("srpo/route/no_demo_frac", ":"))
TEACHER_ENTROPY_KEY = "srpo/teacher/entropy_mean"
# Loss-side metrics reach the logs with verl's `actor/` prefix (trainer_base `_update_actor`); driver-side ones
# without. Both spellings are looked up, in this order.
METRIC_PREFIXES = ("", "actor/")
PANELS = ("val acc (%) vs train hours", "response length vs train hours", "s/step vs step",
          "route fraction vs step", "teacher entropy vs step")


def save_figure(fig, out_path: str | Path, dpi: int | str = "figure") -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path. ``dpi``: savefig's
    (``"figure"``: the figure's own)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path


def _lookup(entry: RunEntry, key: str) -> dict[int, float]:
    for prefix in METRIC_PREFIXES:
        series = entry.log.series(prefix + key)
        if series:
            return series
    return {}


def _rolling_mean(values: list[float], window: int) -> list[float]:
    if window <= 1:
        return values
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_runs(entries: list[RunEntry], out_path: Path, smooth: int = 1, val_source: str | None = None) -> Path:
    """Draw all runs into one PNG at `out_path` (rows = tasks, columns = PANELS) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _ordered({e.task for e in entries}, TASK_ORDER)
    methods = _ordered({e.method for e in entries}, METHOD_ORDER)
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(tasks), len(PANELS), figsize=(4.2 * len(PANELS), 3.2 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for col, title in enumerate(PANELS):
            axes[row][col].set_title(f"{task}: {title}", fontsize=9)
        missing = {col: [] for col in range(len(PANELS))}
        for entry in (e for e in entries if e.task == task):
            name = entry.name
            colour = colours[entry.method]
            seconds = training_seconds(entry.log, name)
            hours = {step: t / 3600.0 for step, t in seconds.items()}
            hours[0] = 0.0
            accuracy = entry.log.series(validation_key(entry.log, name, val_source))
            steps = [s for s in accuracy if s in hours]
            axes[row][0].plot([hours[s] for s in steps], [100 * accuracy[s] for s in steps], "o-", ms=3,
                              color=colour, label=entry.method)
            lengths = _lookup(entry, RESPONSE_LENGTH_KEY)
            if lengths:
                xs = [s for s in lengths if s in hours]
                axes[row][1].plot([hours[s] for s in xs], _rolling_mean([lengths[s] for s in xs], smooth),
                                  color=colour, label=entry.method)
            else:
                missing[1].append(entry.method)
            step_seconds = {s: t - seconds.get(s - 1, 0.0) for s, t in seconds.items()}
            xs = sorted(step_seconds)
            axes[row][2].plot(xs, _rolling_mean([step_seconds[s] for s in xs], smooth), color=colour,
                              label=entry.method)
            drew_route = False
            for key, style in ROUTE_KEYS:
                series = _lookup(entry, key)
                if series:
                    drew_route = True
                    xs = sorted(series)
                    axes[row][3].plot(xs, _rolling_mean([series[s] for s in xs], smooth), style, color=colour,
                                      label=f"{entry.method} {key.rsplit('/', 1)[-1]}")
            if not drew_route:
                missing[3].append(entry.method)
            entropy = _lookup(entry, TEACHER_ENTROPY_KEY)
            if entropy:
                xs = sorted(entropy)
                axes[row][4].plot(xs, _rolling_mean([entropy[s] for s in xs], smooth), color=colour,
                                  label=entry.method)
            else:
                missing[4].append(entry.method)
        for col in range(len(PANELS)):
            axis = axes[row][col]
            if missing[col]:
                axis.text(0.02, 0.02, "not logged: " + ", ".join(missing[col]), transform=axis.transAxes,
                          fontsize=7, color="grey")
            if axis.get_lines():
                axis.legend(fontsize=6)
            axis.tick_params(labelsize=7)
    return save_figure(fig, out_path, dpi=90)
