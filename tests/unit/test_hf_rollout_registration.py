"""The `hf` rollout registers on any platform (not only with the CPU backend) and picks its server's device."""

import json
import os
import subprocess
import sys

import pytest
import torch

from srpo_verl.rollout.hf.server import server_device

PROBE = r"""
import json, sys
import verl
from verl.workers.rollout.base import get_rollout_class
from verl.workers.rollout.replica import get_rollout_replica_class
import srpo_verl.cpu as cpu
from srpo_verl.import_hooks import applied_hooks
print("REPORT" + json.dumps({
    "cpu_active": cpu.is_active(),
    "cpu_modules": sorted(m for m in sys.modules if m.startswith("srpo_verl.cpu.")),
    "replica": get_rollout_replica_class("hf").__name__,
    "adapter": get_rollout_class("hf", "async").__name__,
    "hooks": applied_hooks(),
}))
"""


@pytest.fixture(scope="module")
def report_without_cpu_flag():
    env = {k: v for k, v in os.environ.items() if k not in ("SRPO_VERL_CPU", "VERL_USE_EXTERNAL_PLUGINS")}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("REPORT"):])


def test_hf_rollout_resolves_without_the_cpu_backend(report_without_cpu_flag):
    report = report_without_cpu_flag
    assert report["cpu_active"] is False
    assert (report["replica"], report["adapter"]) == ("HFReplica", "HFServerAdapter")
    assert "verl.workers.rollout.replica:_add_replica" in report["hooks"]
    assert "verl.workers.rollout.base:_add_adapter" in report["hooks"]


def test_registration_does_not_load_the_cpu_backend(report_without_cpu_flag):
    # the plugin imports srpo_verl.cpu (the flag check) and nothing of the backend itself
    assert report_without_cpu_flag["cpu_modules"] == []


@pytest.mark.parametrize(
    "device_name, accelerator_id, visible, available, expected",
    [
        ("cpu", "0", None, True, torch.device("cpu")),            # CPU backend: logical GPU ids are ignored
        ("cuda", None, None, True, torch.device("cpu")),          # no colocated worker, no device id
        ("cuda", "3", None, False, torch.device("cpu")),          # CUDA platform on a host without a GPU
        ("cuda", "3", None, True, torch.device("cuda", 3)),       # all devices visible: Ray's id is the index
        ("cuda", "3", "2,3", True, torch.device("cuda", 1)),      # the raylet's CUDA_VISIBLE_DEVICES list
    ],
)
def test_server_device(device_name, accelerator_id, visible, available, expected):
    assert server_device(device_name, accelerator_id, visible, available) == expected


def test_server_device_refuses_a_device_it_cannot_see():
    with pytest.raises(ValueError, match="device 5 of the replica's worker is not among the visible devices '2,3'"):
        server_device("cuda", "5", "2,3", True)
