"""Start-up checks of what the config points at: data files, the model directory, its vocabulary and tokenizer.

The driver runs them before Ray starts (:func:`srpo_verl.preflight.startup_checks`); every error is one line naming
the key (:class:`RunConfigError`).
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any, Mapping

from srpo_verl.verl_ext.settings import SRPOSettings, config_number, config_value, refuse

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def _is_remote(path: str) -> bool:
    return "://" in path


def _check_data_files(config: Mapping[str, Any]) -> None:
    for key in ("data.train_files", "data.val_files"):
        value = config_value(config, key, None)
        if value is None:
            refuse(f"{key} is not set: give a parquet file (or a list of them)")
        files = [value] if isinstance(value, str) else list(value)
        if not files:
            refuse(f"{key}=[] is empty: give a parquet file (or a list of them)")
        for index, file in enumerate(files):
            name = key if isinstance(value, str) else f"{key}[{index}]"
            file = str(file)
            if _is_remote(file):
                continue
            local = os.path.expanduser(file)
            found = glob.glob(local) if _GLOB_CHARS.search(local) else [local] if os.path.exists(local) else []
            if not found:
                refuse(f"{name}={file!r} does not exist (resolved from {os.getcwd()}); prepare the data "
                        "(docs/TASKS.md) or fix the path")


def _read_json(path: str, key: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        refuse(f"{key}: cannot read {path}: {error}")


def model_config_json(config: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """The model's config.json (and the directory holding it) from `actor_rollout_ref.model.path`.

    A missing local path is refused by name. A Hugging Face hub id is looked up in the local hub cache; when it is
    not there the result is (None, None) (verl will download it on every node, which needs the hub), and with
    HF_HUB_OFFLINE=1 that is refused.
    """
    key = "actor_rollout_ref.model.path"
    path = config_value(config, key, None)
    if path is None:
        refuse(f"{key} is not set: give a Hugging Face model directory (with config.json)")
    path = str(path)
    if _is_remote(path):
        return None, None
    local = os.path.expanduser(path)
    if os.path.isdir(local):
        config_file = os.path.join(local, "config.json")
        if not os.path.isfile(config_file):
            refuse(f"{key}={path!r} has no config.json: not a Hugging Face model directory")
        return _read_json(config_file, key), local
    if os.path.exists(local):
        refuse(f"{key}={path!r} is a file; give the model directory (the one holding config.json)")
    if not _HUB_ID.match(path):
        refuse(f"{key}={path!r} does not exist (resolved from {os.getcwd()}); give a local model directory "
                "with config.json (or an org/name Hugging Face hub id where the hub is reachable)")
    cached = _hub_cache_file(path, "config.json")
    if cached:
        return _read_json(cached, key), os.path.dirname(cached)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        refuse(f"{key}={path!r} is not a local directory and is not in the Hugging Face cache, and HF_HUB_OFFLINE "
                "forbids downloading it: give a local model directory")
    return None, None


def _hub_cache_file(repo_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def vocab_size(model_config: Mapping[str, Any]) -> int | None:
    """Rows of the output layer: config.json's vocab_size (or its text_config's, for multimodal models)."""
    size = model_config.get("vocab_size")
    if size is None and isinstance(model_config.get("text_config"), dict):
        size = model_config["text_config"].get("vocab_size")
    return int(size) if size is not None else None


def template_overhead_tokens(tokenizer, settings: SRPOSettings) -> int:
    """Tokens the teacher template adds around the question when every field it shows is empty."""
    solution = settings.solution_template.format(successful_previous_attempt="")
    feedback = settings.feedback_template.format(feedback_raw="") if settings.include_environment_feedback else ""
    text = settings.reprompt_template.format(prompt="", solution=solution, feedback=feedback)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def check_run_inputs(config: Mapping[str, Any], settings: SRPOSettings, runs_srpo_trainer: bool) -> list[str]:
    """Check the files the run reads before Ray starts: data files, the model directory, srpo.topk against the
    vocabulary and srpo.max_reprompt_len against the prompt cap plus the template's tokens.

    Returns notes for the console (what could not be checked and why); refuses with RunConfigError.
    """
    notes = []
    _check_data_files(config)
    model_json, model_dir = model_config_json(config)
    model_path = config_value(config, "actor_rollout_ref.model.path")
    if model_json is None:
        notes.append(f"actor_rollout_ref.model.path={model_path!r} is not a local directory (nor in the Hugging Face "
                     "cache): verl will download it on every node, which needs the hub; srpo.topk and "
                     "srpo.max_reprompt_len are not checked against its vocabulary and tokenizer")
    if not (runs_srpo_trainer and settings.uses_teacher) or model_json is None:
        return notes
    vocab = vocab_size(model_json)
    if vocab is not None and settings.topk > vocab:
        refuse(f"srpo.topk={settings.topk} is larger than the vocabulary of actor_rollout_ref.model.path "
                f"(vocab_size={vocab}): use 1..{vocab}")
    tokenizer_path = config_value(config, "actor_rollout_ref.model.tokenizer_path", None) or model_dir
    tokenizer_path = os.path.expanduser(str(tokenizer_path))
    if os.path.isdir(tokenizer_path) and os.path.isfile(os.path.join(tokenizer_path, "tokenizer_config.json")):
        overhead = template_overhead_tokens(_load_tokenizer(tokenizer_path), settings)
        prompt_len = config_number(config, "data.max_prompt_length", 512)
        if settings.max_reprompt_len < prompt_len + overhead:
            refuse(f"srpo.max_reprompt_len={settings.max_reprompt_len} is below data.max_prompt_length + the "
                    f"teacher template = {prompt_len} + {overhead} = {prompt_len + overhead} tokens: the longest "
                    f"prompt would lose its demonstration; set it ≥ {prompt_len + overhead} (room for the "
                    "demonstration comes on top)")
    else:
        notes.append(f"no tokenizer files in {tokenizer_path}: srpo.max_reprompt_len is checked against "
                     "data.max_prompt_length only, not the template's tokens")
    return notes
