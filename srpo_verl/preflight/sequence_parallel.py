"""Ulysses sequence parallelism: what verl 0.9.1 can split (pure Python on mappings, no verl import).

verl inserts Ulysses' all-to-all only by replacing ``transformers.integrations.flash_attention._flash_attention_
forward``, which transformers calls for the flash implementations alone; ``eager`` and ``sdpa`` would attend within
each rank's slice of the sequence, and verl does not refuse them. The CPU backend's pure-PyTorch stand-in
(srpo_verl/cpu/attention.py) is reached through the same attribute. The teacher pass runs on the actor's mesh, so
the teacher engine takes the actor's SP size (teacher_layout.derive_teacher_ref).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from srpo_verl.verl_ext.settings import config_value
from srpo_verl.verl_ext.teacher_layout import engine_sp_size

#: attention implementations whose forward goes through transformers' flash module attribute (verl's SP hook)
SPLITTABLE_ATTENTION = ("flash_attention_2", "flash_attention_3", "flash_attention_4")
#: the CPU backend's splittable attention (srpo_verl.cpu.attention.CPU_VARLEN_ATTENTION; a unit test checks they agree)
CPU_VARLEN_ATTENTION = "srpo_cpu_varlen"
ATTENTION_KEY = "actor_rollout_ref.model.override_config.attn_implementation"
#: verl's attention when the key is unset (verl/workers/config/model.py)
VERL_DEFAULT_ATTENTION = "flash_attention_2"


def _cpu_backend() -> bool:
    return os.environ.get("SRPO_VERL_CPU", "").strip().lower() in {"1", "true", "yes", "on"}


def sequence_parallel_problems(config: Mapping[str, Any], teacher_engine: bool) -> list[str]:
    """One message per setting that cannot run (empty when none): Ulysses SP without packed sequences or with an
    attention verl cannot split, the CPU stand-in outside the CPU backend or without packed sequences, and (with a
    teacher engine) a ``ref`` SP size set unlike the actor's."""
    arr = config_value(config, "actor_rollout_ref", {})
    actor_sp = engine_sp_size(config_value(arr, "actor", {}))
    ref_sp = engine_sp_size(config_value(arr, "ref", {}))
    sp = max(actor_sp, ref_sp)
    attention = str(config_value(config, ATTENTION_KEY, VERL_DEFAULT_ATTENTION) or VERL_DEFAULT_ATTENTION)
    packed = bool(config_value(config, "actor_rollout_ref.model.use_remove_padding", False))
    cpu = _cpu_backend()
    problems = []
    if attention == CPU_VARLEN_ATTENTION and not packed:
        problems.append(f"{ATTENTION_KEY}={attention!r} runs packed sequences only: set "
                        "actor_rollout_ref.model.use_remove_padding=true")
    if attention == CPU_VARLEN_ATTENTION and not cpu:
        problems.append(f"{ATTENTION_KEY}={attention!r} is the CPU backend's attention (SRPO_VERL_CPU=1); on GPUs "
                        f"use one of {', '.join(SPLITTABLE_ATTENTION)}")
    if sp > 1:
        if not packed:
            problems.append(f"actor_rollout_ref.model.use_remove_padding=false with Ulysses SP={sp}: verl splits "
                            "only packed sequences; set it to true")
        valid = SPLITTABLE_ATTENTION + ((CPU_VARLEN_ATTENTION,) if cpu else ())
        if attention not in valid:
            problems.append(f"{ATTENTION_KEY}={attention!r} with Ulysses SP={sp}: verl inserts its all-to-all only "
                            "into flash attention, so this attention would silently attend within each rank's slice; "
                            f"use one of {', '.join(valid)}")
    if teacher_engine and ref_sp > 1 and ref_sp != actor_sp:
        ref = config_value(arr, "ref", {})
        top = int(config_value(ref, "ulysses_sequence_parallel_size", 1) or 1) > 1
        key = "actor_rollout_ref.ref." + ("" if top else "fsdp_config.") + "ulysses_sequence_parallel_size"
        problems.append(f"{key}={ref_sp} differs from the actor's Ulysses SP size {actor_sp}: the teacher pass runs "
                        "on the actor's mesh, so the teacher takes the actor's SP size; leave it unset or equal")
    return problems
