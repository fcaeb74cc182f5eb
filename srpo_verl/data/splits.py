"""Reading the SDPO JSON-lines split files (`<task>/{train,test}.json`, one JSON object per line).

Every error names the file, the 1-based line and the field, so a truncated download or a hand-edited row is found
at once.

Rows are refused (SplitError) or dropped; what is dropped is counted per file and reason by a `RowScreen`, and a
strict screen refuses those rows too (docs/TASKS.md, "What is refused, what is dropped"):
- dropped: an exact duplicate of an earlier row of the file (same `idx`, same content); a row whose prompt and
  system text together hold more than `max_prompt_chars` characters (default MAX_PROMPT_CHARS);
- refused: everything else that is wrong, including an `idx` repeated with different content.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from srpo_verl.jsonl import iter_jsonl

# Longest prompt (system + user text, in characters) a row may hold. The splits' longest is 5,412 characters (a
# tool-use prompt). At the ~4 characters per token of English text this is ~250k tokens, past the 131,072-token
# context of Qwen3 with YaRN, so no `data.max_prompt_length` can hold such a prompt; checking here, before any
# tokenizer runs, keeps a corrupted 50 MB row from reaching verl's filter_overlong_prompts.
MAX_PROMPT_CHARS = 1_000_000
DUPLICATE = "duplicate"
OVERLONG = "overlong"


class SplitError(ValueError):
    """A split file is missing or malformed; the message says where and what."""


class RowScreen:
    """Counts the rows left out of split files, per (file, reason); when `strict`, refuses them instead.

    The library default is strict (nothing is dropped unless a caller asks for it); the prepare scripts drop and
    count, and refuse with --strict.
    """

    def __init__(self, strict: bool = True, max_prompt_chars: int = MAX_PROMPT_CHARS):
        if max_prompt_chars < 1:
            raise ValueError(f"max_prompt_chars must be a positive number of characters, got {max_prompt_chars}")
        self.strict = strict
        self.max_prompt_chars = max_prompt_chars
        self.dropped: Counter = Counter()

    def drop(self, path: Path | str, line_number: int, reason: str, detail: str) -> None:
        """Count row `line_number` of `path` as dropped for `reason`, or raise SplitError when strict."""
        if self.strict:
            raise SplitError(f"{path}:{line_number}: {detail} (refused under --strict; without it such rows are "
                             "dropped and counted)")
        self.dropped[(str(path), reason)] += 1

    def summary(self) -> list[str]:
        """One line per (file, reason) with rows dropped, in the order first seen."""
        reasons = {DUPLICATE: "duplicates of an earlier row (same idx and content)",
                   OVERLONG: f"prompt longer than {self.max_prompt_chars:,} characters"}
        return [f"{path}: dropped {count} row{'' if count == 1 else 's'}: {reasons[reason]} (--strict refuses them)"
                for (path, reason), count in self.dropped.items()]


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `path`. Raises SplitError for a missing file, bytes that
    are not UTF-8, bad JSON or a line that is not an object."""
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


def prompt_chars(row: dict) -> int:
    """Characters of the row's prompt text: its `prompt` and `system` strings together."""
    return sum(len(row[field]) for field in ("prompt", "system") if isinstance(row.get(field), str))


def screen_rows(path: Path | str, rows: list[tuple[int, dict]], screen: RowScreen) -> list[tuple[int, dict]]:
    """`rows` without the over-long prompts and exact duplicates (`screen` counts or refuses them). An `idx`
    repeated with a different row is refused: which of the two is right cannot be told."""
    kept, first_seen = [], {}
    for line_number, row in rows:
        length = prompt_chars(row)
        if length > screen.max_prompt_chars:
            screen.drop(path, line_number, OVERLONG,
                        f"fields 'prompt' and 'system' hold {length:,} characters, over the "
                        f"{screen.max_prompt_chars:,}-character bound (--max-prompt-chars)")
            continue
        idx = row.get("idx")
        if isinstance(idx, int) and not isinstance(idx, bool):  # a bad idx is refused by require_field later
            if idx in first_seen:
                first_line, first_row = first_seen[idx]
                if row != first_row:
                    raise SplitError(f"{path}:{line_number}: field 'idx' {idx} is already used by line {first_line} "
                                     "for a different row")
                screen.drop(path, line_number, DUPLICATE, f"field 'idx' {idx}: the same row as line {first_line}")
                continue
            first_seen[idx] = (line_number, row)
        kept.append((line_number, row))
    return kept


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
