"""Driver start-up checks (srpo_verl.preflight.startup_checks) on real Hydra compositions of the shipped
configs: every case of issues 12 §1 and 11 §2/§4 is refused with one line naming the key, and every shipped config
passes. Compositions are made once per config and the overrides applied with Hydra's own override code
(`compose_config`, tests/unit/conftest.py), so each case costs milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from srpo_verl.preflight.inputs import check_run_inputs
from srpo_verl.preflight import startup_checks
from srpo_verl.preflight.config import validate_run_config
from srpo_verl.verl_ext.settings import RunConfigError

REPO = Path(__file__).resolve().parents[2]
FAKE_VOCAB = 300


@pytest.fixture(scope="module")
def compose(compose_config):
    """compose(config_name, *overrides) -> DictConfig (tests/unit/conftest.py)."""
    return compose_config


def validate(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the off-policy warning is tested in test_srpo_config.py
        return validate_run_config(config)


@pytest.mark.parametrize("name, overrides, key, value", [
    ("cpu_srpo", ("srpo.teacher=live", "srpo.topk=7", "actor_rollout_ref.actor.ppo_micro_batch_size=3"),
     "srpo.topk", 7),
    ("srpo_trainer", ("actor_rollout_ref.model.path=Qwen/Qwen3-8B", "data.val_files=[a.parquet,b.parquet]",
                      "+srpo.not_a_key=1", "~trainer.logger"), "trainer.logger", None),
])
def test_compose_config_equals_a_fresh_hydra_composition(compose, name, overrides, key, value):
    """The shared helper (a cached composition plus Hydra's override code) gives what a fresh public `compose` with
    the same overrides gives: set, added and deleted keys."""
    import srpo_verl.main as entry
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "srpo_verl" / "config"), version_base=None):
        fresh = hydra_compose(name, overrides=[entry.SEARCHPATH_OVERRIDE, *overrides])
    helped = compose(name, *overrides)
    assert OmegaConf.select(helped, key) == value and OmegaConf.select(compose(name), key) != value
    assert OmegaConf.to_container(helped) == OmegaConf.to_container(fresh)


@pytest.mark.parametrize("name", ["srpo_trainer", "cpu_srpo", "cpu_grpo"])
def test_shipped_configs_validate(compose, name):
    settings = validate(compose(name))
    assert settings.method == "srpo"


@pytest.mark.parametrize("method", ["grpo", "sdpo", "srpo", "srpo_no_dw", "adv_mix", "sdpo_incorrect_only",
                                    "sdpo_correct_only"])
def test_every_method_validates(compose, method):
    for name in ("srpo_trainer", "cpu_srpo"):
        assert validate(compose(name, f"srpo.method={method}")).method == method


# (config, overrides, the start of the one line printed): issue 12 §1 then issue 11 §4 and §2
REFUSED = [
    # runs that silently train something else
    ("srpo_trainer", ["trainer.v1.trainer_mode=sync"], "trainer.v1.trainer_mode='sync' runs verl's own trainer"),
    ("cpu_srpo", ["trainer.v1.trainer_mode=colocate_async"],
     "trainer.v1.trainer_mode='colocate_async' runs verl's own trainer"),
    ("cpu_srpo", ["trainer.v1.trainer_mode=separate_async"],
     "trainer.v1.trainer_mode='separate_async' runs verl's own trainer"),
    ("cpu_grpo", ["+srpo.method=srpo"], "trainer.v1.trainer_mode='sync' runs verl's own trainer"),
    ("srpo_trainer", ["trainer.use_v1=false"], "trainer.use_v1=False: srpo_verl.main runs verl's V1 trainer only"),
    ("srpo_trainer", ["actor_rollout_ref.rollout.name=???"], "actor_rollout_ref.rollout.name is not set: vllm or "
     "sglang"),
    # values without a range or type check
    ("srpo_trainer", ["srpo.success_threshold=2"], "srpo.success_threshold=2.0 must lie in (0, 1]"),
    ("srpo_trainer", ["srpo.success_threshold=-1"], "srpo.success_threshold=-1.0 must lie in (0, 1]"),
    ("srpo_trainer", ["srpo.success_threshold=0"], "srpo.success_threshold=0.0 must lie in (0, 1]"),
    ("srpo_trainer", ["reward.custom_reward_function.path=/elsewhere/score.py", "srpo.success_threshold=-1"],
     "srpo.success_threshold=-1.0 must lie in (-1, 1]"),
    ("srpo_trainer", ["srpo.reward_range=[0,10]", "srpo.success_threshold=11"],
     "srpo.success_threshold=11.0 must lie in (0, 10]"),
    ("srpo_trainer", ["srpo.reward_range=[1,0]"], "srpo.reward_range=[1.0, 0.0] must be [low, high] with low < high"),
    ("srpo_trainer", ["srpo.reward_range=1"], "srpo.reward_range=1 must be [low, high] (two finite numbers)"),
    ("srpo_trainer", ["srpo.success_threshold=abc"], "srpo.success_threshold='abc' must be a finite number"),
    ("srpo_trainer", ["srpo.add_tail=maybe"], "srpo.add_tail='maybe' must be true or false"),
    ("srpo_trainer", ["srpo.add_tail=1"], "srpo.add_tail=1 must be true or false"),
    ("srpo_trainer", ["srpo.topk=2.5"], "srpo.topk=2.5 must be an integer"),
    ("srpo_trainer", ["srpo.topk=0"], "srpo.topk=0 must be an integer ≥ 1"),
    ("srpo_trainer", ["srpo.alpha=abc"], "srpo.alpha='abc' must be a finite number"),
    ("srpo_trainer", ["srpo.is_clip=abc"], "srpo.is_clip='abc' must be a finite number or null"),
    ("srpo_trainer", ["srpo.method=bogus"], "srpo.method='bogus' is not one of grpo, sdpo, srpo"),
    ("srpo_trainer", ["srpo.max_reprompt_len=1e4"], "srpo.max_reprompt_len=10000.0 must be an integer"),
    ("srpo_trainer", ["actor_rollout_ref.rollout.temperature=0"],
     "actor_rollout_ref.rollout.temperature=0.0 must be > 0"),
    ("cpu_grpo", ["actor_rollout_ref.rollout.temperature=-1"],
     "actor_rollout_ref.rollout.temperature=-1.0 must be > 0"),
    ("srpo_trainer", ["srpo.method=grpo", "actor_rollout_ref.rollout.temperature=0"],
     "actor_rollout_ref.rollout.temperature=0.0 must be > 0"),
    # refused only after Ray start-up before
    ("cpu_srpo", ["actor_rollout_ref.rollout.n=1"], "actor_rollout_ref.rollout.n=1 must be ≥ 2"),
    ("cpu_grpo", ["actor_rollout_ref.rollout.n=1"], "actor_rollout_ref.rollout.n=1 must be ≥ 2"),
    ("cpu_srpo", ["actor_rollout_ref.actor.ppo_mini_batch_size=3"],
     "actor_rollout_ref.actor.ppo_mini_batch_size=3 must divide data.train_batch_size=8 (one of 1, 2, 4, 8)"),
    ("cpu_srpo", ["actor_rollout_ref.actor.ppo_mini_batch_size=16"],
     "actor_rollout_ref.actor.ppo_mini_batch_size=16 must divide data.train_batch_size=8"),
    ("srpo_trainer", ["trainer.n_gpus_per_node=3"],
     "actor_rollout_ref.actor.ppo_mini_batch_size=32 x actor_rollout_ref.rollout.n=8 = 256 samples per mini-batch "
     "must be divisible by the data-parallel size 3"),
    ("cpu_srpo", ["srpo.max_reprompt_len=64"], "srpo.max_reprompt_len=64 must exceed data.max_prompt_length=64"),
    ("cpu_srpo", ["data.max_response_length=0"], "data.max_response_length=0 must be ≥ 1"),
    ("cpu_srpo", ["actor_rollout_ref.ref.fsdp_config.model_dtype=bf16"],
     "actor_rollout_ref.ref.fsdp_config.model_dtype='bf16' is not supported for the EMA teacher"),
    # issue 11 §4
    ("srpo_trainer", ["algorithm.rollout_correction.bypass_mode=true"],
     "algorithm.rollout_correction.bypass_mode=True is not supported with srpo.method=srpo"),
    ("cpu_srpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=200"],
     "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=200 (the teacher's token budget per GPU) is below "
     "srpo.max_reprompt_len + data.max_response_length = 272"),
    ("cpu_srpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=300",
                  "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=null",
                  "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=100"],
     "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=100 (the teacher's token budget per GPU) is below"),
    ("cpu_srpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=79",
                  "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=400"],
     "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=79 is below data.max_prompt_length + "
     "data.max_response_length = 80"),
    ("cpu_grpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=79"],
     "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=79 is below"),
    ("cpu_srpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=false"],
     "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=False must equal actor_rollout_ref.actor.use_dynamic_bsz=True"),
    # static micro-batches must divide each rank's share (verl asserts it mid-step; found by the 2-node e2e)
    ("cpu_srpo", ["trainer.n_gpus_per_node=2"],
     "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32 must divide the 16 samples per rank in the "
     "old-log-prob pass (data.train_batch_size x rollout.n / data-parallel size): one of 1, 2, 4, 8, 16"),
    ("cpu_grpo", ["trainer.nnodes=2", "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8"],
     "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32 must divide the 16 samples per rank in a mini-batch"),
    ("cpu_srpo", ["actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=5"],
     "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=5 must divide the 32 samples per rank"),
    # our poll-interval key in verl's sampler section (srpo_verl/verl_ext/replay_poll.py)
    ("cpu_srpo", ["trainer.v1.sampler.poll_interval_s=0"],
     "trainer.v1.sampler.poll_interval_s=0 must be a number of seconds > 0 (or null for verl's 2.0)"),
    ("cpu_grpo", ["trainer.v1.sampler.poll_interval_s=fast"],
     "trainer.v1.sampler.poll_interval_s='fast' must be a number of seconds > 0"),
    ("srpo_trainer", ["+trainer.v1.sampler.poll_interval_s=-1"],
     "trainer.v1.sampler.poll_interval_s=-1 must be a number of seconds > 0"),
    # issue 11 §2 (config side)
    ("srpo_trainer", ["actor_rollout_ref.ref.fsdp_config.fsdp_size=4"],
     "actor_rollout_ref.ref.fsdp_config.fsdp_size=4 differs from actor_rollout_ref.actor.fsdp_config.fsdp_size=-1"),
    ("srpo_trainer", ["actor_rollout_ref.ref.fsdp_config.reshard_after_forward=false"],
     "actor_rollout_ref.ref.fsdp_config.reshard_after_forward=False is not supported for the EMA teacher"),
    ("cpu_srpo", ["actor_rollout_ref.ref.strategy=fsdp"],
     "actor_rollout_ref.ref.strategy='fsdp' differs from actor_rollout_ref.actor.strategy='fsdp2'"),
    # the engines no teacher step has run on, and verl's mid-step failures, before Ray
    ("srpo_trainer", ["actor_rollout_ref.actor.strategy=fsdp"],
     "actor_rollout_ref.actor.strategy='fsdp' is not supported with srpo.method=srpo: the teacher engine"),
    ("srpo_trainer", ["srpo.method=sdpo", "actor_rollout_ref.actor.strategy=megatron"],
     "actor_rollout_ref.actor.strategy='megatron' is not supported with srpo.method=sdpo"),
    ("srpo_trainer", ["actor_rollout_ref.actor.pad_to_length=true"],
     "actor_rollout_ref.actor.pad_to_length=True is not supported with srpo.method=srpo: verl 0.9.1 raises"),
    ("srpo_trainer", ["actor_rollout_ref.ref.fsdp_config.pad_to_length=true"],
     "actor_rollout_ref.ref.fsdp_config.pad_to_length=True is not supported"),
    # Ulysses SP (issue 25): the teacher takes the actor's SP size; an attention verl cannot split is refused
    ("srpo_trainer", ["actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=2"],
     "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=2 differs from the actor's Ulysses SP size 1"),
    ("srpo_trainer", ["actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2",
                      "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=4"],
     "actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size=4 differs from the actor's Ulysses SP size 2"),
    ("srpo_trainer", ["actor_rollout_ref.ref.ulysses_sequence_parallel_size=4"],
     "actor_rollout_ref.ref.ulysses_sequence_parallel_size=4 differs from the actor's Ulysses SP size 1"),
    ("cpu_srpo", ["actor_rollout_ref.actor.ulysses_sequence_parallel_size=2", "trainer.n_gpus_per_node=2",
                  "actor_rollout_ref.model.use_remove_padding=true"],
     "actor_rollout_ref.model.override_config.attn_implementation='eager' with Ulysses SP=2: verl inserts its "
     "all-to-all only into flash attention"),
    ("srpo_trainer", ["srpo.method=grpo", "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2",
                      "+actor_rollout_ref.model.override_config.attn_implementation=sdpa"],
     "actor_rollout_ref.model.override_config.attn_implementation='sdpa' with Ulysses SP=2"),
    ("cpu_srpo", ["actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2", "trainer.n_gpus_per_node=2",
                  "actor_rollout_ref.model.override_config.attn_implementation=srpo_cpu_varlen"],
     "actor_rollout_ref.model.override_config.attn_implementation='srpo_cpu_varlen' runs packed sequences only"),
    ("srpo_trainer", ["srpo.method=sdpo", "+actor_rollout_ref.model.override_config.attn_implementation=srpo_cpu_varlen"],
     "actor_rollout_ref.model.override_config.attn_implementation='srpo_cpu_varlen' is the CPU backend's attention"),
    ("srpo_trainer", ["actor_rollout_ref.actor.fsdp_config.offload_policy=true"],
     "actor_rollout_ref.actor.fsdp_config.offload_policy=True is not supported with srpo.method=srpo"),
]


@pytest.mark.parametrize("name, overrides, message", REFUSED, ids=lambda v: v if isinstance(v, str) else None)
def test_refused_in_one_line_naming_the_key(compose, name, overrides, message):
    with pytest.raises(RunConfigError) as refused:
        validate(compose(name, *overrides))
    text = str(refused.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_srpo_trainer_runs_fsdp2_for_actor_and_reference(compose):
    config = compose("srpo_trainer")
    assert config.actor_rollout_ref.actor.strategy == "fsdp2"
    assert config.actor_rollout_ref.ref.strategy == "fsdp2"  # verl's interpolation of the actor's


@pytest.mark.parametrize("name, overrides", [
    # GRPO through the SRPO trainer has no teacher: the teacher-only checks do not apply
    ("srpo_trainer", ["srpo.method=grpo", "actor_rollout_ref.actor.strategy=fsdp"]),
    # verl's offload between phases is supported (the EMA synchronises before it reads the actor)
    ("srpo_trainer", ["actor_rollout_ref.actor.fsdp_config.param_offload=true",
                      "actor_rollout_ref.actor.fsdp_config.optimizer_offload=true"]),
    ("srpo_trainer", ["srpo.method=grpo", "algorithm.rollout_correction.bypass_mode=true"]),
    ("srpo_trainer", ["srpo.method=grpo", "actor_rollout_ref.ref.fsdp_config.model_dtype=bf16"]),
    # the threshold's range follows the verifier
    ("srpo_trainer", ["srpo.success_threshold=1"]),
    ("srpo_trainer", ["reward.custom_reward_function.path=/elsewhere/score.py", "srpo.success_threshold=0"]),
    ("srpo_trainer", ["srpo.reward_range=[0,10]", "srpo.success_threshold=7"]),
    # Ulysses SP with a splittable attention, the teacher following the actor's SP size (issue 25)
    ("srpo_trainer", ["actor_rollout_ref.actor.ulysses_sequence_parallel_size=2"]),
    ("srpo_trainer", ["srpo.method=sdpo", "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size=2"]),
    # a ref layout value left at verl's default follows the actor's (teacher_layout.py)
    ("srpo_trainer", ["actor_rollout_ref.actor.fsdp_config.fsdp_size=8"]),
    ("srpo_trainer", ["actor_rollout_ref.actor.fsdp_config.fsdp_size=8", "actor_rollout_ref.ref.fsdp_config.fsdp_size=8"]),
    # budgets that fit exactly
    ("cpu_srpo", ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=80",
                  "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=272"]),
    ("srpo_trainer", ["srpo.is_clip=null", "srpo.alpha=1", "srpo.max_reprompt_len=2049"]),
    # two ranks with micro-batches that divide the per-rank shares, or dynamic batching
    ("cpu_srpo", ["trainer.nnodes=2", "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
                  "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8"]),
    ("cpu_srpo", ["trainer.n_gpus_per_node=2", "actor_rollout_ref.actor.use_dynamic_bsz=true",
                  "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true"]),
])
def test_accepted(compose, name, overrides):
    validate(compose(name, *overrides))


def test_the_paper_recipe_budgets_fit(compose):
    """The recipes' dynamic-batch budgets (TOKEN_BUDGET in recipes/qwen3_*/run_*.sh) are exactly the teacher's longest
    sequence, 10240 + 8192; one token less is refused."""
    budget = ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=18432"]
    validate(compose("srpo_trainer", *budget))
    with pytest.raises(RunConfigError, match="log_prob_max_token_len_per_gpu=18431"):
        validate(compose("srpo_trainer", *budget, "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=18431"))


# ------------------------------------------------------------------------------------------- files on disk
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, write_tokenizer_model_dir) -> Path:
    """A Hugging Face model directory with what the start-up checks read: config.json and a tokenizer."""
    return write_tokenizer_model_dir(tmp_path_factory.mktemp("model"), FAKE_VOCAB)


@pytest.fixture()
def inputs(model_dir, tmp_path):
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    train.touch()
    test.touch()
    return [f"actor_rollout_ref.model.path={model_dir}", f"data.train_files={train}", f"data.val_files={test}"]


def test_inputs_that_exist_pass(compose, inputs, tmp_path):
    for name in ("cpu_srpo", "cpu_grpo", "srpo_trainer"):
        settings, notes = startup_checks(compose(name, *inputs))
        assert notes == []
    other = tmp_path / "more.parquet"
    other.touch()
    startup_checks(compose("cpu_srpo", *inputs, f"data.val_files=[{tmp_path / 'test.parquet'},{other}]"))
    startup_checks(compose("cpu_srpo", *inputs, f"data.train_files={tmp_path / '*.parquet'}"))


@pytest.mark.parametrize("override, message", [
    ("data.train_files=/nowhere/train.parquet", "data.train_files='/nowhere/train.parquet' does not exist"),
    ("data.val_files=[{tmp}/test.parquet,/nowhere/b.parquet]", "data.val_files[1]='/nowhere/b.parquet' does not exist"),
    ("data.train_files=[]", "data.train_files=[] is empty"),
    ("data.train_files=/nowhere/*.parquet", "data.train_files='/nowhere/*.parquet' does not exist"),
    ("actor_rollout_ref.model.path=/nowhere/model", "actor_rollout_ref.model.path='/nowhere/model' does not exist"),
    ("actor_rollout_ref.model.path={tmp}", "actor_rollout_ref.model.path='{tmp}' has no config.json"),
    ("actor_rollout_ref.model.path={tmp}/test.parquet", "actor_rollout_ref.model.path='{tmp}/test.parquet' is a file"),
    (f"srpo.topk={FAKE_VOCAB + 1}", f"srpo.topk={FAKE_VOCAB + 1} is larger than the vocabulary of "
     f"actor_rollout_ref.model.path (vocab_size={FAKE_VOCAB}): use 1..{FAKE_VOCAB}"),
    ("srpo.max_reprompt_len=65", "srpo.max_reprompt_len=65 is below data.max_prompt_length + the teacher template = 64 +"),
])
def test_missing_or_mismatched_inputs_are_refused(compose, inputs, tmp_path, override, message):
    override, message = override.replace("{tmp}", str(tmp_path)), message.replace("{tmp}", str(tmp_path))
    config = compose("cpu_srpo", *inputs, override)
    with pytest.raises(RunConfigError) as refused:
        startup_checks(config)
    assert str(refused.value).startswith(message), str(refused.value)


def test_ulysses_sp_on_the_cpu_backend_needs_its_flash_stand_in(compose, monkeypatch):
    """The CPU backend's splittable attention is accepted there (and only there: REFUSED above)."""
    from srpo_verl.cpu.attention import CPU_VARLEN_ATTENTION
    from srpo_verl.preflight.sequence_parallel import CPU_VARLEN_ATTENTION as PREFLIGHT_NAME

    assert PREFLIGHT_NAME == CPU_VARLEN_ATTENTION
    monkeypatch.setenv("SRPO_VERL_CPU", "1")
    sp = ("actor_rollout_ref.actor.ulysses_sequence_parallel_size=2", "trainer.n_gpus_per_node=2",
          "actor_rollout_ref.model.use_remove_padding=true")
    validate(compose("cpu_srpo", *sp, f"actor_rollout_ref.model.override_config.attn_implementation={CPU_VARLEN_ATTENTION}"))
    with pytest.raises(RunConfigError, match="attn_implementation='eager' with Ulysses SP=2: .* use one of "
                                             "flash_attention_2, flash_attention_3, flash_attention_4, srpo_cpu_varlen$"):
        validate(compose("cpu_srpo", *sp))


def test_topk_equal_to_the_vocabulary_is_accepted(compose, inputs):
    startup_checks(compose("cpu_srpo", *inputs, f"srpo.topk={FAKE_VOCAB}"))


def test_hub_id_is_noted_or_refused_offline(compose, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub_cache"))  # nothing cached
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = compose("cpu_srpo", *inputs, "actor_rollout_ref.model.path=Qwen/Qwen3-8B")
    settings = validate(config)
    notes = check_run_inputs(config, settings, runs_srpo_trainer=True)
    assert len(notes) == 1 and notes[0].startswith("actor_rollout_ref.model.path='Qwen/Qwen3-8B' is not a local "
                                                   "directory (nor in the Hugging Face cache)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RunConfigError, match="HF_HUB_OFFLINE forbids downloading it: give a local model directory"):
        check_run_inputs(config, settings, runs_srpo_trainer=True)


def test_driver_startup_runs_verls_checks_too(compose, inputs, tmp_path):
    """srpo_verl.main.startup (what the entry point runs before Ray) passes on the CPU configs with real inputs and
    turns verl's own validate_config refusal into the one-line exit."""
    import srpo_verl.main as entry
    from srpo_verl.data.parquet import write_verl_parquet
    from srpo_verl.tiny import task

    train, _ = task.make_splits(seed=0, num_train=4, num_test=1)
    for name in ("train", "test"):  # the driver reads the rows (srpo_verl.preflight.rows)
        write_verl_parquet(task.verl_rows(train, name), tmp_path / f"{name}.parquet")
    inputs = [*inputs, f"trainer.default_local_dir={tmp_path / 'ckpt'}"]
    for name in ("cpu_srpo", "cpu_grpo"):
        entry.startup(compose(name, *inputs))
    # verl's rule (actor.validate): the static micro-batch must divide the mini-batch
    with pytest.raises(SystemExit) as exited:
        entry.startup(compose("cpu_srpo", *inputs, "actor_rollout_ref.actor.ppo_micro_batch_size=3",
                              "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=null"))
    assert exited.value.code == entry.CONFIG_ERROR_EXIT


def test_input_checks_can_be_skipped_on_a_driver_without_the_files(compose, monkeypatch):
    """Node-local data on the GPU nodes only: SRPO_VERL_SKIP_INPUT_CHECKS=1 skips the file checks, with a note,
    and the config checks still run."""
    config = compose("cpu_srpo", "data.train_files=/nowhere/train.parquet", "actor_rollout_ref.model.path=/nowhere/m")
    monkeypatch.setenv("SRPO_VERL_SKIP_INPUT_CHECKS", "1")
    _, notes = startup_checks(config)
    assert len(notes) == 1 and notes[0].startswith("SRPO_VERL_SKIP_INPUT_CHECKS=1: data files, model path")
    with pytest.raises(RunConfigError, match="srpo.topk=2.5 must be an integer"):
        startup_checks(compose("cpu_srpo", "srpo.topk=2.5"))
    monkeypatch.delenv("SRPO_VERL_SKIP_INPUT_CHECKS")
    with pytest.raises(RunConfigError, match="data.train_files='/nowhere/train.parquet' does not exist"):
        startup_checks(config)


def test_the_start_up_checks_do_not_import_torch():
    """A refused config costs the driver ~1 s of imports, not torch's ~5 s (srpo_verl.core.methods is torch-free)."""
    probe = ("import sys, srpo_verl.preflight.config, srpo_verl.core.methods, srpo_verl.core.teacher_prompt; "
             "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
