"""Command-line entry points behind `scripts/report/make_report.py` and `scripts/eval/score_generations.py`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srpo_verl.report import collapse, generations, table


def report_main(argv: list[str] | None = None) -> int:
    """Print Table 1 (by training time and by training step) and the s/step table; optionally write PNGs."""
    parser = argparse.ArgumentParser(
        description="Table 1 of the SRPO paper (best avg@16 within training-time and step windows) from verl "
        "run logs, plus training-curve PNGs. See docs/REPORT.md.")
    parser.add_argument("--root", type=Path, action="append", default=[],
                        help="runs root laid out as <root>/<method>/<task>/ (the recipes' RUNS_DIR/<model>); "
                        "repeatable")
    parser.add_argument("--run", action="append", default=[], metavar="METHOD:TASK=PATH",
                        help="one run: a run folder, a .jsonl file, a console .log or a TensorBoard event file")
    parser.add_argument("--windows", default=table.DEFAULT_TIME_WINDOWS,
                        help="training-time windows, e.g. 1h,5h,10h or 30s,60s (default %(default)s)")
    parser.add_argument("--step-windows", default=table.DEFAULT_STEP_WINDOWS,
                        help="training-step windows (default %(default)s = 1h/5h/10h at the paper's ~80 s/step)")
    parser.add_argument("--val-source", default=None,
                        help="data source of val-core/<source>/acc/mean@N when a run validated several")
    parser.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    parser.add_argument("--format-drop-warn", type=float, default=0.2, metavar="DROP",
                        help="the format-rate table marks validations more than DROP below the run's best format "
                        "rate (the trainer's srpo.format_drop_warn; default %(default)s)")
    parser.add_argument("--plots", type=Path, default=None, metavar="PNG",
                        help="write the curves figure here (one row per task, one line per method)")
    parser.add_argument("--smooth", type=int, default=1,
                        help="rolling-mean window (steps) for the curves; the paper uses 5")
    args = parser.parse_args(argv)
    try:
        specs = [spec for root in args.root for spec in table.discover_runs(root)]
        specs += [table.parse_run_spec(spec) for spec in args.run]
        if not specs:
            parser.error("give at least one --root or --run")
        entries = table.load_entries(specs)
        time_windows = table.parse_time_windows(args.windows)
        step_windows = table.parse_step_windows(args.step_windows)
        by_time = table.build_table(entries, time_windows, "time", args.val_source)
        by_step = table.build_table(entries, step_windows, "step", args.val_source)
        if args.format == "markdown":
            print(table.render_markdown(by_time, "Best avg@N by training time"))
            print(table.render_markdown(by_step, "Best avg@N by training step"))
            print(table.render_step_time_markdown(table.step_time_table(entries, time_windows), time_windows))
            summaries = [summary for e in entries
                         for summary in collapse.format_summaries(f"{e.method}/{e.task}", e.log.steps,
                                                                  args.format_drop_warn)]
            if summaries:
                print(collapse.render_format_markdown(summaries, args.format_drop_warn))
        else:
            records = table.table_records(by_time) + table.table_records(by_step)
            print(table.render_csv(records) if args.format == "csv" else table.render_json(records), end="")
        print(f"runs: {', '.join(f'{e.method}/{e.task}={e.path} [{e.log.format}]' for e in entries)}",
              file=sys.stderr)
        if args.plots is not None:
            from srpo_verl.report.plots import plot_runs

            path = plot_runs(entries, args.plots, smooth=args.smooth, val_source=args.val_source)
            print(f"wrote {path}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def score_main(argv: list[str] | None = None) -> int:
    """avg@n and unbiased pass@k of verl validation dumps (`trainer.validation_data_dir`), one row per file."""
    parser = argparse.ArgumentParser(
        description="Score verl validation dumps (<step>.jsonl): avg@n and unbiased pass@k per dump file.")
    parser.add_argument("paths", nargs="+", type=Path,
                        help="dump files or folders of <step>.jsonl; a folder's label is its name")
    parser.add_argument("--k", default="1,4,8,16", help="pass@k values, each <= samples per question")
    parser.add_argument("--last", action="store_true", help="only the highest step of each folder")
    args = parser.parse_args(argv)
    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
        rows = []
        for path in args.paths:
            if not path.exists():
                raise FileNotFoundError(f"validation dump file or folder not found: {path}")
            files = generations.dump_files(path) if path.is_dir() else [path]
            if args.last:
                files = files[-1:]
            for file in files:
                # a recipe's dump folder is <run>/val_generations: label it by the run folder
                folder = path.parent.name if path.name == "val_generations" else path.name
                label = f"{folder}/{file.stem}" if path.is_dir() else str(file)
                summary = generations.summarize(generations.read_generation_dump(file), ks)
                rows.append((label, summary))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    columns = [k for k in rows[0][1] if k not in ("questions", "samples_per_question")]
    print("| dump | questions | n | " + " | ".join(columns) + " |")
    print("|" + "---|" * (3 + len(columns)))
    for label, summary in rows:
        values = [f"{100 * summary.get(c, float('nan')):.1f}" for c in columns]
        print(f"| {label} | {int(summary['questions'])} | {int(summary['samples_per_question'])} | "
              + " | ".join(values) + " |")
    return 0
