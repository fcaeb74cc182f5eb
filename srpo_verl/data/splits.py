"""Reading the SDPO JSON-lines split files (`<task>/{train,test}.json`, one JSON object per line).

Every error names the file, the 1-based line and the field, so a truncated download or a hand-edited row is found
at once.
"""

from __future__ import annotations

from pathlib import Path

from srpo_verl.jsonl import iter_jsonl


class SplitError(ValueError):
    """A split file is missing or malformed; the message says where and what."""


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `path`. Raises SplitError for a missing file or bad JSON."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"missing split file: {path}")
    rows = []
    for line_number, row in iter_jsonl(path, SplitError):
        if not isinstance(row, dict):
            raise SplitError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_number, row))
    if not rows:
        raise SplitError(f"{path}: the split file is empty")
    return rows


def require_field(path: Path | str, line_number: int, row: dict, field: str, kind: type):
    """`row[field]`, checked to be present, of type `kind` and (for strings) not blank."""
    if field not in row:
        raise SplitError(f"{path}:{line_number}: field {field!r} is missing")
    value = row[field]
    # bool is an int subclass; an index of `true` is a bug, not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SplitError(f"{path}:{line_number}: field {field!r} must be {kind.__name__}, got {value!r:.80}")
    if isinstance(value, str) and not value.strip():
        raise SplitError(f"{path}:{line_number}: field {field!r} is empty")
    return value
