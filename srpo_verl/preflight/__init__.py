"""Everything checked before a run starts training: the config (:mod:`.config`), what it points at
(:mod:`.inputs`, and every data row: :mod:`.rows`), the checkpoint it would resume from (:mod:`.checkpoint`) and the
checkpoint directory's lock (:mod:`.lock`). Each refusal is one line naming the key, file, row or step and what
would be valid. No ray or verl import in the config and input checks: the driver runs them before Ray starts.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from srpo_verl.preflight.config import check_entry, validate_run_config
from srpo_verl.preflight.inputs import check_run_inputs
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings

__all__ = ["RunConfigError", "SKIP_INPUT_CHECKS_ENV", "startup_checks"]

#: set to 1 when the driver's node cannot see the data and model paths (node-local files on the workers only)
SKIP_INPUT_CHECKS_ENV = "SRPO_VERL_SKIP_INPUT_CHECKS"


def startup_checks(config: Mapping[str, Any]) -> tuple[SRPOSettings, list[str]]:
    """Everything the driver checks before Ray starts: :func:`validate_run_config` then :func:`check_run_inputs`
    (skipped, with a note, when SRPO_VERL_SKIP_INPUT_CHECKS=1). Returns the settings and the notes to print;
    raises RunConfigError (one line) for the first problem."""
    settings = validate_run_config(config)
    if os.environ.get(SKIP_INPUT_CHECKS_ENV) == "1":
        return settings, [f"{SKIP_INPUT_CHECKS_ENV}=1: data files, model path, srpo.topk against the vocabulary and "
                          "srpo.max_reprompt_len against the tokenizer are not checked on this node"]
    notes = check_run_inputs(config, settings, check_entry(config))
    return settings, notes
