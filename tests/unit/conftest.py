"""Fixtures shared by several unit-test files.

`verl_probe_without_cpu_flag`: one fresh Python process that imports verl without SRPO_VERL_CPU (what a GPU run's
driver and workers get), read by test_cpu_backend_plugin.py, test_hf_rollout_registration.py and
test_registration_order.py. Each fresh `import verl` costs ~10 s of CPU, so the three files share one process
instead of spawning one each; every value they assert is reported by it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: verl's trainer module is the process's first import (test_registration_order's "verl's trainer first" case);
#: everything else is read after it, and our trainer module is imported last.
NO_FLAG_PROBE = r"""
import json, sys
before = {"verl": "verl" in sys.modules, "ours": "srpo_verl.verl_ext.trainer" in sys.modules}
import verl.trainer.ppo.v1.trainer_base
tb = sys.modules["verl.trainer.ppo.v1.trainer_base"]
report = {"loaded_before_first_import": before,
          "registered_by_the_hook": "srpo" in tb.TRAINER_REGISTRY}
import srpo_verl.cpu as cpu
from verl.utils.device import get_device_name, get_nccl_backend
from verl.workers.rollout.base import get_rollout_class
from verl.workers.rollout.replica import get_rollout_replica_class
from srpo_verl.import_hooks import applied_hooks
report.update({
    "plugin_loaded": "srpo_verl.plugin" in sys.modules,
    "active": cpu.is_active(),
    "device": get_device_name(),
    "backend": get_nccl_backend(),
    "replica": get_rollout_replica_class("hf").__name__,
    "adapter": get_rollout_class("hf", "async").__name__,
    "hooks": applied_hooks(),
    "cpu_modules": sorted(m for m in sys.modules if m.startswith("srpo_verl.cpu.")),
})
import verl.trainer.ppo.metric_utils as metric_utils
report["bootstrap_vectorised"] = getattr(metric_utils.bootstrap_metric, "_srpo_vectorised", False)
report["replay_poll_configurable"] = getattr(tb.PPOTrainer._build_replay_buffer, "_srpo_poll_interval", False)
from srpo_verl.verl_ext.trainer import SRPOTrainer
report["srpo_is_our_trainer"] = tb.TRAINER_REGISTRY["srpo"] is SRPOTrainer
print("REPORT" + json.dumps(report))
"""


def probe_report(proc: subprocess.CompletedProcess) -> dict:
    """The JSON of a probe's last `REPORT` line; fails with its output when it crashed or printed none."""
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("REPORT"):])


def env_without_cpu_flag() -> dict[str, str]:
    """This process's environment without SRPO_VERL_CPU and VERL_USE_EXTERNAL_PLUGINS (verl loads every plugin)."""
    return {k: v for k, v in os.environ.items() if k not in ("SRPO_VERL_CPU", "VERL_USE_EXTERNAL_PLUGINS")}


@pytest.fixture(scope="session")
def verl_probe_without_cpu_flag() -> dict:
    """The report of NO_FLAG_PROBE run in a fresh interpreter without the CPU flag."""
    proc = subprocess.run([sys.executable, "-c", NO_FLAG_PROBE], env=env_without_cpu_flag(), capture_output=True,
                          text=True, timeout=300)
    return probe_report(proc)


@pytest.fixture(scope="session")
def compose_config():
    """compose_config(config_name, *overrides) -> the shipped Hydra config (srpo_verl/config/) with `overrides`
    applied, as `python -m srpo_verl.main --config-name NAME OVERRIDES...` composes it.

    Each config is composed once through Hydra's public API (initialize_config_dir + compose); the overrides are
    then applied to a copy by the function Hydra's own composition applies them with, because a fresh public
    `compose` per case composes verl's whole config tree again, for each of the many cases of the files that use this
    helper; `test_compose_config_equals_a_fresh_hydra_composition` checks the two agree. Overrides may not change a
    config group (no test needs that)."""
    import copy
    from pathlib import Path

    import srpo_verl.main as entry  # registers the ${srpo_verl_path:...} resolver
    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser

    config_dir = Path(__file__).resolve().parents[2] / "srpo_verl" / "config"
    bases = {}
    parser = OverridesParser.create()

    def apply(config_name: str, *overrides: str):
        if config_name not in bases:
            with initialize_config_dir(config_dir=str(config_dir), version_base=None):
                bases[config_name] = compose(config_name, overrides=[entry.SEARCHPATH_OVERRIDE])
        config = copy.deepcopy(bases[config_name])
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(list(overrides)), config)
        return config

    return apply


@pytest.fixture(scope="session")
def write_tokenizer_model_dir():
    """write(path, vocab_size) -> path: a Hugging Face model directory holding what the start-up and row checks
    read, config.json (qwen3, ``vocab_size``) and the tiny task's BPE tokenizer trained to that vocabulary."""
    from srpo_verl.tiny import task
    from srpo_verl.tiny.build import tokenizer_corpus
    from srpo_verl.tiny.tokenizer import to_hf_tokenizer, train_bpe

    def write(path, vocab_size: int):
        train, _ = task.make_splits(seed=0, num_train=20, num_test=1)
        to_hf_tokenizer(train_bpe(tokenizer_corpus(train), vocab_size=vocab_size)).save_pretrained(path)
        (path / "config.json").write_text(json.dumps({"model_type": "qwen3", "vocab_size": vocab_size}))
        return path

    return write
