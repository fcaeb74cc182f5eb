"""Reading JSON-lines files with errors that name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator


def iter_jsonl(path: Path, error: type[ValueError] = ValueError) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed value) for each non-blank line of ``path``.

    A line that is not valid JSON raises ``error`` (ValueError or a subclass) as "<path>:<line>: not valid JSON (...)".
    """
    with Path(path).open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{line_number}: not valid JSON ({err.msg} at column {err.colno})") from None
            yield line_number, value


def load_jsonl(path: Path) -> list:
    """Every non-blank line of ``path``, parsed (errors as in :func:`iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path)]
