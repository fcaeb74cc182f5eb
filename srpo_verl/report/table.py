"""Table 1 of the SRPO paper from run logs: best avg@16 within training-time and training-step windows.

Training time (SRPO_SPEC §2 "Metric": SDPO's protocol excludes initialisation and validation time). verl 0.9.1's fit loop
(`trainer/ppo/v1/trainer_base.py::fit`) times each step with `marked_timer("step")`, which covers rollout, reward,
log-probs, the teacher pass, the update and checkpoint saving; validation runs after that block under its own
`marked_timer("testing")`, and initialisation happens before the loop. So

    train_seconds(k) = Σ_{j=1..k} ( timing_s/step_j − timing_s/save_checkpoint_j )

(the save term is 0 on steps that did not save) is the wall-clock spent training up to the end of step k, with
init, validation and checkpoint writing excluded. Validation at step k scores the weights after step k, so it
counts toward every window W with train_seconds(k) ≤ W. The cell of a window is the highest such avg@16; the
step-0 validation (`val_before_train`) is the untrained model and feeds the "base" row only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from srpo_verl.report.logs import RunLog, load_run

STEP_TIME_KEY = "timing_s/step"
SAVE_TIME_KEY = "timing_s/save_checkpoint"
VAL_KEY = re.compile(r"^val-core/(?P<source>[^/]+)/acc/mean@(?P<n>\d+)$")

TASK_ORDER = ("chemistry", "physics", "biology", "material", "tooluse")
TASK_SHORT = {"chemistry": "Chem", "physics": "Phys", "biology": "Bio", "material": "Mat", "tooluse": "Tool"}
METHOD_ORDER = ("grpo", "sdpo", "srpo", "srpo_no_dw", "adv_mix", "sdpo_incorrect_only", "sdpo_correct_only")

# Paper windows: 1h/5h/10h of training time. Step windows: the same budgets at the paper's ~80 s/step on 8×H20
# (SRPO_SPEC §3.4: 71–92 s/step), i.e. 45/225/450 steps; pass your own for other hardware.
DEFAULT_TIME_WINDOWS = "1h,5h,10h"
DEFAULT_STEP_WINDOWS = "45,225,450"


@dataclass(frozen=True)
class Window:
    """A budget: `limit` in seconds (time windows) or steps (step windows), printed as `label`."""

    label: str
    limit: float


def parse_time_windows(text: str) -> list[Window]:
    """"1h,5h,10h" / "30m" / "90s" / "120" (seconds) → windows. ValueError names the bad item."""
    windows = []
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([hms]?)", item)
        if not match:
            raise ValueError(f"time window {item!r}: expected a number with an optional h/m/s unit, e.g. 1h")
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}[match.group(2)]
        label = item if match.group(2) else f"{item}s"
        windows.append(Window(label, float(match.group(1)) * scale))
    return windows


def parse_step_windows(text: str) -> list[Window]:
    """"45,225,450" → step windows labelled "45st" etc. ValueError names the bad item."""
    windows = []
    for item in (part.strip() for part in text.split(",")):
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"step window {item!r}: expected a positive integer")
        windows.append(Window(f"{item}st", float(item)))
    return windows


def validation_key(run: RunLog, name: str, source: str | None = None) -> str:
    """The run's `val-core/<source>/acc/mean@N` key (verl logs only the largest N there).

    Exactly one must exist unless `source` picks one; a ValueError names the run and the candidates.
    """
    candidates = sorted(k for k in run.keys() if VAL_KEY.match(k))
    if source is not None:
        candidates = [k for k in candidates if VAL_KEY.match(k).group("source") == source]
    if len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)}"
        raise ValueError(
            f"run {name}: {what} validation accuracy keys val-core/<source>/acc/mean@N"
            f"{'' if source is None else f' for source {source!r}'} ({candidates}); "
            f"pass --val-source to pick one, or check that the run validated (trainer.test_freq)"
        )
    return candidates[0]


def training_seconds(run: RunLog, name: str) -> dict[int, float]:
    """Cumulative training time (s) at the end of each logged training step k ≥ 1 (module docstring).

    Steps must run 1..K without gaps and each must carry `timing_s/step`; otherwise the log is incomplete (e.g. a
    resumed run whose earlier log file is missing) and a ValueError names the run and the step.
    """
    steps = sorted(s for s in run.steps if s >= 1)
    elapsed, result = 0.0, {}
    for expected, step in enumerate(steps, start=1):
        if step != expected:
            raise ValueError(f"run {name}: training step {expected} is missing from the log (next logged: {step})")
        metrics = run.steps[step]
        if STEP_TIME_KEY not in metrics:
            raise ValueError(f"run {name}: step {step} has no {STEP_TIME_KEY}; cannot place it in time")
        elapsed += metrics[STEP_TIME_KEY] - metrics.get(SAVE_TIME_KEY, 0.0)
        result[step] = elapsed
    return result


def best_within(values: dict[int, float], position: dict[int, float], limit: float) -> tuple[float, int] | None:
    """Highest finite value among steps k ≥ 1 with position[k] ≤ limit, as (value, step); earliest step on ties."""
    best = None
    for step in sorted(values):
        if step < 1 or step not in position or position[step] > limit or not math.isfinite(values[step]):
            continue
        if best is None or values[step] > best[0]:
            best = (values[step], step)
    return best


def mean_step_seconds_within(seconds: dict[int, float], limit: float) -> float | None:
    """Mean training seconds per step over the steps that end within `limit` seconds (SRPO_SPEC §3.4's table)."""
    inside = [step for step, t in seconds.items() if t <= limit]
    if not inside:
        return None
    return seconds[max(inside)] / len(inside)


@dataclass
class RunEntry:
    """One training run: its method and task labels and its log."""

    method: str
    task: str
    log: RunLog
    path: Path

    @property
    def name(self) -> str:
        """How errors and tables name this run."""
        return f"{self.method}/{self.task} ({self.path})"


@dataclass
class Table:
    """Cells in [0, 1] (None = no validation inside the window). `cells[method][task]` has one value per window."""

    windows: list[Window]
    axis: str  # "time" | "step"
    methods: list[str]
    tasks: list[str]
    base: dict[str, float | None]
    cells: dict[str, dict[str, list[float | None]]]
    val_n: list[int]

    def average(self, values_by_task: dict[str, float | None]) -> tuple[float | None, int]:
        present = [v for v in values_by_task.values() if v is not None]
        return (sum(present) / len(present) if present else None), len(present)

    def method_average(self, method: str, window_index: int) -> tuple[float | None, int]:
        return self.average({t: self.cells[method].get(t, [None] * len(self.windows))[window_index]
                             for t in self.tasks})


def _ordered(names, preferred) -> list[str]:
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def build_table(entries: list[RunEntry], windows: list[Window], axis: str, val_source: str | None = None) -> Table:
    """Table 1 cells for `axis` "time" (windows in seconds) or "step" (windows in steps).

    Two runs with the same method and task are an error (ValueError naming both paths). The base row of a task is
    the mean of its runs' step-0 validations (they score the same initial model).
    """
    if axis not in ("time", "step"):
        raise ValueError(f"axis must be 'time' or 'step', got {axis!r}")
    seen: dict[tuple[str, str], Path] = {}
    cells: dict[str, dict[str, list[float | None]]] = {}
    base_values: dict[str, list[float]] = {}
    val_n = set()
    for entry in entries:
        key = (entry.method, entry.task)
        if key in seen:
            raise ValueError(f"two runs for method {entry.method} on task {entry.task}: {seen[key]} and {entry.path}")
        seen[key] = entry.path
        name = entry.name
        val_key = validation_key(entry.log, name, val_source)
        val_n.add(int(VAL_KEY.match(val_key).group("n")))
        accuracy = entry.log.series(val_key)
        seconds = training_seconds(entry.log, name)
        position = seconds if axis == "time" else {step: float(step) for step in seconds}
        row = []
        for window in windows:
            best = best_within(accuracy, position, window.limit)
            row.append(None if best is None else best[0])
        cells.setdefault(entry.method, {})[entry.task] = row
        if 0 in accuracy and math.isfinite(accuracy[0]):
            base_values.setdefault(entry.task, []).append(accuracy[0])
    tasks = _ordered({e.task for e in entries}, TASK_ORDER)
    base = {t: (sum(base_values[t]) / len(base_values[t]) if t in base_values else None) for t in tasks}
    return Table(windows, axis, _ordered(cells, METHOD_ORDER), tasks, base, cells, sorted(val_n))


def step_time_table(entries: list[RunEntry], windows: list[Window]) -> dict[str, list[float | None]]:
    """Mean training seconds per step within each time window, averaged over a method's tasks (SRPO_SPEC §3.4)."""
    per_method: dict[str, list[list[float]]] = {}
    for entry in entries:
        seconds = training_seconds(entry.log, entry.name)
        slots = per_method.setdefault(entry.method, [[] for _ in windows])
        for i, window in enumerate(windows):
            value = mean_step_seconds_within(seconds, window.limit)
            if value is not None:
                slots[i].append(value)
    return {m: [sum(s) / len(s) if s else None for s in per_method[m]] for m in _ordered(per_method, METHOD_ORDER)}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f}"


def render_markdown(table: Table, title: str) -> str:
    """The paper's layout: one row per method, one column per task with window values joined by '/', then Avg."""
    window_labels = "/".join(w.label for w in table.windows)
    header = ["method"] + [f"{TASK_SHORT.get(t, t)} {window_labels}" for t in table.tasks] + [f"Avg {window_labels}"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    if any(v is not None for v in table.base.values()):
        base_avg, count = table.average(table.base)
        lines.append("| base | " + " | ".join(_pct(table.base[t]) for t in table.tasks) + f" | {_pct(base_avg)} |")
        if count and count < len(table.tasks):
            notes.append(f"base Avg over {count} of {len(table.tasks)} tasks")
    for method in table.methods:
        row = [method]
        for task in table.tasks:
            values = table.cells[method].get(task)
            row.append("–" if values is None else "/".join(_pct(v) for v in values))
        averages = []
        for i in range(len(table.windows)):
            value, count = table.method_average(method, i)
            averages.append(_pct(value))
            if count and count < len(table.tasks):
                notes.append(f"{method} Avg {table.windows[i].label} over {count} of {len(table.tasks)} tasks")
        row.append("/".join(averages))
        lines.append("| " + " | ".join(row) + " |")
    axis_note = ("training time = Σ timing_s/step − timing_s/save_checkpoint (init and validation excluded)"
                 if table.axis == "time" else "windows count training steps")
    lines += ["", f"best avg@{'/'.join(map(str, table.val_n))} (%) within each window; {axis_note}; – = no "
              "validation inside the window."]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def render_step_time_markdown(step_times: dict[str, list[float | None]], windows: list[Window]) -> str:
    header = ["method"] + [f"s/step ≤{w.label}" for w in windows]
    lines = ["### Mean training seconds per step (averaged over tasks)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in step_times.items():
        lines.append("| " + " | ".join([method] + ["–" if v is None else f"{v:.1f}" for v in values]) + " |")
    return "\n".join(lines) + "\n"


def table_records(table: Table) -> list[dict]:
    """Flat records (method, task, window, axis, value in [0,1] or None) for CSV/JSON output."""
    records = [{"method": "base", "task": t, "window": "step0", "axis": table.axis, "value": table.base[t]}
               for t in table.tasks]
    for method in table.methods:
        for task in table.tasks:
            values = table.cells[method].get(task, [None] * len(table.windows))
            for window, value in zip(table.windows, values):
                records.append({"method": method, "task": task, "window": window.label, "axis": table.axis,
                                "value": value})
        for i, window in enumerate(table.windows):
            records.append({"method": method, "task": "avg", "window": window.label, "axis": table.axis,
                            "value": table.method_average(method, i)[0]})
    return records


def render_csv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["method", "task", "window", "axis", "value"], lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({**record, "value": "" if record["value"] is None else f"{record['value']:.6f}"})
    return out.getvalue()


def render_json(records: list[dict]) -> str:
    return json.dumps([{**r, "value": None if r["value"] is None or math.isnan(r["value"]) else r["value"]}
                       for r in records], indent=1)


def discover_runs(root: Path) -> list[tuple[str, str, Path]]:
    """(method, task, folder) for every `<root>/<method>/<task>/` folder holding logs (the recipes' layout)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root not found: {root}")
    found = []
    for method_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for task_dir in sorted(p for p in method_dir.iterdir() if p.is_dir()):
            has_logs = any(task_dir.glob("*.jsonl")) or any(task_dir.glob("*.log")) or any(
                task_dir.rglob("events.out.tfevents.*"))
            if has_logs:
                found.append((method_dir.name, task_dir.name, task_dir))
    if not found:
        raise FileNotFoundError(f"no <method>/<task>/ run folders with logs under {root}")
    return found


def parse_run_spec(spec: str) -> tuple[str, str, Path]:
    """"METHOD:TASK=PATH" → (method, task, path). ValueError on any other shape."""
    match = re.fullmatch(r"([^:=]+):([^:=]+)=(.+)", spec)
    if not match:
        raise ValueError(f"--run {spec!r}: expected METHOD:TASK=PATH, e.g. srpo:chemistry=runs/srpo/chemistry")
    return match.group(1), match.group(2), Path(match.group(3))


def load_entries(specs: list[tuple[str, str, Path]]) -> list[RunEntry]:
    return [RunEntry(method, task, load_run(path), Path(path)) for method, task, path in specs]
