"""Writing verl parquet files (the `examples/data_preprocess` schema that `RLHFDataset` reads).

A row: `data_source` (str, picks the verifier), `prompt` (list of {"role","content"} chat messages), `ability`
(str), `reward_model` ({"style": "rule", "ground_truth": str}), `extra_info` (dict, same keys in every row of a
file: verl passes it to the verifier and Arrow needs one struct type per column).
"""

from __future__ import annotations

from pathlib import Path

VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")


def write_verl_parquet(rows: list[dict], path: Path) -> Path:
    """Write `rows` (verl rows, in order) to `path` (parent folders created). Returns the path."""
    import pandas as pd  # deferred: importing pandas costs ~0.5 s and the verifiers never need it

    if not rows:
        raise ValueError(f"refusing to write an empty parquet file: {path}")
    for position, row in enumerate(rows):
        if tuple(row) != VERL_COLUMNS:
            raise ValueError(f"row {position} for {path} has columns {tuple(row)}, expected {VERL_COLUMNS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(VERL_COLUMNS)).to_parquet(path, index=False)
    return path
