"""Reading JSON-lines files with errors that name the file and the line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

# With errors="surrogateescape" each byte that is not valid UTF-8 reads as one of U+DC80..U+DCFF, and nothing else
# can (strict UTF-8 never decodes to a lone surrogate): finding one finds the bad byte.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _utf8_error(path: Path, line_number: int, line: str, bad: re.Match) -> str:
    """"<path>:<line>: field 'f' is not valid UTF-8 (byte 0xNN at column C)" (without the field when the line is
    not a JSON object)."""
    where = f"byte 0x{ord(bad.group()) - 0xDC00:02x} at column {bad.start() + 1}"
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        for key, item in value.items():
            if _UNDECODABLE.search(key) or _UNDECODABLE.search(json.dumps(item, ensure_ascii=False)):
                return f"{path}:{line_number}: field {key!r:.80} is not valid UTF-8 ({where})"
    return f"{path}:{line_number}: not valid UTF-8 ({where})"


def iter_jsonl(path: Path, error: type[ValueError] = ValueError) -> Iterator[tuple[int, object]]:
    """(1-based line number, parsed value) for each non-blank line of ``path``.

    A line that is not valid UTF-8 or not valid JSON raises ``error`` (ValueError or a subclass) as one line:
    "<path>:<line>: field 'prompt' is not valid UTF-8 (byte 0xff at column 12)" or
    "<path>:<line>: not valid JSON (...)".
    """
    with Path(path).open(encoding="utf-8", errors="surrogateescape") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            bad = _UNDECODABLE.search(line)
            if bad is not None:
                raise error(_utf8_error(path, line_number, line, bad))
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{line_number}: not valid JSON ({err.msg} at column {err.colno})") from None
            yield line_number, value


def load_jsonl(path: Path) -> list:
    """Every non-blank line of ``path``, parsed (errors as in :func:`iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path)]
