"""The three verl 0.9.1 changes the CPU backend needs, applied when (and only when) the patched module is imported.

Each patch is a function of the freshly imported module, installed with `srpo_verl.import_hooks.after_import`: it
runs at once if the module is already in `sys.modules`, else right after the module body executes. That keeps the
plugin cheap (verl imports the FSDP engine only in the worker processes that need it) and independent of the order
in which verl imports its modules (engine_workers binds `initialize_global_process_group_ray` by name at import
time, so patching only `verl.utils.distributed` after engine_workers was imported would silently do nothing).

verl touch-points (private APIs, re-check on every verl upgrade; docs/CPU_BACKEND.md):
  - `verl.utils.distributed.initialize_global_process_group_ray` default backend "cpu:gloo,<device>:<nccl>";
  - `EngineRegistry` entries of the FSDP engines, registered for cuda/npu only;
  - `CPUOffloadPolicy(pin_memory=True)` of the forward-only (ref) FSDP2 engine; pinning needs an accelerator;
  - the flash-attention module attributes verl's Ulysses SP goes through (srpo_verl/cpu/attention.py).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

from srpo_verl.import_hooks import after_import, applied_hooks, mark_wrapper


def applied_patches() -> list[str]:
    """'module:hook' for every import hook run so far in this process (the CPU patches among them)."""
    return applied_hooks()


# --------------------------------------------------------------------------------------------------------------
# The patches
# --------------------------------------------------------------------------------------------------------------

CPU_PROCESS_GROUP_BACKEND = "gloo"
#: attribute that tags srpo_verl's CPU wrappers (a second patch sees it and leaves the wrapper alone)
MARKER = "_srpo_verl_cpu"


def _wrap_process_group_init(original: Callable) -> Callable:
    """`initialize_global_process_group_ray` with a plain "gloo" default backend.

    verl builds "cpu:gloo,{device}:{backend}", which on the CPU platform is "cpu:gloo,cpu:gloo" and torch rejects it
    ("Duplicate device type cpu"). An explicit `backend=` argument is passed through untouched.
    """
    if getattr(original, MARKER, False):
        return original

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or CPU_PROCESS_GROUP_BACKEND)

    return mark_wrapper(initialize_global_process_group_ray, original, MARKER)


def patch_process_group_backend(module: ModuleType) -> None:
    """Replace `initialize_global_process_group_ray` in `module` (verl.utils.distributed or a module that bound it)."""
    if not hasattr(module, "initialize_global_process_group_ray"):
        raise RuntimeError(
            f"srpo_verl CPU backend: {module.__name__} has no initialize_global_process_group_ray; "
            "verl changed (this backend targets verl 0.9.1)"
        )
    module.initialize_global_process_group_ray = _wrap_process_group_init(module.initialize_global_process_group_ray)


def register_fsdp_engines_for_cpu(module: ModuleType) -> None:
    """Register verl's FSDP engines (`fsdp`, `fsdp2`) for device "cpu" through the public `EngineRegistry.register`."""
    from verl.workers.engine.base import EngineRegistry

    for model_type, engine_cls in (
        ("language_model", module.FSDPEngineWithLMHead),
        ("value_model", module.FSDPEngineWithValueHead),
    ):
        if EngineRegistry._engines.get(model_type, {}).get("fsdp2", {}).get("cpu") is engine_cls:
            continue
        EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device="cpu")(engine_cls)


def _unpinned_offload_policy(policy_cls: type) -> Callable:
    """A `CPUOffloadPolicy` factory that ignores `pin_memory=True` (pinning needs an accelerator)."""
    if getattr(policy_cls, MARKER, False):
        return policy_cls

    def CPUOffloadPolicy(*args, pin_memory: bool = True, **kwargs):  # noqa: N802 (stands in for the class)
        return policy_cls(*args, pin_memory=False, **kwargs)

    return mark_wrapper(CPUOffloadPolicy, policy_cls, MARKER)


def patch_offload_policy_pinning(module: ModuleType) -> None:
    """Make the FSDP2 engine module build its `CPUOffloadPolicy` with `pin_memory=False`."""
    if getattr(module, "CPUOffloadPolicy", None) is None:
        raise RuntimeError(
            f"srpo_verl CPU backend: {module.__name__}.CPUOffloadPolicy is missing; verl or torch changed"
        )
    module.CPUOffloadPolicy = _unpinned_offload_policy(module.CPUOffloadPolicy)


FSDP_ENGINE_MODULE = "verl.workers.engine.fsdp.transformer_impl"


def install_cpu_patches() -> None:
    """Arm all CPU patches (idempotent: each wrapper recognises itself)."""
    after_import("verl.utils.distributed", patch_process_group_backend)
    after_import("verl.workers.engine_workers", patch_process_group_backend)
    after_import(FSDP_ENGINE_MODULE, register_fsdp_engines_for_cpu)
    after_import(FSDP_ENGINE_MODULE, patch_offload_policy_pinning)
    from srpo_verl.cpu.attention import count_all_to_all, register_cpu_flash_attention, replace_flash_kernel

    after_import("transformers.integrations.flash_attention", replace_flash_kernel)
    after_import("verl.models.transformers.monkey_patch", replace_flash_kernel)
    after_import("transformers.modeling_utils", register_cpu_flash_attention)
    after_import("verl.utils.ulysses", count_all_to_all)
