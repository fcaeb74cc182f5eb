"""End-of-run summary of a quickstart run: a per-step table and a PNG of reward, validation accuracy and format rate.

    python -m srpo_verl.tiny.report --metrics RUN/metrics.jsonl --out RUN

reads verl's file-logger JSONL (``trainer.logger=[console,file]``, ``VERL_FILE_LOGGER_PATH``; parsed by
``srpo_verl.report.logs.read_jsonl``) and writes ``RUN/summary.md`` (the table) and ``RUN/curves.png``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from srpo_verl.report.logs import StepMetrics, read_jsonl
from srpo_verl.report.plots import save_figure

REWARD_KEY = "critic/score/mean"  # mean verifier score of the step's rollouts (0..1 on the synthetic task)
STEP_SECONDS_KEY = "timing_s/step"
PROBS_DIFF_KEY = "training/rollout_probs_diff_mean"
SDPO_FRACTION_KEYS = ("srpo/route/sdpo_frac", "actor/srpo/route/sdpo_frac")
MASS_GAP_KEY = "srpo/topk/mass_gap"  # student - teacher probability mass on the distilled top-K ids (SDPO tokens)
_VAL_ACC = re.compile(r"^val-core/(?P<source>[^/]+)/acc/mean@(?P<n>\d+)$")


@dataclass(frozen=True)
class StepRow:
    """One training step (or the step-0 validation before training). Missing values are None."""

    step: int
    reward: float | None
    val_acc: float | None
    seconds: float | None
    probs_diff: float | None
    sdpo_fraction: float | None
    val_format: float | None = None  # validation format rate (the verifier's format_ok), next to val acc
    mass_gap: float | None = None


def validation_accuracy_key(steps: StepMetrics) -> str | None:
    """The ``val-core/<source>/acc/mean@N`` key in the log (None when the run never validated).

    Raises ValueError when several data sources were validated: the quickstart has exactly one.
    """
    keys = sorted({k for metrics in steps.values() for k in metrics if _VAL_ACC.match(k)})
    if len(keys) > 1:
        raise ValueError(f"several validation accuracy keys in the log, expected one: {keys}")
    return keys[0] if keys else None


def format_rate_key(val_key: str | None) -> str | None:
    """The format-rate key ``val-aux/<source>/format_ok/mean@N`` of the accuracy key's source and N (verl logs it
    next to ``val-core/<source>/acc/mean@N``: the core variable is acc); None without an accuracy key."""
    match = _VAL_ACC.match(val_key or "")
    if not match:
        return None
    return f"val-aux/{match.group('source')}/format_ok/mean@{match.group('n')}"


def step_row(step: int, metrics: dict, val_key: str | None) -> StepRow:
    """The row of one step's metrics (``val_key`` from :func:`validation_accuracy_key`)."""

    def first(*keys: str) -> float | None:
        return next((metrics[k] for k in keys if k in metrics), None)

    format_key = format_rate_key(val_key)
    return StepRow(step, first(REWARD_KEY), first(val_key) if val_key else None, first(STEP_SECONDS_KEY),
                   first(PROBS_DIFF_KEY), first(*SDPO_FRACTION_KEYS), first(format_key) if format_key else None,
                   first(MASS_GAP_KEY))


def step_rows(steps: StepMetrics) -> list[StepRow]:
    """One row per logged step, in step order."""
    val_key = validation_accuracy_key(steps)
    return [step_row(step, metrics, val_key) for step, metrics in sorted(steps.items())]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(rows: list[StepRow]) -> str:
    """A markdown table: step, train reward, val acc, val format rate (when logged), s/step, rollout-vs-actor prob
    diff, SDPO-routed fraction and top-K mass gap (when logged)."""
    show_sdpo = any(r.sdpo_fraction is not None for r in rows)
    show_format = any(r.val_format is not None for r in rows)
    show_gap = any(r.mass_gap is not None for r in rows)
    header = (["step", "train reward", "val acc"] + (["val format"] if show_format else []) + ["s/step", "probs diff"]
              + (["SDPO-routed"] if show_sdpo else []) + (["mass gap"] if show_gap else []))
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for r in rows:
        cells = ([str(r.step), _fmt(r.reward, ".3f"), _fmt(r.val_acc, ".3f")]
                 + ([_fmt(r.val_format, ".3f")] if show_format else [])
                 + [_fmt(r.seconds, ".1f"), _fmt(r.probs_diff, ".1e")]
                 + ([_fmt(r.sdpo_fraction, ".2f")] if show_sdpo else [])
                 + ([_fmt(r.mass_gap, ".3f")] if show_gap else []))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(rows: list[StepRow], window: int = 5) -> str:
    """One sentence: train reward over the first and last ``window`` steps, first and last validation accuracy."""
    rewards = [r.reward for r in rows if r.reward is not None]
    vals = [(r.step, r.val_acc) for r in rows if r.val_acc is not None]
    formats = [(r.step, r.val_format) for r in rows if r.val_format is not None]
    parts = []
    if rewards:
        k = min(window, len(rewards))
        parts.append(f"train reward {sum(rewards[:k]) / k:.3f} (first {k} steps) -> "
                     f"{sum(rewards[-k:]) / k:.3f} (last {k})")
    if vals:
        parts.append(f"val acc {vals[0][1]:.3f} (step {vals[0][0]}) -> {vals[-1][1]:.3f} (step {vals[-1][0]})")
    if formats:
        parts.append(f"val format {formats[0][1]:.3f} (step {formats[0][0]}) -> {formats[-1][1]:.3f} "
                     f"(step {formats[-1][0]})")
    seconds = [r.seconds for r in rows if r.seconds is not None]
    if seconds:
        parts.append(f"{sum(seconds) / len(seconds):.1f} s/step")
    return "; ".join(parts) if parts else "no training metrics logged"


def plot_curves(rows: list[StepRow], out_png: Path, title: str = "") -> Path:
    """Train reward per step and validation accuracy at the validated steps, on one 0..1 axis (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    train = [(r.step, r.reward) for r in rows if r.reward is not None]
    val = [(r.step, r.val_acc) for r in rows if r.val_acc is not None]
    formats = [(r.step, r.val_format) for r in rows if r.val_format is not None]
    if train:
        ax.plot(*zip(*train), marker=".", label="train reward (mean score of rollouts)")
    if val:
        ax.plot(*zip(*val), marker="o", label="validation accuracy")
    if formats:
        ax.plot(*zip(*formats), marker="s", linestyle="--", label="validation format rate")
    ax.set_xlabel("training step")
    ax.set_ylabel("score / accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "tiny Qwen3 on the synthetic task (CPU)")
    return save_figure(fig, out_png)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Table and PNG of a quickstart run's reward and val accuracy.")
    parser.add_argument("--metrics", type=Path, required=True, help="verl file-logger JSONL")
    parser.add_argument("--out", type=Path, required=True, help="directory for summary.md and curves.png")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    if not args.metrics.exists():
        print(f"[report] metrics file not found: {args.metrics}", file=sys.stderr)
        return 1
    rows = step_rows(read_jsonl(args.metrics))
    if not rows:
        print(f"[report] {args.metrics} holds no step records", file=sys.stderr)
        return 1
    table = render_table(rows)
    summary = headline(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(f"{table}\n\n{summary}\n")
    png = plot_curves(rows, args.out / "curves.png", args.title)
    print(table)
    print(f"\n{summary}\nplot: {png}\ntable: {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
