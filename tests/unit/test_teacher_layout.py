"""srpo_verl.verl_ext.teacher_layout: the EMA teacher's FSDP layout is the actor's, on verl 0.9.1's own config."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import verl
from omegaconf import OmegaConf, open_dict

from srpo_verl.verl_ext.teacher_layout import (
    ENGINE_DEFAULTS,
    FIXED,
    check_teacher_layout,
    derive_teacher_ref,
    teacher_fsdp_overrides,
    teacher_layout_conflicts,
)

VERL_CONFIG = Path(verl.__file__).parent / "trainer" / "config"


@functools.cache
def _verl_config():
    return OmegaConf.load(VERL_CONFIG / "_generated_ppo_trainer.yaml")


def arr(*overrides: str):
    """verl 0.9.1's generated `actor_rollout_ref` with Hydra-style overrides, resolved as the workers receive it."""
    config = OmegaConf.merge(_verl_config(),
                             OmegaConf.from_dotlist([f"actor_rollout_ref.{o}" for o in overrides]))
    OmegaConf.resolve(config)
    return config.actor_rollout_ref


def test_engine_defaults_are_verls():
    fsdp = OmegaConf.load(VERL_CONFIG / "engine" / "fsdp.yaml")
    for key, value in ENGINE_DEFAULTS.items():
        assert OmegaConf.to_container(fsdp, resolve=False)[key] == value, key
    assert fsdp.model_dtype == FIXED["model_dtype"] and fsdp.reshard_after_forward is FIXED["reshard_after_forward"]


def test_teacher_takes_the_actors_mesh_wrap_policy_and_strategy():
    config = arr(
        "actor.strategy=fsdp2",  # ref.strategy interpolates it
        "actor.fsdp_config.fsdp_size=8",  # (2, 8) HSDP on 16 GPUs: the teacher must not be 16-way
        "actor.fsdp_config.wrap_policy.min_num_params=1000",
        "actor.fsdp_config.reshard_after_forward=false",  # the actor's choice; a forward-only teacher reshards
        "ref.fsdp_config.param_offload=true",  # the teacher's own (verl offloads forward-only engines anyway)
    )
    assert teacher_layout_conflicts(config) == []
    ref = derive_teacher_ref(config)
    assert ref.strategy == "fsdp2"
    assert ref.fsdp_config.fsdp_size == 8 and ref.fsdp_config.wrap_policy == {"min_num_params": 1000}
    assert ref.fsdp_config.reshard_after_forward is True and ref.fsdp_config.model_dtype == "fp32"
    assert ref.fsdp_config.param_offload is True
    assert config.ref.fsdp_config.fsdp_size == -1  # a copy: verl's own ref config is left alone
    assert teacher_fsdp_overrides(config.actor.fsdp_config) == {
        "fsdp_size": 8, "wrap_policy": {"min_num_params": 1000}, "use_orig_params": False,
        "model_dtype": "fp32", "reshard_after_forward": True,
    }


def test_derived_ref_builds_verls_engine_config_with_the_actors_layout():
    from verl.utils.config import omega_conf_to_dataclass

    ref = derive_teacher_ref(arr("actor.fsdp_config.fsdp_size=4"))
    with open_dict(ref):  # what worker._build_teacher does before converting
        for key in ("log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu", "log_prob_use_dynamic_bsz",
                    "log_prob_max_token_len_per_gpu"):
            ref.pop(key)
        ref.ppo_mini_batch_size = 2
        ref.ppo_micro_batch_size_per_gpu = 1
    engine = omega_conf_to_dataclass(ref).engine
    assert (engine.fsdp_size, engine.reshard_after_forward, engine.model_dtype) == (4, True, "fp32")
    assert engine.forward_only is True


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("fsdp_size", 16, r"ref\.fsdp_config\.fsdp_size=16 differs from actor_rollout_ref\.actor\.fsdp_config"
                          r"\.fsdp_size=8"),
        ("wrap_policy", {"min_num_params": 5}, r"ref\.fsdp_config\.wrap_policy=\{'min_num_params': 5\} differs"),
        ("use_orig_params", True, r"ref\.fsdp_config\.use_orig_params=True differs"),
        ("model_dtype", "bf16", r"ref\.fsdp_config\.model_dtype='bf16' is not supported .* must be 'fp32' \(or unset\)"),
        ("reshard_after_forward", False, r"ref\.fsdp_config\.reshard_after_forward=False is not supported .* throwaway"),
    ],
)
def test_a_ref_value_the_teacher_cannot_honour_is_refused_by_name(key, value, message):
    config = arr("actor.fsdp_config.fsdp_size=8")
    config.ref.fsdp_config[key] = value
    with pytest.raises(ValueError, match=message):
        check_teacher_layout(config)
    with pytest.raises(ValueError, match=message):
        derive_teacher_ref(config)


def test_ref_equal_to_the_actor_or_unset_dtype_is_accepted():
    config = arr("actor.fsdp_config.fsdp_size=8", "ref.fsdp_config.fsdp_size=8", "ref.fsdp_config.model_dtype=null")
    assert teacher_layout_conflicts(config) == []
    for name in ("float32", "torch.float32", "FP32"):  # verl's other spellings of fp32
        assert teacher_layout_conflicts(arr(f"ref.fsdp_config.model_dtype={name}")) == []
    assert derive_teacher_ref(config).fsdp_config.model_dtype == "fp32"  # verl would pick bf16 for a forward-only engine


def test_ref_strategy_other_than_the_actors_is_refused():
    (problem,) = teacher_layout_conflicts(arr("actor.strategy=fsdp2", "ref.strategy=fsdp"))
    assert "actor_rollout_ref.ref.strategy='fsdp' differs from actor_rollout_ref.actor.strategy='fsdp2'" in problem


@pytest.mark.parametrize("actor_key", ["actor.ulysses_sequence_parallel_size", "actor.fsdp_config.ulysses_sequence_parallel_size"])
def test_the_teacher_engine_takes_the_actors_ulysses_sp_size(actor_key):
    """The teacher pass is dispatched on the actor's mesh: verl's engine config of the teacher gets the actor's SP
    size whichever of verl's two keys set it (the deprecated top-level one wins in verl when > 1)."""
    from verl.utils.config import omega_conf_to_dataclass

    ref = derive_teacher_ref(arr(f"{actor_key}=2"))
    with open_dict(ref):
        for key in ("log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu", "log_prob_use_dynamic_bsz",
                    "log_prob_max_token_len_per_gpu"):
            ref.pop(key)
        ref.ppo_mini_batch_size = 2
        ref.ppo_micro_batch_size_per_gpu = 1
    assert omega_conf_to_dataclass(ref).engine.ulysses_sequence_parallel_size == 2
