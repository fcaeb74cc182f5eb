"""Pieces shared by the task modules: expected counts, verl-row building, the split → parquet driver."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NamedTuple

from srpo_verl.data.parquet import write_verl_parquet
from srpo_verl.data.splits import MAX_PROMPT_CHARS, RowScreen, SplitError

SPLITS = ("train", "test")


class SplitCounts(NamedTuple):
    """Rows per split, as in the SRPO paper's Table 4 (= the SDPO repo's split files)."""

    train: int
    test: int


def verl_row(data_source: str, messages: list[dict], ability: str, ground_truth: str, extra_info: dict) -> dict:
    """One verl parquet row (column order = `parquet.VERL_COLUMNS`)."""
    return {
        "data_source": data_source,
        "prompt": messages,
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": extra_info,
    }


def check_count(task: str, split: str, actual: int, expected: SplitCounts, source: str) -> None:
    """Raise SplitError when `actual` differs from the paper's count for (task, split)."""
    want = getattr(expected, split)
    if actual != want:
        raise SplitError(
            f"{task}/{split}: {actual} rows from {source}, the paper's table has {want}. The split differs from the "
            "one the paper used (pass --no-count-check only for a deliberately different split)."
        )


def check_splits_disjoint(task: str, rows_by_split: dict[str, list[dict]], source: str) -> None:
    """Raise SplitError when a source row (same `source_idx`) is in two splits: a test row seen in training
    inflates the test score."""
    ids = {split: {row["extra_info"]["source_idx"] for row in rows} for split, rows in rows_by_split.items()}
    names = list(ids)
    for position, first in enumerate(names):
        for second in names[position + 1:]:
            shared = sorted(ids[first] & ids[second])
            if shared:
                raise SplitError(f"{task}: the {first} and the {second} split of {source} share {len(shared)} idx "
                                 f"value(s), the first {shared[0]}; a test row seen in training inflates the test score")


def write_task_splits(
    task: str,
    rows_by_split: dict[str, list[dict]],
    out_dir: Path,
    expected: SplitCounts | None,
    source: str,
) -> dict[str, tuple[int, Path]]:
    """Check the counts (unless `expected` is None) and write `<out_dir>/<task>/<split>.parquet` for each split.

    Returns {split: (rows, path)}. Counts and disjointness are checked for every split before anything is written.
    """
    check_splits_disjoint(task, rows_by_split, source)
    if expected is not None:
        for split, rows in rows_by_split.items():
            check_count(task, split, len(rows), expected, source)
    written = {}
    for split, rows in rows_by_split.items():
        path = write_verl_parquet(rows, Path(out_dir) / task / f"{split}.parquet")
        written[split] = (len(rows), path)
    return written


def print_counts(written: dict[str, dict[str, tuple[int, Path]]], expected: Callable[[str], SplitCounts | None]) -> None:
    """A table `task split rows expected path` of what was written."""
    print(f"{'task':<10} {'split':<6} {'rows':>6} {'paper':>6}  path")
    for task, by_split in written.items():
        counts = expected(task)
        for split, (rows, path) in by_split.items():
            paper = getattr(counts, split) if counts is not None else "-"
            print(f"{task:<10} {split:<6} {rows:>6} {paper:>6}  {path}")


def add_screen_arguments(parser: argparse.ArgumentParser) -> None:
    """The scripts' --strict and --max-prompt-chars flags (see `splits.RowScreen`)."""
    parser.add_argument("--strict", action="store_true",
                        help="refuse the rows that are otherwise dropped and counted (exact duplicates, over-long "
                             "prompts)")
    parser.add_argument("--max-prompt-chars", type=int, default=MAX_PROMPT_CHARS, metavar="N",
                        help=f"longest prompt + system text of a row, in characters (default {MAX_PROMPT_CHARS:,})")


def screen_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RowScreen:
    """The RowScreen the flags ask for (a usage error for a bound below 1)."""
    if args.max_prompt_chars < 1:
        parser.error(f"--max-prompt-chars must be a positive number of characters, got {args.max_prompt_chars}")
    return RowScreen(strict=args.strict, max_prompt_chars=args.max_prompt_chars)


def print_drops(screen: RowScreen) -> None:
    """The rows `screen` dropped, one `warning:` line per file and reason, on stderr."""
    for line in screen.summary():
        print(f"warning: {line}", file=sys.stderr)
