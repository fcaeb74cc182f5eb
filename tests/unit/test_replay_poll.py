"""`trainer.v1.sampler.poll_interval_s` (srpo_verl/verl_ext/replay_poll.py): read, checked, applied."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from srpo_verl.verl_ext import replay_poll


def config(value=None, with_key=True):
    sampler = {"max_off_policy_threshold": 8}
    if with_key:
        sampler["poll_interval_s"] = value
    return OmegaConf.create({"trainer": {"v1": {"sampler": sampler}}})


@pytest.mark.parametrize("cfg, expected", [
    (config(with_key=False), None), (config(None), None), (config(0.05), 0.05), (config(3), 3.0),
    (OmegaConf.create({}), None),
])
def test_read(cfg, expected):
    assert replay_poll.poll_interval_from_config(cfg) == expected


@pytest.mark.parametrize("value", [0, -0.5, "fast", True])
def test_refused_naming_the_key(value):
    with pytest.raises(ValueError, match=r"^trainer\.v1\.sampler\.poll_interval_s=.* must be a number of seconds > 0"):
        replay_poll.poll_interval_from_config(config(value))


class FakeBuffer:
    poll_interval = 2.0  # verl's default


class FakeTrainer:
    def __init__(self, cfg):
        self.config = cfg

    def _build_replay_buffer(self):
        return FakeBuffer()


def test_the_patched_builder_sets_the_interval_or_keeps_verls():
    module = type("M", (), {"PPOTrainer": FakeTrainer})
    replay_poll.patch_trainer_base(module)
    replay_poll.patch_trainer_base(module)  # idempotent: wrapped once
    assert FakeTrainer._build_replay_buffer.__wrapped__.__name__ == "_build_replay_buffer"
    assert not hasattr(FakeTrainer._build_replay_buffer.__wrapped__, "__wrapped__")
    assert FakeTrainer(config(0.05))._build_replay_buffer().poll_interval == 0.05
    assert FakeTrainer(config(with_key=False))._build_replay_buffer().poll_interval == 2.0


def test_verls_trainer_and_metric_utils_are_patched_in_a_gpu_process(verl_probe_without_cpu_flag):
    """Without SRPO_VERL_CPU (a GPU run's processes): the plugin still patches both."""
    assert verl_probe_without_cpu_flag["replay_poll_configurable"] is True
    assert verl_probe_without_cpu_flag["bootstrap_vectorised"] is True


def test_the_cpu_overlay_sets_a_short_poll():
    from pathlib import Path

    import srpo_verl.config as config_pkg
    overlay = OmegaConf.load(Path(config_pkg.__file__).parent / "cpu.yaml")
    assert replay_poll.poll_interval_from_config(overlay) == 0.05
