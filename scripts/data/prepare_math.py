#!/usr/bin/env python
"""Prepare a standard math RL set as verl parquet, scored by math-verify (data_source math_verify/<set>).

    python scripts/data/prepare_math.py --from-hf --out data/                     # MATH train + MATH-500 test
    python scripts/data/prepare_math.py --from-hf --test aime2024 --out data/     # MATH train + AIME 2024 test
    python scripts/data/prepare_math.py --local-train train.jsonl --local-test test.jsonl --out data/

Writes <out>/math/{train,test}.parquet (the recipes' TASK=math) and prints the counts; the hub sets' counts (7500;
500 or 30) are enforced unless --no-count-check. Local files are JSONL with 'problem' and 'answer' (or 'solution',
whose last \\boxed{} is the answer) per line. Exit status 1 with one line naming the file, line and field when a
file is missing or malformed, a gold answer does not parse with math-verify, or a test problem is in the train
split; nothing is written then. See docs/TASKS.md "Math with math-verify".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable from a fresh clone before `pip install -e .`: the package sits two folders up.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.data import math_sets
from srpo_verl.data.common import SplitCounts, check_count, print_counts
from srpo_verl.data.parquet import write_verl_parquet
from srpo_verl.data.splits import SplitError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-hf", action="store_true", help="download the sets from the Hugging Face hub")
    parser.add_argument("--local-train", type=Path, metavar="FILE", help="train JSONL (offline)")
    parser.add_argument("--local-test", type=Path, metavar="FILE", help="test JSONL (offline)")
    parser.add_argument("--test", choices=math_sets.TEST_SETS, default="math500",
                        help="the hub test set (default math500); with local files it only names the data_source")
    parser.add_argument("--out", type=Path, required=True, help=f"output folder; files go to <out>/{math_sets.TASK}/")
    parser.add_argument("--no-count-check", action="store_true",
                        help="do not require the hub sets' row counts (for deliberately different files)")
    args = parser.parse_args(argv)
    local = args.local_train is not None or args.local_test is not None
    if args.from_hf == local:
        parser.error("pass either --from-hf or both --local-train and --local-test")
    if local and (args.local_train is None or args.local_test is None):
        parser.error("--local-train and --local-test go together")
    return args


def load_rows(args) -> tuple[dict[str, list[dict]], str]:
    """({split: verl rows}, a description of the source)."""
    train_source, test_source = math_sets.HF_SETS["math"][2], math_sets.HF_SETS[args.test][2]
    if args.from_hf:
        rows = {"train": math_sets.rows_from_hf("math", math_sets.load_hf("math"), "train"),
                "test": math_sets.rows_from_hf(args.test, math_sets.load_hf(args.test), "test")}
        return rows, f"hf://{math_sets.HF_SETS['math'][0]} + hf://{math_sets.HF_SETS[args.test][0]}"
    rows = {"train": math_sets.read_local(args.local_train, train_source, "train"),
            "test": math_sets.read_local(args.local_test, test_source, "test")}
    return rows, f"{args.local_train} + {args.local_test}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows, source = load_rows(args)
        math_sets.check_disjoint(rows["train"], rows["test"], source)
        for split, split_rows in rows.items():
            math_sets.check_golds(split_rows, f"{source} ({split})")
        expected = None
        if args.from_hf and not args.no_count_check:
            expected = SplitCounts(math_sets.HF_SETS["math"][3], math_sets.HF_SETS[args.test][3])
            for split, split_rows in rows.items():
                check_count(math_sets.TASK, split, len(split_rows), expected, source)
        # source_idx numbers each file's rows on its own: disjointness is checked on the problems (above)
        written = {math_sets.TASK: {
            split: (len(split_rows), write_verl_parquet(split_rows, args.out / math_sets.TASK / f"{split}.parquet"))
            for split, split_rows in rows.items()}}
    except (SplitError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_counts(written, lambda task: expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
