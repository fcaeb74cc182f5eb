"""ToolAlpaca tool-use task (SRPO_SPEC §2, §5.4): 4,046 train / 68 test rows of the SDPO repo's `tooluse/` splits.

Row format (SDPO split): `idx`, `prompt` (the API documentation + the Thought/Action/Action Input format + the
question), `system` (null in every SDPO row), `answer` (JSON list of {"Action", "Action_Input"}), ...

System prompt, a deliberate choice (flag `system_prompt`):
- "srpo" (default): the SRPO paper's Listing 4 tool-use system prompt, `SRPO_SYSTEM_PROMPT`. The SRPO paper lists
  it for this task, and its numbers are the ones this project reproduces;
- "sdpo": what the SDPO preprocessing does, a system message only when the row has one (never, in these splits).
The user prompt is the row's `prompt`, verbatim, either way.

Sources: local split files, or the SDPO GitHub repository's files (network) for users with internet; the ToolUse
train split is not on the Hugging Face hub.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from srpo_verl.data.common import SplitCounts, verl_row
from srpo_verl.data.splits import RowScreen, SplitError, read_jsonl, require_field, screen_rows
from srpo_verl.rewards.tooluse import parse_gold

DATA_SOURCE = "tooluse"
TASK = "tooluse"
EXPECTED_COUNTS = SplitCounts(4046, 68)
SRPO_SYSTEM_PROMPT = (
    "You are a tool-use assistant. Solve each request by reasoning about the task and calling the provided tools "
    "when needed.\nUse only the tools provided in the user message.\nFollow the required response format exactly."
)
SYSTEM_PROMPT_CHOICES = ("srpo", "sdpo")
SDPO_REPO_RAW_URL = "https://raw.githubusercontent.com/lasgroup/SDPO/main/datasets/tooluse/{split}.json"


def system_messages(row_system, system_prompt: str) -> list[dict]:
    """The system part of the chat for one row, per the `system_prompt` choice (see the module docstring)."""
    if system_prompt == "srpo":
        return [{"role": "system", "content": SRPO_SYSTEM_PROMPT}]
    if system_prompt == "sdpo":
        return [{"role": "system", "content": row_system}] if row_system else []
    raise ValueError(f"system_prompt must be one of {SYSTEM_PROMPT_CHOICES}, got {system_prompt!r}")


def split_row_to_verl(path: Path, line_number: int, row: dict, split: str, index: int, system_prompt: str) -> dict:
    """A validated SDPO tool-use row → a verl row. The gold answer must parse as the verifier will read it."""
    question = require_field(path, line_number, row, "prompt", str)
    answer = require_field(path, line_number, row, "answer", str)
    source_idx = require_field(path, line_number, row, "idx", int)
    row_system = row.get("system")
    if row_system is not None and not isinstance(row_system, str):
        raise SplitError(f"{path}:{line_number}: field 'system' must be a string or null, got {row_system!r:.60}")
    try:
        parse_gold(answer)
    except ValueError as err:
        raise SplitError(f"{path}:{line_number}: field 'answer' is not a valid gold call list: {err}") from None
    messages = system_messages(row_system, system_prompt) + [{"role": "user", "content": question}]
    extra_info = {"split": split, "index": index, "source_idx": source_idx, "task": TASK}
    return verl_row(DATA_SOURCE, messages, "tooluse", answer, extra_info)


def rows_from_file(path: Path, split: str, system_prompt: str, screen: RowScreen | None = None) -> list[dict]:
    """verl rows of one split file, in file order. `screen` counts the dropped rows (default: a strict one, which
    refuses them)."""
    rows = screen_rows(path, read_jsonl(path), screen or RowScreen())
    return [split_row_to_verl(path, line, row, split, index, system_prompt) for index, (line, row) in enumerate(rows)]


def local_split_path(splits_root: Path, split: str) -> Path:
    """`<splits_root>/tooluse/<split>.json`."""
    return Path(splits_root) / "tooluse" / f"{split}.json"


def download_split(split: str, dest_dir: Path, timeout_s: float = 60.0) -> Path:
    """Fetch the SDPO repo's `datasets/tooluse/<split>.json` into `dest_dir/tooluse/`. RuntimeError when offline."""
    url = SDPO_REPO_RAW_URL.format(split=split)
    dest = local_split_path(dest_dir, split)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            payload = response.read()
    except Exception as err:  # noqa: BLE001 - reported with its cause and the way out
        raise RuntimeError(
            f"could not download {url}: {type(err).__name__}: {err}. This path needs internet access; offline, copy "
            "the SDPO repo's datasets/tooluse/{train,test}.json to <DIR>/tooluse/ and use --local <DIR>."
        ) from err
    if payload.startswith(b"version https://git-lfs"):
        raise RuntimeError(f"{url} is a Git LFS pointer, not the data: clone the SDPO repo with git-lfs instead")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(payload)
    return dest
