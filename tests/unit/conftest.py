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
