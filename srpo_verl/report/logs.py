"""Read verl run logs into per-step metric dicts: the file logger's JSONL, console output, TensorBoard events.

Formats (verl 0.9.1):
- JSONL (`trainer.logger` has `file`; `utils/tracking.py::FileLogger`): one line per `Tracking.log` call,
  `{"step": N, "data": {metric: value, ...}}`. The file is opened with mode "wb", so every launch of a run must
  write its own file (the recipes put a timestamp in the name); `load_run` merges them in name order.
- Console (`console`; `utils/logger/aggregate_logger.py::concat_dict_to_str`): `step:N - key:value - key:value`,
  values printed by `pprint.pformat` (`0.5`, `np.float64(0.5)`, `nan`, `True`). Ray may prefix the line with
  `(TaskRunner pid=...)`.
- TensorBoard (`tensorboard`; `_TensorboardAdapter`): one scalar per metric and step.

A step can be logged more than once (validation before training is logged as step 0 on its own; a resumed run
repeats steps): records are merged per step, later records overriding earlier values of the same metric.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from srpo_verl.jsonl import iter_jsonl

StepMetrics = dict[int, dict[str, float]]

_CONSOLE_STEP = re.compile(r"(?<![\w/])step:(\d+) - ")  # not training/global_step:N
_CONSOLE_PAIR = re.compile(r"(?:^| - )([^\s:][^:]*?):(\S+)")
_NUMBER = re.compile(r"^(?:np\.\w+\()?([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf))\)?$")


@dataclass
class RunLog:
    """Metrics of one run by training step. `sources` lists the files read, `format` is jsonl|console|tensorboard."""

    steps: StepMetrics
    sources: list[Path] = field(default_factory=list)
    format: str = ""

    def series(self, key: str) -> dict[int, float]:
        """{step: value} of one metric over the steps that logged it (finite or not), in step order."""
        return {step: metrics[key] for step, metrics in sorted(self.steps.items()) if key in metrics}

    def keys(self) -> set[str]:
        return {key for metrics in self.steps.values() for key in metrics}


def _merge(into: StepMetrics, step: int, metrics: dict[str, float]) -> None:
    into.setdefault(step, {}).update(metrics)


def _as_float(value) -> float | None:
    """A JSON/console value as float; None for non-numeric values (strings, lists), which are skipped."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def read_jsonl(path: Path) -> StepMetrics:
    """Parse a verl FileLogger JSONL file. Raises ValueError naming the file and line on malformed records."""
    path = Path(path)
    steps: StepMetrics = {}
    for line_no, record in iter_jsonl(path):
        if not isinstance(record, dict) or not isinstance(record.get("data"), dict) or "step" not in record:
            raise ValueError(f"{path}:{line_no}: expected {{'step': int, 'data': {{...}}}} (verl FileLogger)")
        step = record["step"]
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError(f"{path}:{line_no}: 'step' is {step!r}, expected an integer")
        numeric = {k: f for k, v in record["data"].items() if (f := _as_float(v)) is not None}
        _merge(steps, step, numeric)
    return steps


def parse_console_value(text: str) -> float | None:
    """`0.5`, `np.float64(0.5)`, `nan`, `-1e-05`, `True` → float; anything else → None."""
    if text in ("True", "False"):
        return float(text == "True")
    match = _NUMBER.match(text)
    return float(match.group(1)) if match else None


def read_console(path: Path) -> StepMetrics:
    """Parse console output: every line containing `step:N - ...` contributes its key:value pairs."""
    steps: StepMetrics = {}
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = _CONSOLE_STEP.search(line)
            if match is None:
                continue
            body = line[match.end():].rstrip("\n")
            metrics = {}
            for pair in _CONSOLE_PAIR.finditer(body):
                value = parse_console_value(pair.group(2))
                if value is not None:
                    metrics[pair.group(1)] = value
            _merge(steps, int(match.group(1)), metrics)
    return steps


def read_tensorboard(directory: Path) -> StepMetrics:
    """All scalars of the event files under `directory` (recursively), merged by step; wall time is not used."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_files = sorted(Path(directory).rglob("events.out.tfevents.*"))
    if not event_files:
        raise FileNotFoundError(f"no TensorBoard event files under {directory}")
    steps: StepMetrics = {}
    for event_file in event_files:
        accumulator = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                _merge(steps, int(event.step), {tag: float(event.value)})
    return steps


def load_run(path: Path) -> RunLog:
    """Load one run from a file (.jsonl / console .log|.txt / event file) or a run folder.

    In a folder the first format found wins, in this order: `*.jsonl` files directly in it (merged in name
    order), TensorBoard events anywhere below it, `*.log` console files directly in it. Raises FileNotFoundError
    naming the folder when none is there.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix == ".jsonl":
            return RunLog(read_jsonl(path), [path], "jsonl")
        if path.name.startswith("events.out.tfevents."):
            return RunLog(read_tensorboard(path.parent), [path.parent], "tensorboard")
        return RunLog(read_console(path), [path], "console")
    if not path.is_dir():
        raise FileNotFoundError(f"run log not found: {path}")
    jsonl_files = sorted(path.glob("*.jsonl"))
    if jsonl_files:
        return RunLog(_merged_files(read_jsonl, jsonl_files), jsonl_files, "jsonl")
    if any(path.rglob("events.out.tfevents.*")):
        return RunLog(read_tensorboard(path), [path], "tensorboard")
    console_files = sorted(path.glob("*.log"))
    if console_files:
        return RunLog(_merged_files(read_console, console_files), console_files, "console")
    raise FileNotFoundError(f"{path}: no *.jsonl, TensorBoard events or *.log console files")


def _merged_files(reader, files: list[Path]) -> StepMetrics:
    """The steps of every file (read with ``reader``), merged by step in the files' order."""
    steps: StepMetrics = {}
    for file in files:
        for step, metrics in reader(file).items():
            _merge(steps, step, metrics)
    return steps
