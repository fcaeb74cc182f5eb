"""Opt-in CPU backend for verl 0.9.1: CPU platform, gloo, FSDP2 on CPU, unpinned offload.

Nothing here runs unless `SRPO_VERL_CPU=1` is set in the environment (the quickstart and the e2e tests set it; Ray's
local workers inherit it). `srpo_verl.plugin` calls `activate_if_enabled()` on every `import verl`, in the driver and
in every Ray worker. The Hydra overrides the backend needs live in `srpo_verl/config/cpu.yaml`; they select the `hf`
rollout (`srpo_verl.rollout.hf`, registered by the plugin whether or not this backend is on).
"""

from __future__ import annotations

import os

ENV_FLAG = "SRPO_VERL_CPU"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_active = False


def is_enabled(environ: dict | None = None) -> bool:
    """True when `SRPO_VERL_CPU` asks for the CPU backend; raises on a value that is neither yes nor no."""
    value = (environ if environ is not None else os.environ).get(ENV_FLAG, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{ENV_FLAG}={value!r}: expected one of {sorted(_TRUE | _FALSE - {''})}")


def is_active() -> bool:
    """True once `activate()` ran in this process."""
    return _active


def activate() -> None:
    """Install the CPU backend in this process (idempotent): platform and patches."""
    global _active
    if _active:
        return
    from verl.plugin.platform import set_platform

    from srpo_verl.cpu.patches import install_cpu_patches
    from srpo_verl.cpu.platform import PlatformCPU, register_cpu_platform

    register_cpu_platform()
    set_platform(PlatformCPU())
    install_cpu_patches()
    _active = True


def activate_if_enabled() -> bool:
    """`activate()` when `SRPO_VERL_CPU` is set; returns whether the backend is active."""
    if is_enabled():
        activate()
    return _active
