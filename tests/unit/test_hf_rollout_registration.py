"""The `hf` rollout registers on any platform (not only with the CPU backend) and picks its server's device.

The registration is read from `verl_probe_without_cpu_flag` (tests/unit/conftest.py): a fresh process that imports
verl without SRPO_VERL_CPU, shared with two other files.
"""

import pytest
import torch

from srpo_verl.rollout.hf.server import server_device


def test_hf_rollout_resolves_without_the_cpu_backend(verl_probe_without_cpu_flag):
    report = verl_probe_without_cpu_flag
    assert report["active"] is False
    assert (report["replica"], report["adapter"]) == ("HFReplica", "HFServerAdapter")
    assert "verl.workers.rollout.replica:_add_replica" in report["hooks"]
    assert "verl.workers.rollout.base:_add_adapter" in report["hooks"]


def test_registration_does_not_load_the_cpu_backend(verl_probe_without_cpu_flag):
    # the plugin imports srpo_verl.cpu (the flag check) and nothing of the backend itself
    assert verl_probe_without_cpu_flag["cpu_modules"] == []


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
