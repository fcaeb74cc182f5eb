"""Data rows checked where they are loaded: before Ray for local files (srpo_verl.main), at dataset load otherwise
(the SRPO trainer's _init_dataloader).

verl 0.9.1 trains on a bad row without a word: a row without ``reward_model.ground_truth`` is scored 0, an empty
prompt trains on the chat template alone, and its agent loop left-truncates an over-long prompt whatever
``data.truncation`` says. Here a missing/null ground truth, an empty or non-list prompt (or a message without
string ``content``) and, with ``data.truncation=error`` and no ``data.filter_overlong_prompts``, a prompt over
``data.max_prompt_length`` tokens (chat template and generation prompt included, as the agent loop counts) refuse the
run in one line naming the file, the 0-based row and the field; over-long prompts that verl filters or truncates are
counted per reason and printed at start.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

DATA_KEYS = ("data.train_files", "data.val_files")
TRUNCATIONS = ("error", "left", "right", "middle")
_GLOB_CHARS = re.compile(r"[*?\[]")
#: rows tokenised per apply_chat_template call
TOKENIZE_CHUNK = 512


class DataRowError(ValueError):
    """A data row verl would train on silently wrong: one line naming file, row and field."""


@dataclass
class FileReport:
    """What a file's check found: its rows and the over-long prompts per reason (filtered / truncated)."""

    name: str
    path: str
    rows: int = 0
    overlong: Counter = field(default_factory=Counter)


def _get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def data_files(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, path) of every data file, ``data.train_files[0]``-style names, globs expanded (sorted)."""
    out = []
    for key in DATA_KEYS:
        value = _get(config, key)
        if value is None:
            continue
        files = [value] if isinstance(value, str) else list(value)
        for index, file in enumerate(files):
            name = key if isinstance(value, str) else f"{key}[{index}]"
            file = os.path.expanduser(str(file))
            paths = sorted(glob.glob(file)) if _GLOB_CHARS.search(file) and "://" not in file else [file]
            out.extend((name, path) for path in paths)
    return out


def _plain(value: Any) -> Any:
    """numpy arrays (what pandas/datasets give for parquet lists) as lists, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_rows(path: str, prompt_key: str) -> Iterator[dict]:
    """The ``prompt_key`` and ``reward_model`` fields of every row of a parquet, json or jsonl file (what
    RLHFDataset reads); a missing column reads as None in every row."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        columns = [c for c in (prompt_key, "reward_model") if c in schema.names]
        table = pq.read_table(path, columns=columns)
        data = {c: table.column(c).to_pylist() for c in columns}
        for i in range(table.num_rows):
            yield {c: data[c][i] if c in data else None for c in (prompt_key, "reward_model")}
    elif path.endswith(".jsonl") or path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            records = json.loads(text)
            records = records if isinstance(records, list) else [records]
        except json.JSONDecodeError:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        for record in records:
            yield {c: record.get(c) for c in (prompt_key, "reward_model")}
    else:
        raise DataRowError(f"{path}: unsupported data file format (verl's RLHFDataset reads .parquet, .json, .jsonl)")


def row_problem(row: Mapping[str, Any], prompt_key: str) -> str | None:
    """The first structural problem of one row (``field: what``), or None."""
    prompt = _plain(row.get(prompt_key))
    if not isinstance(prompt, list):
        return f"{prompt_key} is {type(prompt).__name__} {str(prompt)[:60]!r}, not a list of chat messages"
    if not prompt:
        return f"{prompt_key} is [] (verl would train on the chat template alone)"
    for j, message in enumerate(prompt):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return f"{prompt_key}[{j}] is {str(message)[:60]!r}, not a message with string 'content'"
    reward_model = _plain(row.get("reward_model"))
    if not isinstance(reward_model, dict) or reward_model.get("ground_truth") is None:
        return "reward_model.ground_truth is missing or null (verl would score every rollout of this prompt 0)"
    return None


def check_rows(rows: Iterable[Mapping[str, Any]], report: FileReport, prompt_key: str, max_prompt_length: int,
               truncation: str, filter_overlong: bool,
               prompt_lengths: Callable[[list[list[dict]]], list[int]] | None) -> FileReport:
    """Check every row; raise DataRowError naming the first bad row (and how many more share a problem).

    ``prompt_lengths`` maps a chunk of prompts to their token counts (None: lengths are not checked)."""
    first, more = None, 0
    prompts: list[list[dict]] = []
    indices: list[int] = []
    lengths_over: list[tuple[int, int]] = []

    def measure() -> None:
        for index, length in zip(indices, prompt_lengths(prompts), strict=True):
            if length > max_prompt_length:
                lengths_over.append((index, length))
        prompts.clear()
        indices.clear()

    for index, row in enumerate(rows):
        report.rows += 1
        problem = row_problem(row, prompt_key)
        if problem:
            if first is None:
                first = (index, problem)
            else:
                more += 1
            continue
        if prompt_lengths is not None and first is None:
            prompts.append(_plain(row[prompt_key]))
            indices.append(index)
            if len(prompts) >= TOKENIZE_CHUNK:
                measure()
    if first is not None:
        index, problem = first
        others = f" ({more} more bad row(s) in this file)" if more else ""
        raise DataRowError(f"{report.name}={report.path} row {index}: {problem}{others}; fix or drop the row")
    if prompt_lengths is not None and prompts:
        measure()
    if lengths_over:
        if filter_overlong:
            report.overlong["filtered (data.filter_overlong_prompts)"] += len(lengths_over)
        elif truncation == "error":
            index, length = lengths_over[0]
            others = f" ({len(lengths_over) - 1} more in this file)" if len(lengths_over) > 1 else ""
            raise DataRowError(
                f"{report.name}={report.path} row {index}: {prompt_key} is {length} tokens with the chat template, "
                f"over data.max_prompt_length={max_prompt_length}, and data.truncation=error{others}; raise "
                "data.max_prompt_length, set data.filter_overlong_prompts=true, or data.truncation=left|right|middle")
        else:
            report.overlong[f"truncated (data.truncation={truncation}; verl 0.9.1's agent loop keeps the last "
                            f"{max_prompt_length} tokens whatever the side)"] += len(lengths_over)
    return report


def chat_lengths(tokenizer, chat_kwargs: Mapping[str, Any] | None = None) -> Callable[[list[list[dict]]], list[int]]:
    """Token counts of prompts as verl's agent loop builds them (chat template + generation prompt)."""
    dropped = ("tokenize", "return_dict", "return_tensors")
    kwargs = {k: v for k, v in dict(chat_kwargs or {}).items() if k not in dropped}

    def lengths(prompts: list[list[dict]]) -> list[int]:
        texts = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False, **kwargs)
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return lengths


def _settings(config: Mapping[str, Any]) -> tuple[str, int, str, bool]:
    prompt_key = str(_get(config, "data.prompt_key", "prompt"))
    max_len = int(_get(config, "data.max_prompt_length", 1024))
    truncation = str(_get(config, "data.truncation", "error"))
    if truncation not in TRUNCATIONS:
        raise DataRowError(f"data.truncation={truncation!r} is not one of {', '.join(TRUNCATIONS)}")
    return prompt_key, max_len, truncation, bool(_get(config, "data.filter_overlong_prompts", True))


def summary(reports: Sequence[FileReport]) -> list[str]:
    """One note per file with over-long prompts: the count per reason."""
    notes = []
    for report in reports:
        if report.overlong:
            reasons = "; ".join(f"{n} {reason}" for reason, n in sorted(report.overlong.items()))
            notes.append(f"{report.name}={report.path}: {sum(report.overlong.values())} of {report.rows} prompts "
                         f"over data.max_prompt_length: {reasons}")
    return notes


def check_data_files(config: Mapping[str, Any], tokenizer=None) -> tuple[list[FileReport], list[str]]:
    """Check every local data file's rows (before Ray). Returns the reports and the notes to print: the over-long
    counts, and what was not checked (remote files; lengths without a local tokenizer)."""
    prompt_key, max_len, truncation, filter_overlong = _settings(config)
    lengths = chat_lengths(tokenizer, _get(config, "data.apply_chat_template_kwargs", {})) if tokenizer else None
    reports, notes = [], []
    for name, path in data_files(config):
        if "://" in path:
            notes.append(f"{name}={path} is not local: its rows are checked when the trainer loads it")
            continue
        report = FileReport(name, path)
        reports.append(check_rows(read_rows(path, prompt_key), report, prompt_key, max_len, truncation,
                                  filter_overlong, lengths))
    if tokenizer is None and reports:
        notes.append("no local tokenizer: prompt lengths are checked when the trainer loads the data")
    return reports, notes + summary(reports)


def check_dataset(dataset, name: str, config: Mapping[str, Any], tokenizer) -> FileReport:
    """The same check on a loaded verl RLHFDataset (its ``dataframe``, after verl's own filter), at dataset load."""
    prompt_key, max_len, truncation, filter_overlong = _settings(config)
    rows = ({prompt_key: r.get(prompt_key), "reward_model": r.get("reward_model")} for r in dataset.dataframe)
    report = FileReport(name, ",".join(str(p) for p in getattr(dataset, "original_data_files", []) or []))
    return check_rows(rows, report, prompt_key, max_len, truncation, filter_overlong,
                      chat_lengths(tokenizer, _get(config, "data.apply_chat_template_kwargs", {})))


def local_tokenizer_path(config: Mapping[str, Any]) -> str | None:
    """``actor_rollout_ref.model.tokenizer_path`` (else the model path) when it is a local tokenizer directory."""
    path = _get(config, "actor_rollout_ref.model.tokenizer_path") or _get(config, "actor_rollout_ref.model.path")
    if path is None:
        return None
    path = os.path.expanduser(str(path))
    return path if os.path.isfile(os.path.join(path, "tokenizer_config.json")) else None


#: the driver's switch for nodes that cannot see the inputs (srpo_verl.preflight.SKIP_INPUT_CHECKS_ENV)
SKIP_ENV = "SRPO_VERL_SKIP_INPUT_CHECKS"


def checked_before_ray(config: Mapping[str, Any]) -> bool:
    """Whether the driver checked every row with a tokenizer (else the trainer checks them at dataset load)."""
    return (os.environ.get(SKIP_ENV) != "1" and local_tokenizer_path(config) is not None
            and all("://" not in path for _, path in data_files(config)))
