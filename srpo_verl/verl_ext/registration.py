"""Registration of srpo_verl's names in verl, run by the `verl.plugins` entry point in every process.

verl resolves ``trainer.v1.trainer_mode`` through its trainer registry inside the Ray TaskRunner, so the name must
exist in every process that imports verl's trainer. Importing the trainer module while ``import verl`` is still
running would import half of verl too early (and before the CPU backend patches), so the registration is deferred
to the moment verl's trainer module is first imported.
"""

from __future__ import annotations

import os
import sys

from srpo_verl.import_hooks import after_import

TRAINER_NAME = "srpo"
TRAINER_MODULE = "verl.trainer.ppo.v1.trainer_base"

_hook_installed = False


TRAINER_IMPL_MODULE = "srpo_verl.verl_ext.trainer"


def register_trainer_class(trainer_base, trainer_class) -> None:
    """Put ``trainer_class`` in verl's trainer registry under ``TRAINER_NAME`` (idempotent)."""
    if trainer_base.TRAINER_REGISTRY.get(TRAINER_NAME) is not trainer_class:
        trainer_base.register_trainer(TRAINER_NAME)(trainer_class)


def _register_trainer(trainer_base) -> None:
    impl = sys.modules.get(TRAINER_IMPL_MODULE)
    if impl is not None and not hasattr(impl, "SRPOTrainer"):
        # our trainer module is the one importing verl's trainer (it was imported first): it registers itself at
        # the end of its body, once SRPOTrainer exists
        return
    from srpo_verl.verl_ext.trainer import SRPOTrainer

    register_trainer_class(trainer_base, SRPOTrainer)


def install() -> None:
    """Register the SRPO trainer now if verl's trainer module is loaded, else right after it is (idempotent)."""
    global _hook_installed
    if _hook_installed:
        return
    after_import(TRAINER_MODULE, _register_trainer)
    _hook_installed = True


def assert_registered(where: str) -> None:
    """Fail loudly when this process did not load the srpo_verl plugin (e.g. `VERL_USE_EXTERNAL_PLUGINS=none`, or
    a package missing on a worker node); with the trainer module loaded, also check the trainer name."""
    if not _hook_installed:
        raise RuntimeError(
            f"srpo_verl is not registered in this {where} (pid-local check): verl did not load the 'srpo_verl' "
            "entry point of the verl.plugins group. Install srpo_verl on every node and keep "
            "VERL_USE_EXTERNAL_PLUGINS unset or including srpo_verl."
        )
    trainer_base = sys.modules.get(TRAINER_MODULE)
    if trainer_base is not None and TRAINER_NAME not in trainer_base.TRAINER_REGISTRY:
        raise RuntimeError(f"trainer '{TRAINER_NAME}' is missing from verl's registry in this {where}")
    # One line per checked process: on a cluster it shows the plugin loaded on every node (the multi-node test
    # reads it from the job's log).
    print(f"[srpo_verl] registered in this {where} (pid {os.getpid()}, {_ray_node()})", flush=True)


def _ray_node() -> str:
    """'ray node <id> at <ip>' when this process is connected to Ray, else 'no ray'."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return "no ray"
    return f"ray node {ray.get_runtime_context().get_node_id()} at {ray.util.get_node_ip_address()}"
