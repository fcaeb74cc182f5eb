"""The `srpo:` group: typed settings, start-up validation that names the key, and the composed default config."""

import subprocess
import sys
import warnings

import pytest
import yaml

from srpo_verl.preflight.config import validate_run_config
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings


def run_config(**overrides):
    config = {
        "srpo": {"method": "srpo"},
        "algorithm": {"adv_estimator": "grpo", "use_kl_in_reward": False},
        "data": {"train_batch_size": 32},
        "actor_rollout_ref": {"actor": {"strategy": "fsdp2", "ppo_mini_batch_size": 32, "ppo_epochs": 1, "use_kl_loss": False,
                                        "entropy_coeff": 0},
                              "model": {}, "rollout": {"name": "vllm", "n": 8, "temperature": 1.0}},
        "trainer": {"v1": {"trainer_mode": "srpo"}},
    }
    for dotted, value in overrides.items():
        node = config
        *path, last = dotted.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def test_defaults_are_the_papers():
    s = SRPOSettings()
    assert (s.method, s.success_threshold, s.dw_beta, s.topk, s.alpha, s.ema_rate, s.is_clip, s.adv_mix_lambda,
            s.max_reprompt_len, s.reprompt_truncation) == ("srpo", 0.5, 1.0, 100, 0.5, 0.05, 2.0, 0.9, 10240, "demo")
    assert s.uses_teacher and s.uses_entropy_weights and s.route_mode == "srpo"
    assert not SRPOSettings(method="srpo_no_dw").uses_entropy_weights
    assert SRPOSettings(method="adv_mix").route_mode == "sdpo"
    assert not SRPOSettings(method="grpo").uses_teacher


@pytest.mark.parametrize(
    "group, message",
    [
        ({"method": "ppo"}, "srpo.method='ppo' is not one of grpo, sdpo, srpo"),
        ({"topk": 0}, "srpo.topk=0 must be an integer ≥ 1"),
        ({"ema_rate": 0.0}, "srpo.ema_rate=0.0 must be in \\(0, 1\\]"),
        ({"reprompt_truncation": "left"}, "srpo.reprompt_truncation='left' is not one of demo, right, error"),
        ({"dw_betta": 1.0}, "unknown key\\(s\\) under srpo: dw_betta"),
        ({"solution_template": "{x}"}, "srpo.solution_template must contain {successful_previous_attempt}"),
    ],
)
def test_bad_values_name_the_key(group, message):
    with pytest.raises(ValueError, match=message):
        SRPOSettings.from_config(group)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"actor_rollout_ref__actor__use_kl_loss": True}, "actor_rollout_ref.actor.use_kl_loss"),
        ({"algorithm__use_kl_in_reward": True}, "algorithm.use_kl_in_reward"),
        ({"actor_rollout_ref__model__lora": {"rank": 8}}, "actor_rollout_ref.model.lora.rank"),
        ({"actor_rollout_ref__model__lora_rank": -1}, "actor_rollout_ref.model.lora_rank"),
        ({"actor_rollout_ref__model__use_fused_kernels": True}, "actor_rollout_ref.model.use_fused_kernels"),
        ({"actor_rollout_ref__rollout__multi_turn": {"enable": True}}, "actor_rollout_ref.rollout.multi_turn.enable"),
        ({"algorithm__adv_estimator": "rloo"}, "algorithm.adv_estimator"),
        ({"actor_rollout_ref__actor__entropy_coeff": 0.01}, "actor_rollout_ref.actor.entropy_coeff"),
    ],
)
def test_unsupported_combinations_are_refused_for_teacher_methods(override, key):
    with pytest.raises(ValueError, match=key.replace(".", "\\.")):
        validate_run_config(run_config(**override))
    # GRPO through the SRPO trainer is verl's own GRPO: nothing to refuse
    validate_run_config(run_config(srpo={"method": "grpo"}, **override))


@pytest.mark.parametrize("method", ["grpo", "srpo"])
@pytest.mark.parametrize("mode", ["sync", "colocate_async", "separate_async"])
def test_an_srpo_group_must_run_the_srpo_trainer(method, mode):
    with pytest.raises(RunConfigError, match=f"trainer.v1.trainer_mode='{mode}' runs verl's own trainer"):
        validate_run_config(run_config(srpo={"method": method}, trainer__v1__trainer_mode=mode))
    # verl's own trainer without an srpo: group is verl's run: nothing to refuse
    config = run_config(trainer__v1__trainer_mode=mode)
    del config["srpo"]
    validate_run_config(config)


@pytest.mark.parametrize("group, message", [
    ({"add_tail": "maybe"}, "srpo.add_tail='maybe' must be true or false"),
    ({"add_tail": 0}, "srpo.add_tail=0 must be true or false"),
    ({"topk": 2.5}, "srpo.topk=2.5 must be an integer"),
    ({"topk": True}, "srpo.topk=True must be an integer"),
    ({"alpha": "abc"}, "srpo.alpha='abc' must be a finite number"),
    ({"alpha": float("nan")}, "srpo.alpha=nan must be a finite number"),
    ({"is_clip": "abc"}, "srpo.is_clip='abc' must be a finite number or null"),
    ({"dw_beta": None}, "srpo.dw_beta=None must be set"),
    ({"route_dump_dir": 3}, "srpo.route_dump_dir=3 must be a string or null"),
    ({"reward_range": [0, 1, 2]}, "srpo.reward_range=\\[0, 1, 2\\] must be \\[low, high\\]"),
])
def test_types_are_checked_by_name(group, message):
    with pytest.raises(RunConfigError, match=message):
        SRPOSettings.from_config(group)


def test_ints_are_accepted_for_floats_and_kept_typed():
    s = SRPOSettings.from_config({"alpha": 1, "is_clip": 3, "success_threshold": 1, "reward_range": [0, 1]})
    assert (s.alpha, s.is_clip, s.success_threshold, s.reward_range) == (1.0, 3.0, 1.0, (0.0, 1.0))
    assert all(isinstance(v, float) for v in (s.alpha, s.is_clip, s.success_threshold))


def test_off_policy_update_warns():
    with pytest.warns(UserWarning, match="off-policy"):
        validate_run_config(run_config(actor_rollout_ref__actor__ppo_mini_batch_size=8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_run_config(run_config())


def test_default_config_is_srpo_trainer_with_the_papers_values(tmp_path):
    out = subprocess.run(
        # no --config-name: srpo_trainer is the entry point's default
        [sys.executable, "-m", "srpo_verl.main", "--cfg", "job", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = yaml.safe_load(out.stdout)
    actor = cfg["actor_rollout_ref"]["actor"]
    assert cfg["srpo"]["method"] == "srpo" and cfg["srpo"]["topk"] == 100
    assert (actor["clip_ratio_high"], actor["loss_agg_mode"], actor["optim"]["lr"], actor["ppo_mini_batch_size"]) == (
        0.28, "token-mean", 5e-6, 32)
    assert cfg["algorithm"]["rollout_correction"]["rollout_is"] == "token"
    assert cfg["algorithm"]["norm_adv_by_std_in_grpo"] is False
    assert cfg["trainer"]["v1"]["trainer_mode"] == "srpo"
    assert cfg["actor_rollout_ref"]["rollout"]["name"] == "vllm" and cfg["srpo"]["reward_range"] is None
    assert cfg["actor_rollout_ref"]["rollout"]["val_kwargs"]["n"] == 16


@pytest.mark.parametrize("teacher", ["ema", "live", "base"])
def test_lora_is_accepted_for_every_teacher_kind_on_the_actor_engine(teacher):
    from srpo_verl.preflight.config import teacher_on_actor_engine

    config = run_config(srpo={"method": "srpo", "teacher": teacher}, actor_rollout_ref__model__lora_rank=8)
    settings = validate_run_config(config)
    assert settings.teacher == teacher
    assert teacher_on_actor_engine(config, settings)
    assert teacher_on_actor_engine(run_config(), SRPOSettings(teacher="live"))
    assert not teacher_on_actor_engine(run_config(), SRPOSettings(teacher=teacher)) or teacher == "live"


def test_lora_with_the_megatron_key_names_the_fsdp_key():
    with pytest.raises(ValueError, match="set actor_rollout_ref.model.lora_rank=8 instead"):
        validate_run_config(run_config(actor_rollout_ref__model__lora={"rank": 8}))
