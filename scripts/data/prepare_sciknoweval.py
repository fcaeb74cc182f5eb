#!/usr/bin/env python
"""Prepare the SciKnowEval L3 tasks (Chemistry, Physics, Biology, Materials) as verl parquet.

    python scripts/data/prepare_sciknoweval.py --from-hf --out data/          # needs internet
    python scripts/data/prepare_sciknoweval.py --local DIR --out data/        # DIR/sciknoweval/<task>/*.json

Writes <out>/<task>/{train,test}.parquet and prints the counts; the paper's counts (1890/210, 720/80, 450/50,
841/94) are enforced unless --no-count-check. Exit status 1 with one line naming the file, line and field when a
split is missing or malformed; exact duplicate rows and over-long prompts are dropped with a count per file and
reason (warning lines on stderr), or refused with --strict. See docs/TASKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a fresh clone before `pip install -e .`: the package sits two folders up.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.data import sciknoweval
from srpo_verl.data.common import (SPLITS, add_screen_arguments, print_counts, print_drops, screen_from_args,
                                   write_task_splits)
from srpo_verl.data.splits import SplitError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--local", type=Path, metavar="DIR",
                        help="root of the SDPO split files (holds sciknoweval/<task>/{train,test}.json)")
    source.add_argument("--from-hf", action="store_true",
                        help=f"download {sciknoweval.HF_DATASET}, filter to L3 MCQ and split 90/10 with seed 42")
    parser.add_argument("--out", type=Path, required=True, help="output folder; files go to <out>/<task>/")
    parser.add_argument("--tasks", default=",".join(sciknoweval.TASKS),
                        help=f"comma-separated subset of {','.join(sciknoweval.TASKS)} (default: all)")
    parser.add_argument("--no-count-check", action="store_true",
                        help="do not require the paper's row counts (for deliberately different splits)")
    add_screen_arguments(parser)
    args = parser.parse_args(argv)
    args.screen = screen_from_args(parser, args)
    args.tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    unknown = [task for task in args.tasks if task not in sciknoweval.TASKS]
    if unknown or not args.tasks:
        parser.error(f"--tasks: unknown {unknown}; choose from {','.join(sciknoweval.TASKS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    written = {}
    try:
        for task in args.tasks:
            if args.local is not None:
                rows = {split: sciknoweval.read_local_split(args.local, task, split, args.screen)
                        for split in SPLITS}
                source = f"{args.local}/sciknoweval/{task}"
            else:
                rows = sciknoweval.rows_from_hf(task, sciknoweval.load_hf_rows(task), args.screen)
                source = sciknoweval.hf_source(task)
            expected = None if args.no_count_check else sciknoweval.EXPECTED_COUNTS[task]
            written[task] = write_task_splits(task, rows, args.out, expected, source)
    except (SplitError, RuntimeError) as err:
        print_drops(args.screen)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_drops(args.screen)
    print_counts(written, sciknoweval.EXPECTED_COUNTS.get)
    return 0


if __name__ == "__main__":
    sys.exit(main())
