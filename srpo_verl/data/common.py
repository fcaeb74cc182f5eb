"""Pieces shared by the task modules: expected counts, verl-row building, the split → parquet driver."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from srpo_verl.data.parquet import write_verl_parquet
from srpo_verl.data.splits import SplitError

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


def write_task_splits(
    task: str,
    rows_by_split: dict[str, list[dict]],
    out_dir: Path,
    expected: SplitCounts | None,
    source: str,
) -> dict[str, tuple[int, Path]]:
    """Check the counts (unless `expected` is None) and write `<out_dir>/<task>/<split>.parquet` for each split.

    Returns {split: (rows, path)}. Counts are checked for every split before anything is written.
    """
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
