"""The EMA teacher's FSDP layout, derived from the actor's (pure Python on mappings: no verl import).

verl's forward-only engine is configured from ``actor_rollout_ref.ref``, but the EMA writes the actor's shards into
the teacher's shards one to one, so everything that decides a shard's shape or identity comes from the actor:

  * from the actor: ``strategy`` (fsdp / fsdp2: flat parameters or DTensors), ``fsdp_config.fsdp_size`` (the mesh:
    a (2, 8) HSDP actor needs a (2, 8) teacher), ``fsdp_config.wrap_policy`` (FSDP1's flat-parameter grouping),
    ``fsdp_config.use_orig_params`` (FSDP1's parameter names);
  * fixed: ``fsdp_config.model_dtype = fp32`` (the EMA accumulates rate-0.05 steps; verl would pick bf16 for a
    forward-only engine when unset) and ``fsdp_config.reshard_after_forward = true`` (a forward-only engine that
    keeps its unsharded parameters would have the EMA update a throwaway gathered copy);
  * the teacher's own (its forward only, never its shards): ``mixed_precision`` (the forward's compute dtype),
    ``forward_prefetch``, ``use_torch_compile``, the entropy and padding knobs, and the log-prob batching. Its
    parameters always live in pinned host memory: verl forces CPU offload on forward-only FSDP engines
    (``CPUOffloadPolicy(pin_memory=True)`` / ``CPUOffload(offload_params=True)``) whatever ``param_offload`` says.

A ``ref`` value that is still verl's default follows the actor silently; one set to anything else that the
teacher cannot honour is refused (``teacher_layout_conflicts``: the driver's start-up check and the worker both
call it), so the derivation never overrides a choice the user made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from copy import deepcopy
from typing import Any

from omegaconf import DictConfig, open_dict

from srpo_verl.verl_ext.settings import config_value

#: fsdp_config keys the teacher takes from the actor.
FROM_ACTOR = ("fsdp_size", "wrap_policy", "use_orig_params")
#: fsdp_config keys fixed for the teacher, with the values accepted for them under ``ref``.
FIXED = {"model_dtype": "fp32", "reshard_after_forward": True}
ACCEPTED = {"model_dtype": (None, "fp32", "float32", "32"), "reshard_after_forward": (None, True)}  # verl's fp32 names
#: verl 0.9.1's defaults for these keys (verl/trainer/config/engine/fsdp.yaml; tests/unit checks them).
ENGINE_DEFAULTS = {"fsdp_size": -1, "wrap_policy": {"min_num_params": 0}, "use_orig_params": False}


def _plain(value: Any) -> Any:
    """OmegaConf nodes / mappings / sequences → plain dicts and lists (for comparisons and assignment)."""
    if isinstance(value, Mapping):  # DictConfig is a Mapping, ListConfig a Sequence
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def teacher_fsdp_overrides(actor_fsdp: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fsdp_config values the teacher engine is built with on top of ``ref.fsdp_config`` (plain values)."""
    derived = {key: _plain(config_value(actor_fsdp, key, ENGINE_DEFAULTS[key])) for key in FROM_ACTOR}
    return {**derived, **FIXED}


def teacher_layout_conflicts(actor_rollout_ref: Mapping[str, Any]) -> list[str]:
    """One message per ``ref`` setting that the teacher cannot honour (empty when the layout can be derived).

    actor_rollout_ref: the ``actor_rollout_ref`` node (OmegaConf or dict) with ``actor`` and ``ref``.
    """
    actor = config_value(actor_rollout_ref, "actor", {})
    ref = config_value(actor_rollout_ref, "ref", {})
    actor_fsdp, ref_fsdp = config_value(actor, "fsdp_config", {}), config_value(ref, "fsdp_config", {})
    why = "the EMA teacher is sharded like the actor (srpo_verl/verl_ext/teacher_layout.py)"
    problems = []
    actor_strategy, ref_strategy = config_value(actor, "strategy"), config_value(ref, "strategy")
    if ref_strategy is not None and actor_strategy is not None and ref_strategy != actor_strategy:
        problems.append(f"actor_rollout_ref.ref.strategy={ref_strategy!r} differs from actor_rollout_ref.actor."
                        f"strategy={actor_strategy!r}: {why}; leave it unset or equal")
    for key in FROM_ACTOR:
        ref_value = _plain(config_value(ref_fsdp, key, ENGINE_DEFAULTS[key]))
        actor_value = _plain(config_value(actor_fsdp, key, ENGINE_DEFAULTS[key]))
        if ref_value != actor_value and ref_value != ENGINE_DEFAULTS[key]:
            problems.append(f"actor_rollout_ref.ref.fsdp_config.{key}={ref_value!r} differs from actor_rollout_ref."
                            f"actor.fsdp_config.{key}={actor_value!r}: {why}; leave it at verl's default or equal")
    for key, fixed in FIXED.items():
        value = ref_fsdp.get(key, None) if ref_fsdp is not None else None
        if isinstance(value, str):
            value = value.lower().removeprefix("torch.")
        if value not in ACCEPTED[key]:
            problems.append(f"actor_rollout_ref.ref.fsdp_config.{key}={value!r} is not supported for the EMA teacher: "
                            f"it must be {fixed!r} (or unset)" + (
                                ": the EMA accumulates in fp32" if key == "model_dtype" else
                                ": a forward-only engine that keeps its gathered parameters would have the EMA "
                                "update a throwaway copy"))
    return problems


def check_teacher_layout(actor_rollout_ref: Mapping[str, Any]) -> None:
    """Raise one ValueError naming the first conflicting key (see ``teacher_layout_conflicts``)."""
    problems = teacher_layout_conflicts(actor_rollout_ref)
    if problems:
        raise ValueError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def engine_sp_size(node: Mapping[str, Any] | None) -> int:
    """verl's Ulysses SP size of an ``actor`` / ``ref`` node: the deprecated top-level
    ``ulysses_sequence_parallel_size`` when > 1 (verl's FSDPActorConfig copies it into ``fsdp_config``), else
    ``fsdp_config.ulysses_sequence_parallel_size`` (1 when unset)."""
    top = int(config_value(node, "ulysses_sequence_parallel_size", 1) or 1)
    if top > 1:
        return top
    return int(config_value(config_value(node, "fsdp_config", {}), "ulysses_sequence_parallel_size", 1) or 1)


def derive_teacher_ref(actor_rollout_ref: DictConfig) -> DictConfig:
    """A deep copy of ``actor_rollout_ref.ref`` with the actor's strategy, layout and Ulysses SP size (the teacher
    pass is dispatched on the actor's mesh: both ranks of an SP group get the same rows) and the fixed keys set,
    after ``check_teacher_layout`` (the worker builds the teacher engine from it)."""
    check_teacher_layout(actor_rollout_ref)
    ref = deepcopy(actor_rollout_ref.ref)
    sp_size = engine_sp_size(actor_rollout_ref.actor)
    with open_dict(ref):
        ref.strategy = actor_rollout_ref.actor.strategy
        ref.ulysses_sequence_parallel_size = sp_size
        ref.fsdp_config.ulysses_sequence_parallel_size = sp_size
        for key, value in teacher_fsdp_overrides(actor_rollout_ref.actor.fsdp_config).items():
            ref.fsdp_config[key] = value
    return ref
