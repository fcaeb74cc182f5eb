#!/usr/bin/env python
"""Prepare the ToolAlpaca tool-use task as verl parquet.

    python scripts/data/prepare_tooluse.py --from-github --out data/          # needs internet
    python scripts/data/prepare_tooluse.py --local DIR --out data/ [--splits test]   # DIR/tooluse/*.json

Writes <out>/tooluse/{train,test}.parquet and prints the counts; the paper's counts (4046/68) are enforced unless
--no-count-check. The system prompt defaults to the SRPO paper's listing (--system-prompt srpo); --system-prompt
sdpo reproduces the SDPO preprocessing (the rows' own `system`, null in these splits). Exit status 1 with one line
naming the file, line and field when a split is missing or malformed; exact duplicate rows and over-long prompts
are dropped with a count per file and reason (warning lines on stderr), or refused with --strict. See docs/TASKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a fresh clone before `pip install -e .`: the package sits two folders up.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.data import tooluse
from srpo_verl.data.common import (SPLITS, add_screen_arguments, print_counts, print_drops, screen_from_args,
                                   write_task_splits)
from srpo_verl.data.splits import SplitError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--local", type=Path, metavar="DIR",
                        help="root of the SDPO split files (holds tooluse/{train,test}.json)")
    source.add_argument("--from-github", action="store_true",
                        help="download the split files from the SDPO repository (lasgroup/SDPO, datasets/tooluse/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; files go to <out>/tooluse/")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated subset of train,test")
    parser.add_argument("--system-prompt", choices=tooluse.SYSTEM_PROMPT_CHOICES, default="srpo",
                        help="srpo: the SRPO paper's tool-use system prompt (default); sdpo: the row's own, if any")
    parser.add_argument("--no-count-check", action="store_true",
                        help="do not require the paper's row counts (for deliberately different splits)")
    add_screen_arguments(parser)
    args = parser.parse_args(argv)
    args.screen = screen_from_args(parser, args)
    args.splits = [split.strip() for split in args.splits.split(",") if split.strip()]
    if not args.splits or any(split not in SPLITS for split in args.splits):
        parser.error(f"--splits: choose from {','.join(SPLITS)}, got {args.splits}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows = {}
        for split in args.splits:
            if args.local is not None:
                path = tooluse.local_split_path(args.local, split)
                if split == "train" and not path.is_file():
                    raise SplitError(
                        f"missing split file: {path}. The ToolUse train split (4,046 rows) comes from the SDPO "
                        "repository (use --from-github with internet), or prepare only the test split with "
                        "--splits test.")
            else:
                path = tooluse.download_split(split, args.out / "_downloads")
            rows[split] = tooluse.rows_from_file(path, split, args.system_prompt, args.screen)
        expected = None if args.no_count_check else tooluse.EXPECTED_COUNTS
        written = {tooluse.TASK: write_task_splits(tooluse.TASK, rows, args.out, expected, str(args.local or "github"))}
    except (SplitError, RuntimeError) as err:
        print_drops(args.screen)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_drops(args.screen)
    print_counts(written, lambda task: tooluse.EXPECTED_COUNTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
