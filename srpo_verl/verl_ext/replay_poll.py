"""`trainer.v1.sampler.poll_interval_s`: how often verl's replay buffer looks for finished rollouts.

verl 0.9.1's sync `ReplayBuffer.sample` checks TransferQueue for finished groups, and while too few are done it
sleeps a fixed `poll_interval` (2.0 s, a constructor argument its trainer never sets), so every training step and
every validation waits up to 2 s after the last rollout finished: noise on a GPU step of minutes, most of a CPU toy
step (docs/PERFORMANCE.md has the measurement).

The key is ours, in verl's sampler section; unset (or null) keeps verl's 2.0 s. The CPU overlay (cpu.yaml) sets
0.05 s: a poll is one metadata round-trip to the TransferQueue controller. Applied to verl's trainer base, so the
GRPO baseline (`cpu_grpo`, verl's own trainer) and the SRPO trainer poll alike and their s/step stay comparable.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Optional

from srpo_verl.import_hooks import after_import, mark_wrapper
from srpo_verl.verl_ext.settings import config_value

POLL_INTERVAL_KEY = "trainer.v1.sampler.poll_interval_s"
TRAINER_BASE_MODULE = "verl.trainer.ppo.v1.trainer_base"
MARKER = "_srpo_poll_interval"


def poll_interval_from_config(config: Any) -> Optional[float]:
    """The configured poll interval in seconds, or None when unset; raises ValueError naming the key when it is
    not a positive number."""
    value = config_value(config, POLL_INTERVAL_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{POLL_INTERVAL_KEY}={value!r} must be a number of seconds > 0 (or null for verl's 2.0)")
    return float(value)


def _with_configured_poll_interval(build: Callable) -> Callable:
    if getattr(build, MARKER, False):
        return build

    def _build_replay_buffer(self):
        buffer = build(self)
        interval = poll_interval_from_config(self.config)
        if interval is not None:
            buffer.poll_interval = interval
        return buffer

    return mark_wrapper(_build_replay_buffer, build, MARKER)


def patch_trainer_base(module: ModuleType) -> None:
    """Make verl's `PPOTrainer._build_replay_buffer` apply the configured poll interval (idempotent)."""
    trainer = module.PPOTrainer
    trainer._build_replay_buffer = _with_configured_poll_interval(trainer._build_replay_buffer)


def install() -> None:
    """Patch verl's trainer base now if it is imported, else right after its import (idempotent)."""

    after_import(TRAINER_BASE_MODULE, patch_trainer_base)
