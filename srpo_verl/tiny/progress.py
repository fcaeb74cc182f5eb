"""Run a verl training command with a progress bar and one console line per step.

    python -m srpo_verl.tiny.progress --metrics FILE --steps N --log FILE -- <command...>

The command's stdout/stderr go to ``--log`` (verl and Ray are verbose); this process polls verl's file-logger
JSONL (``--metrics``, the ``VERL_FILE_LOGGER_PATH`` the command writes) and prints, for each logged step, the train
reward, validation accuracy and format rate, seconds per step and rollout-vs-actor probability difference, with a
bar on a TTY.
On failure it prints the tail of the log and exits with the command's status.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from srpo_verl.tiny.report import REWARD_KEY, step_row, validation_accuracy_key

LOG_TAIL_LINES = 60


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Ray's raylet and workers included), in bytes."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class JsonlFollower:
    """Reads the complete lines appended to a JSONL file since the last call (the file may not exist yet)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.pending = b""

    def new_records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()  # an incomplete last line waits for the next call
        records = []
        for line in lines:
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{self.path}: malformed record {line[:120]!r} ({error.msg})") from error
        return records


def step_line(record: dict, total_steps: int) -> str:
    """The console line of one file-logger record ``{"step": N, "data": {...}}``."""
    data = record.get("data", {})
    row = step_row(record.get("step", -1), data, validation_accuracy_key({0: data}))
    parts = [f"step {record.get('step', '?'):>3}/{total_steps}"]
    for label, value, spec in (("reward ", row.reward, ".3f"), ("val acc ", row.val_acc, ".3f"),
                               ("val format ", row.val_format, ".3f"), ("SDPO-routed ", row.sdpo_fraction, ".2f")):
        if value is not None:
            parts.append(f"{label}{value:{spec}}")
    if row.seconds is not None:
        parts.append(f"{row.seconds:.1f} s/step")
    if row.probs_diff is not None:
        parts.append(f"probs diff {row.probs_diff:.1e}")
    return " | ".join(parts)


def progress_bar(done: int, total: int, elapsed_s: float, width: int = 30) -> str:
    """``[#####.....] 5/20  1m23s`` (``done`` clipped to ``total``)."""
    done = min(done, total)
    filled = int(width * done / total) if total else width
    minutes, seconds = divmod(int(elapsed_s), 60)
    phase = "starting verl/Ray" if done == 0 else "training"
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps  {minutes}m{seconds:02d}s  ({phase})"


def tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def run_with_progress(command: list[str], metrics: Path, log: Path, total_steps: int, poll_s: float = 1.0) -> int:
    """Run ``command`` (output to ``log``), follow ``metrics``, print progress; return the command's exit status."""
    if metrics.exists():
        metrics.unlink()  # verl's FileLogger truncates it anyway; a stale file would show old steps
    log.parent.mkdir(parents=True, exist_ok=True)
    follower = JsonlFollower(metrics)
    interactive = sys.stdout.isatty()
    started = time.monotonic()
    done = 0
    peak_rss = 0
    with log.open("wb") as log_handle:
        process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                status = process.poll()
                if status is None:
                    peak_rss = max(peak_rss, tree_rss_bytes(process.pid))
                for record in follower.new_records():
                    if isinstance(record.get("step"), int) and REWARD_KEY in record.get("data", {}):
                        done = max(done, record["step"])
                    line = step_line(record, total_steps)
                    print(("\r\033[K" if interactive else "") + line, flush=True)
                if interactive:
                    print("\r\033[K" + progress_bar(done, total_steps, time.monotonic() - started), end="",
                          flush=True)
                if status is not None:
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
            raise
    elapsed = time.monotonic() - started
    if interactive:
        print()
    if status != 0:
        print(f"[quickstart] training command failed with status {status} after {elapsed:.0f} s; "
              f"last {LOG_TAIL_LINES} lines of {log}:\n{tail(log, LOG_TAIL_LINES)}", file=sys.stderr)
    else:
        print(f"[quickstart] training finished: {done}/{total_steps} steps in {elapsed:.0f} s, peak RSS of the "
              f"process tree {peak_rss / 2**30:.2f} GiB (sampled every {poll_s:g} s; log: {log})")
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: python -m srpo_verl.tiny.progress --metrics FILE --steps N --log FILE -- COMMAND...",
              file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description="Run a verl command with a progress bar and per-step lines.")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("no command after --")
    return run_with_progress(command, args.metrics, args.log, args.steps)


if __name__ == "__main__":
    sys.exit(main())
