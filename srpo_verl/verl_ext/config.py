"""The `srpo:` config group: typed settings and start-up validation against the rest of the verl config.

Pure Python on OmegaConf/dicts (no verl import), so it is checked in the driver before Ray starts and in tests.
Every error is one line that names the key and what would be valid.

Two layers:
  * :func:`validate_run_config`: the config alone (types, ranges, combinations the design cannot honour); the
    driver and the SRPO trainer both run it;
  * :func:`check_run_inputs`: what the config points at (data files, the model directory, its vocabulary and
    tokenizer); the driver runs it before Ray starts (:func:`startup_checks` runs both).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from omegaconf import OmegaConf

from srpo_verl.core.methods import (LOGPROB_BACKENDS, METHOD_ROUTE_MODE, METHODS, METHODS_WITH_ENTROPY_WEIGHTS,
                                    RoutedLossConfig)
from srpo_verl.core.teacher_prompt import TRUNCATION_MODES, TeacherTemplates
from srpo_verl.verl_ext.teacher_layout import teacher_layout_conflicts
from srpo_verl.verl_ext.replay_poll import poll_interval_from_config

#: methods that need the EMA teacher, the top-K ids and the distillation loss.
TEACHER_METHODS = frozenset(m for m in METHODS if m != "grpo")

#: `srpo.teacher`: ema (the paper: an EMA of the actor in its own engine), live (the current policy: the teacher pass
#: runs on the actor engine, no teacher copy, no EMA), base (the frozen initial weights in the teacher engine).
TEACHER_KINDS = ("ema", "live", "base")

#: the trainer_mode srpo_verl registers (registration.TRAINER_NAME; not imported: that module imports the CPU hooks).
SRPO_TRAINER_MODE = "srpo"

#: reward range of srpo_verl's verifiers (srpo_verl/rewards: score 1.0 or 0.0).
SRPO_VERIFIER_REWARD_RANGE = (0.0, 1.0)
#: assumed for any other reward function: verl's built-in scorers return 0/1 (gsm8k, math, ...) or -1/+1 (math_dapo).
GENERIC_REWARD_RANGE = (-1.0, 1.0)
SRPO_VERIFIER_FILE = Path(__file__).resolve().parents[1] / "rewards" / "verl_entry.py"


class RunConfigError(ValueError):
    """A config value the run cannot honour; the message is one line naming the key and what would be valid."""


@dataclass(frozen=True)
class SRPOSettings:
    """Typed view of the `srpo:` group (defaults as in srpo_verl/config/srpo_trainer.yaml)."""

    method: str = "srpo"
    success_threshold: float = 0.5
    reward_range: tuple[float, float] | None = None
    dw_beta: float = 1.0
    topk: int = 100
    add_tail: bool = True
    alpha: float = 0.5
    ema_rate: float = 0.05
    teacher: str = "ema"
    is_clip: float | None = 2.0
    adv_mix_lambda: float = 0.9
    max_reprompt_len: int = 10240
    reprompt_truncation: str = "demo"
    remove_thinking_from_demonstration: bool = True
    include_environment_feedback: bool = False
    environment_feedback_only_without_solution: bool = True
    reprompt_template: str = TeacherTemplates.reprompt
    solution_template: str = TeacherTemplates.solution
    feedback_template: str = TeacherTemplates.feedback
    logits_chunk_size: int = 1024
    logits_backend: str = "auto"
    route_dump_dir: str | None = None
    log_samples: int = 4
    log_samples_freq: int = 10
    format_drop_warn: float | None = 0.2
    max_reward_error_rate: float = 0.01
    preempt_grace_s: float = 300.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _typed(field.name, getattr(self, field.name), field.type))
        self.loss_config({})  # method, alpha, is_clip and adv_mix_lambda are checked where the loss defines them
        if self.logits_backend not in LOGPROB_BACKENDS:
            raise RunConfigError(
                f"srpo.logits_backend={self.logits_backend!r} is not one of {', '.join(LOGPROB_BACKENDS)}"
            )
        if self.teacher not in TEACHER_KINDS:
            raise RunConfigError(f"srpo.teacher={self.teacher!r} is not one of {', '.join(TEACHER_KINDS)}")
        self._check_teacher_kind()
        if self.reprompt_truncation not in TRUNCATION_MODES:
            raise RunConfigError(
                f"srpo.reprompt_truncation={self.reprompt_truncation!r} is not one of {', '.join(TRUNCATION_MODES)}"
            )
        checks = [
            ("topk", self.topk >= 1, "an integer ≥ 1"),
            ("dw_beta", self.dw_beta > 0, "> 0"),
            ("ema_rate", 0.0 < self.ema_rate <= 1.0, "in (0, 1]"),
            ("max_reprompt_len", self.max_reprompt_len >= 1, "≥ 1"),
            ("logits_chunk_size", self.logits_chunk_size >= 1, "≥ 1"),
            ("log_samples", self.log_samples >= 0, "≥ 0 (0 = off)"),
            ("log_samples_freq", self.log_samples_freq >= 1, "≥ 1 (steps)"),
        ]
        for key, ok, allowed in checks:
            if not ok:
                raise RunConfigError(f"srpo.{key}={getattr(self, key)!r} must be {allowed}")
        if self.format_drop_warn is not None and not 0.0 < self.format_drop_warn <= 1.0:
            raise RunConfigError(f"srpo.format_drop_warn={self.format_drop_warn!r} must be in (0, 1] (a drop of the "
                                 "validation format rate from its best) or null (off)")
        if not 0.0 <= self.max_reward_error_rate <= 1.0:
            raise RunConfigError(f"srpo.max_reward_error_rate={self.max_reward_error_rate!r} must be in [0, 1] (the "
                                 "share of a step's rollouts whose reward function may raise; 0 = none)")
        if not self.preempt_grace_s > 0:
            raise RunConfigError(f"srpo.preempt_grace_s={self.preempt_grace_s!r} must be > 0 (seconds the driver "
                                 "waits after SIGTERM for a step boundary and its checkpoint)")
        if self.reward_range is not None and not self.reward_range[0] < self.reward_range[1]:
            raise RunConfigError(f"srpo.reward_range={list(self.reward_range)} must be [low, high] with low < high")
        self.templates  # validates the three templates

    def _check_teacher_kind(self) -> None:
        """A non-default teacher kind needs a teacher method; live and base have no EMA, so a non-default
        ema_rate with them would be a setting that does nothing (refused rather than ignored)."""
        if self.teacher == "ema":
            return
        if not self.uses_teacher:
            raise RunConfigError(f"srpo.teacher={self.teacher} has no effect with srpo.method={self.method} (no "
                                 "teacher): drop it, or use a teacher method (" + ", ".join(sorted(TEACHER_METHODS))
                                 + ")")
        default_rate = type(self).__dataclass_fields__["ema_rate"].default
        if self.ema_rate != default_rate:
            what = "the current policy" if self.teacher == "live" else "the initial weights, frozen"
            raise RunConfigError(f"srpo.ema_rate={self.ema_rate!r} has no effect with srpo.teacher={self.teacher} "
                                 f"(no EMA: the teacher is {what}): leave it at {default_rate}, or use srpo.teacher=ema")

    @classmethod
    def from_config(cls, group: Mapping[str, Any] | None) -> "SRPOSettings":
        """Build from the `srpo:` mapping (OmegaConf or dict); unknown keys are refused by name."""
        values = dict(group or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RunConfigError(
                f"unknown key(s) under srpo: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**values)
        except RunConfigError:
            raise
        except ValueError as error:  # the core's checks (loss config, templates) raise plain ValueErrors
            raise RunConfigError(str(error)) from error

    @property
    def uses_teacher(self) -> bool:
        return self.method in TEACHER_METHODS

    @property
    def teacher_engine(self) -> bool:
        """A separate forward-only teacher engine is built (ema, base); live scores on the actor engine."""
        return self.uses_teacher and self.teacher != "live"

    @property
    def teacher_ema(self) -> bool:
        """The teacher follows the actor by EMA after each update and is checkpointed (teacher/): ema only."""
        return self.uses_teacher and self.teacher == "ema"

    @property
    def route_mode(self) -> str:
        return METHOD_ROUTE_MODE[self.method]

    @property
    def uses_entropy_weights(self) -> bool:
        return self.method in METHODS_WITH_ENTROPY_WEIGHTS

    @property
    def templates(self) -> TeacherTemplates:
        return TeacherTemplates(self.reprompt_template, self.solution_template, self.feedback_template)

    def loss_config(self, actor: Mapping[str, Any]) -> RoutedLossConfig:
        """The core loss config, with the clip ranges taken from verl's actor config."""
        clip = actor.get("clip_ratio", 0.2)
        low = actor.get("clip_ratio_low")
        high = actor.get("clip_ratio_high")
        return RoutedLossConfig(
            method=self.method,
            alpha=self.alpha,
            add_tail=self.add_tail,
            is_clip=self.is_clip,
            clip_ratio_low=clip if low is None else low,
            clip_ratio_high=clip if high is None else high,
            clip_ratio_c=actor.get("clip_ratio_c", 3.0),
            adv_mix_lambda=self.adv_mix_lambda,
        )


def _typed(name: str, value: Any, annotation: str) -> Any:
    """`value` checked against the field's annotation (a string: this module defers annotations); ints are
    accepted for floats and converted, nothing else is converted (Hydra reads `maybe` or `abc` as strings)."""
    optional = annotation.endswith("| None")
    kind = annotation.split("|")[0].strip()
    key = f"srpo.{name}={value!r}"
    if value is None:
        if optional:
            return None
        raise RunConfigError(f"{key} must be set (null is not allowed)")
    or_null = " or null" if optional else ""
    if kind == "bool":
        if not isinstance(value, bool):
            raise RunConfigError(f"{key} must be true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise RunConfigError(f"{key} must be an integer{or_null}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RunConfigError(f"{key} must be a finite number{or_null}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise RunConfigError(f"{key} must be a string{or_null}")
        return value
    if kind.startswith("tuple[float"):
        items = None if isinstance(value, (str, bytes)) else _as_list(value)
        if items is None or len(items) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items
        ):
            raise RunConfigError(f"{key} must be [low, high] (two finite numbers){or_null}")
        return (float(items[0]), float(items[1]))
    raise TypeError(f"SRPOSettings.{name}: unhandled annotation {annotation!r}")


def _as_list(value: Any) -> list | None:
    try:
        return list(value)
    except TypeError:
        return None


# ---------------------------------------------------------------------------------------------------------- config
def _get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if node is None or not hasattr(node, "get"):
            return default
        node = node.get(part, None)
    return default if node is None else node


def _has(config: Mapping[str, Any], dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node = _get(config, ".".join(parents), None) if parents else config
    return node is not None and hasattr(node, "keys") and last in node.keys()


def _refuse(message: str) -> None:
    raise RunConfigError(message)


def _number(config, key: str, default: Any, kind=int) -> Any:
    """A numeric config value, refused by name when it is not a number of that kind."""
    value = _get(config, key, default)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        _refuse(f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def reward_range(config: Mapping[str, Any], settings: SRPOSettings) -> tuple[tuple[float, float], str]:
    """The reward range the run's verifier can return, and where it comes from (for the message)."""
    if settings.reward_range is not None:
        return settings.reward_range, "srpo.reward_range"
    path = str(_get(config, "reward.custom_reward_function.path", "") or "")
    ours = "srpo_verl_path:rewards/verl_entry.py" in path or (
        path and os.path.realpath(os.path.expanduser(path)) == os.path.realpath(SRPO_VERIFIER_FILE))
    if ours and not _get(config, "reward.reward_model.enable", False):
        return SRPO_VERIFIER_REWARD_RANGE, "srpo_verl's verifiers"
    return GENERIC_REWARD_RANGE, "the assumed range of other reward functions (set srpo.reward_range=[low,high])"


def _dp_size(config: Mapping[str, Any]) -> int | None:
    """Data-parallel size of the FSDP actor (all GPUs of the hybrid engine over Ulysses SP); None for megatron."""
    if str(_get(config, "actor_rollout_ref.actor.strategy", "fsdp")) not in ("fsdp", "fsdp2"):
        return None
    n_gpus = (_number(config, "trainer.n_gpus_per_node", 1) or 1) * (_number(config, "trainer.nnodes", 1) or 1)
    sp = _number(config, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1) or 1
    return max(n_gpus // sp, 1)


def _check_entry(config: Mapping[str, Any]) -> bool:
    """A config with an `srpo:` group must run the SRPO trainer; returns whether it does."""
    mode = str(_get(config, "trainer.v1.trainer_mode", "sync"))
    if _has(config, "srpo") and mode != SRPO_TRAINER_MODE:
        _refuse(
            f"trainer.v1.trainer_mode={mode!r} runs verl's own trainer, which ignores the srpo: group (the run "
            f"would be plain verl PPO/GRPO): set trainer.v1.trainer_mode={SRPO_TRAINER_MODE} (as --config-name "
            "srpo_trainer / cpu_srpo do), or drop the srpo.* keys"
        )
    use_v1 = _get(config, "trainer.use_v1", True)
    if use_v1 is not True:
        _refuse(f"trainer.use_v1={use_v1!r}: srpo_verl.main runs verl's V1 trainer only; set trainer.use_v1=true")
    return mode == SRPO_TRAINER_MODE


def _is_unset(config: Mapping[str, Any], dotted: str) -> bool:
    """True when the key is absent, null or OmegaConf's mandatory `???` (verl's default for rollout.name)."""
    *parents, last = dotted.split(".")
    node = _get(config, ".".join(parents), None) if parents else config
    if node is None or not hasattr(node, "keys") or last not in node.keys():
        return True
    if OmegaConf.is_config(node):
        return OmegaConf.is_missing(node, last) or node.get(last) is None
    return node[last] in (None, "???")


def _divisors(number: int) -> str:
    """The divisors of ``number`` as "1, 2, 4, 8" (the valid sizes an error names)."""
    return ", ".join(str(d) for d in range(1, number + 1) if number % d == 0)


def _check_static_micro_batches(config: Mapping[str, Any], samples_per_rank: int, mini_per_rank: int) -> None:
    """Without dynamic batching verl cuts each rank's share into micro-batches of exactly the configured size and
    asserts mid-step (in compute_log_prob / update_actor) that the size divides the share."""
    for key, share, what in (
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", samples_per_rank,
         "samples per rank in the old-log-prob pass (data.train_batch_size x rollout.n / data-parallel size)"),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", mini_per_rank,
         "samples per rank in a mini-batch (actor.ppo_mini_batch_size x rollout.n / data-parallel size)"),
    ):
        micro = _number(config, key, None)
        if micro is not None and (micro < 1 or share % micro):
            _refuse(f"{key}={micro} must divide the {share} {what}: one of {_divisors(share)}, or set "
                    "actor_rollout_ref.actor.use_dynamic_bsz=true (verl asserts it mid-step)")


def _check_generic(config: Mapping[str, Any]) -> None:
    """What every run through srpo_verl.main needs, whatever the method."""
    if _is_unset(config, "actor_rollout_ref.rollout.name"):
        _refuse("actor_rollout_ref.rollout.name is not set: vllm or sglang on GPUs (the paper recipes set it; hf is "
                "the CPU rollout of --config-name cpu_srpo / cpu_grpo)")
    temperature = _number(config, "actor_rollout_ref.rollout.temperature", 1.0, kind=float)
    if not temperature > 0:
        _refuse(f"actor_rollout_ref.rollout.temperature={temperature!r} must be > 0 (the log-probs are computed "
                "at logits / temperature; 0 makes every loss and gradient 0)")
    prompt_len = _number(config, "data.max_prompt_length", 512)
    response_len = _number(config, "data.max_response_length", 512)
    for key, value in (("data.max_prompt_length", prompt_len), ("data.max_response_length", response_len)):
        if value < 1:
            _refuse(f"{key}={value} must be ≥ 1")
    n = _number(config, "actor_rollout_ref.rollout.n", 1)
    if n < 1:
        _refuse(f"actor_rollout_ref.rollout.n={n} must be ≥ 1")
    adv = str(_get(config, "algorithm.adv_estimator", "grpo"))
    if adv == "grpo" and n < 2:
        _refuse(f"actor_rollout_ref.rollout.n={n} must be ≥ 2 with algorithm.adv_estimator=grpo: advantages are "
                "relative to the other rollouts of the same prompt (a group of one has advantage 0, and no sibling "
                "to distil from)")

    batch = _number(config, "data.train_batch_size", None)
    mini = _number(config, "actor_rollout_ref.actor.ppo_mini_batch_size", None)
    if batch is not None and batch < 1:
        _refuse(f"data.train_batch_size={batch} must be ≥ 1")
    if mini is not None and batch is not None:
        if mini < 1 or batch % mini:
            _refuse(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} must divide data.train_batch_size={batch} "
                    f"(one of {_divisors(batch)}): otherwise verl pads the batch with no-op samples "
                    "or fails mid-step")
        dp = _dp_size(config)
        if dp is not None and (mini * n) % dp:
            _refuse(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} x actor_rollout_ref.rollout.n={n} = "
                    f"{mini * n} samples per mini-batch must be divisible by the data-parallel size {dp} "
                    "(trainer.n_gpus_per_node x trainer.nnodes / Ulysses SP); verl asserts it in the update")
        if dp is not None and not _get(config, "actor_rollout_ref.actor.use_dynamic_bsz", False):
            _check_static_micro_batches(config, batch * n // dp, mini * n // dp)

    try:
        poll_interval_from_config(config)
    except ValueError as error:
        _refuse(str(error))

    dynamic = _get(config, "actor_rollout_ref.actor.use_dynamic_bsz", False)
    log_prob_dynamic = _get(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", dynamic)
    if bool(dynamic) != bool(log_prob_dynamic):
        _refuse(f"actor_rollout_ref.rollout.log_prob_use_dynamic_bsz={log_prob_dynamic} must equal "
                f"actor_rollout_ref.actor.use_dynamic_bsz={dynamic} (verl's actor engine uses one setting for both)")
    if dynamic:
        longest = prompt_len + response_len
        for key in ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
                    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"):
            budget = _number(config, key, 16384)
            if budget < longest:
                _refuse(f"{key}={budget} is below data.max_prompt_length + data.max_response_length = {longest} "
                        "(one sequence must fit a dynamic micro-batch; verl asserts it mid-step): set it ≥ "
                        f"{longest}")


def teacher_batching(config: Mapping[str, Any], live: bool = False) -> tuple[bool, int | None, str]:
    """How the teacher engine batches its forward (as `worker._build_teacher` builds it from `ref`, falling back
    to the rollout's log-prob settings; ``live``: the actor engine's log-prob settings, `ref` is unused): (dynamic
    batching on, token budget per GPU, the key the budget is read from)."""
    if live:
        key = "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        return bool(_get(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", False)), \
            _number(config, key, None), key
    ref_dynamic = _get(config, "actor_rollout_ref.ref.log_prob_use_dynamic_bsz", False)
    rollout_dynamic = _get(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", False)
    key = "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu"
    budget = _number(config, key, None)
    if budget is None:
        key = "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        budget = _number(config, key, None)
    return bool(ref_dynamic or rollout_dynamic), budget, key


def _check_teacher_layout(config: Mapping[str, Any]) -> None:
    """The teacher's FSDP layout follows the actor's (teacher_layout.py, also the worker's check): a `ref` strategy
    or `ref.fsdp_config` value set unlike the actor's, or a teacher dtype other than fp32, is refused."""
    problems = teacher_layout_conflicts(_get(config, "actor_rollout_ref", {}))
    if problems:
        _refuse(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def validate_run_config(config: Mapping[str, Any]) -> SRPOSettings:
    """Check the whole run config for what this design can honour; return the typed `srpo:` settings.

    Every run: an `srpo:` group runs the SRPO trainer; temperature > 0; lengths ≥ 1; n ≥ 2 for GRPO advantages;
    the mini-batch divides the batch and (× n) the DP size; dynamic-batch token budgets fit one sequence.
    Teacher methods also refuse: a KL-to-reference term, LoRA, fused kernels, Ulysses sequence parallelism,
    multi-turn rollouts, verl's distillation, an entropy bonus, a non-GRPO advantage estimator, rollout-correction
    bypass mode, a success threshold outside the verifier's reward range, a teacher prompt cap or token budget
    too small for the prompts, a teacher laid out unlike the actor or not in fp32. Warns when the update is not
    on-policy (the stored top-K ids then differ from the update-time top-K).
    """
    runs_srpo_trainer = _check_entry(config)
    _check_generic(config)
    settings = SRPOSettings.from_config(_get(config, "srpo", {}))
    if not (runs_srpo_trainer and settings.uses_teacher):
        return settings

    def refuse(key: str, value: Any, why: str) -> None:
        _refuse(f"{key}={value!r} is not supported with srpo.method={settings.method}: {why}")

    adv = _get(config, "algorithm.adv_estimator", "grpo")
    if str(adv) != "grpo":
        refuse("algorithm.adv_estimator", adv, "the routed loss uses group-relative (grpo) advantages")
    for key in ("actor_rollout_ref.actor.use_kl_loss", "algorithm.use_kl_in_reward"):
        if _get(config, key, False):
            refuse(key, True, "the paper uses no reference KL, and a reference pass on every sample would cancel "
                   "SRPO's teacher-compute saving")
    if float(_get(config, "actor_rollout_ref.actor.entropy_coeff", 0) or 0) != 0:
        refuse("actor_rollout_ref.actor.entropy_coeff", _get(config, "actor_rollout_ref.actor.entropy_coeff"),
               "the paper uses no entropy bonus")
    lora = _get(config, "actor_rollout_ref.model.lora_rank", 0) or _get(config, "actor_rollout_ref.model.lora.rank", 0)
    if lora and int(lora) > 0:
        refuse("actor_rollout_ref.model.lora_rank", lora, "the EMA teacher needs a separate full model")
    if _get(config, "actor_rollout_ref.model.use_fused_kernels", False):
        refuse("actor_rollout_ref.model.use_fused_kernels", True, "fused kernels never materialise the logits "
               "that the top-K distillation reads")
    for key in ("actor_rollout_ref.actor.ulysses_sequence_parallel_size",
                "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size",
                "actor_rollout_ref.ref.ulysses_sequence_parallel_size"):
        sp = _get(config, key, 1)
        if sp is not None and int(sp) > 1:
            refuse(key, sp, "the logits processor needs whole sequences on each rank")
    if _get(config, "actor_rollout_ref.rollout.multi_turn.enable", False):
        refuse("actor_rollout_ref.rollout.multi_turn.enable", True, "teacher prompts are built for single-turn "
               "rollouts")
    if _get(config, "distillation.enabled", False):
        refuse("distillation.enabled", True, "verl's own distillation and SRPO's teacher cannot both run")
    if _get(config, "trainer.default_hdfs_dir", None):
        refuse("trainer.default_hdfs_dir", _get(config, "trainer.default_hdfs_dir"), "verl 0.9.1's FSDP checkpoint "
               "manager never uploads (its hdfs_path is unused) and the V1 trainer never downloads, so neither actor/ "
               "nor the EMA teacher's teacher/ would reach it; set it to null and copy trainer.default_local_dir")
    if _get(config, "algorithm.rollout_correction.bypass_mode", False):
        refuse("algorithm.rollout_correction.bypass_mode", True, "bypass mode skips the pi_old forward that "
               "takes the student's top-K ids (the run would die mid-step); set it to false")
    if _get(config, "trainer.default_hdfs_dir", None):
        refuse("trainer.default_hdfs_dir", _get(config, "trainer.default_hdfs_dir"), "verl 0.9.1's FSDP checkpoint "
               "manager never uploads (its hdfs_path is unused) and the V1 trainer never downloads, so neither actor/ "
               "nor the EMA teacher's teacher/ would reach it; set it to null and copy trainer.default_local_dir")

    (low, high), source = reward_range(config, settings)
    if not low < settings.success_threshold <= high:
        _refuse(f"srpo.success_threshold={settings.success_threshold!r} must lie in ({low:g}, {high:g}] "
                f"({source}): at or below {low:g} every rollout is correct, above {high:g} none is, and nothing "
                "is ever routed")

    prompt_len = _number(config, "data.max_prompt_length", 512)
    response_len = _number(config, "data.max_response_length", 512)
    if settings.max_reprompt_len <= prompt_len:
        _refuse(f"srpo.max_reprompt_len={settings.max_reprompt_len} must exceed data.max_prompt_length={prompt_len}: "
                "the teacher prompt holds the student's prompt, the template and the demonstration (the paper: "
                "10240 = 2048 + 8192)")
    dynamic, budget, budget_key = teacher_batching(config, live=settings.teacher == "live")
    longest = settings.max_reprompt_len + response_len
    if dynamic and budget is not None and budget < longest:
        _refuse(f"{budget_key}={budget} (the teacher's token budget per GPU) is below srpo.max_reprompt_len + "
                f"data.max_response_length = {longest}: a teacher sequence must fit a dynamic micro-batch; set "
                f"{budget_key if settings.teacher == 'live' else 'actor_rollout_ref.ref.log_prob_max_token_len_per_gpu'}"
                f" ≥ {longest}")
    if settings.teacher_engine:  # live builds no teacher engine: nothing to lay out like the actor
        _check_teacher_layout(config)

    mini = _get(config, "actor_rollout_ref.actor.ppo_mini_batch_size")
    batch = _get(config, "data.train_batch_size")
    epochs = _get(config, "actor_rollout_ref.actor.ppo_epochs", 1)
    if mini is not None and batch is not None and (int(mini) != int(batch) or int(epochs) != 1):
        warnings.warn(
            f"actor.ppo_mini_batch_size={mini}, data.train_batch_size={batch}, ppo_epochs={epochs}: the update is "
            "off-policy, so the student's top-K ids (taken at the pi_old forward) can differ from the update-time "
            "top-K; the paper's setting is one mini-batch of the whole batch and one epoch",
            stacklevel=2,
        )
    return settings


# ---------------------------------------------------------------------------------------------------------- inputs
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def _is_remote(path: str) -> bool:
    return "://" in path


def _check_data_files(config: Mapping[str, Any]) -> None:
    for key in ("data.train_files", "data.val_files"):
        value = _get(config, key, None)
        if value is None:
            _refuse(f"{key} is not set: give a parquet file (or a list of them)")
        files = [value] if isinstance(value, str) else list(value)
        if not files:
            _refuse(f"{key}=[] is empty: give a parquet file (or a list of them)")
        for index, file in enumerate(files):
            name = key if isinstance(value, str) else f"{key}[{index}]"
            file = str(file)
            if _is_remote(file):
                continue
            local = os.path.expanduser(file)
            found = glob.glob(local) if _GLOB_CHARS.search(local) else [local] if os.path.exists(local) else []
            if not found:
                _refuse(f"{name}={file!r} does not exist (resolved from {os.getcwd()}); prepare the data "
                        "(docs/TASKS.md) or fix the path")


def _read_json(path: str, key: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        _refuse(f"{key}: cannot read {path}: {error}")


def model_config_json(config: Mapping[str, Any]) -> tuple[dict | None, str | None]:
    """The model's config.json (and the directory holding it) from `actor_rollout_ref.model.path`.

    A missing local path is refused by name. A Hugging Face hub id is looked up in the local hub cache; when it is
    not there the result is (None, None) (verl will download it on every node, which needs the hub), and with
    HF_HUB_OFFLINE=1 that is refused.
    """
    key = "actor_rollout_ref.model.path"
    path = _get(config, key, None)
    if path is None:
        _refuse(f"{key} is not set: give a Hugging Face model directory (with config.json)")
    path = str(path)
    if _is_remote(path):
        return None, None
    local = os.path.expanduser(path)
    if os.path.isdir(local):
        config_file = os.path.join(local, "config.json")
        if not os.path.isfile(config_file):
            _refuse(f"{key}={path!r} has no config.json: not a Hugging Face model directory")
        return _read_json(config_file, key), local
    if os.path.exists(local):
        _refuse(f"{key}={path!r} is a file; give the model directory (the one holding config.json)")
    if not _HUB_ID.match(path):
        _refuse(f"{key}={path!r} does not exist (resolved from {os.getcwd()}); give a local model directory "
                "with config.json (or an org/name Hugging Face hub id where the hub is reachable)")
    cached = _hub_cache_file(path, "config.json")
    if cached:
        return _read_json(cached, key), os.path.dirname(cached)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        _refuse(f"{key}={path!r} is not a local directory and is not in the Hugging Face cache, and HF_HUB_OFFLINE "
                "forbids downloading it: give a local model directory")
    return None, None


def _hub_cache_file(repo_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def vocab_size(model_config: Mapping[str, Any]) -> int | None:
    """Rows of the output layer: config.json's vocab_size (or its text_config's, for multimodal models)."""
    size = model_config.get("vocab_size")
    if size is None and isinstance(model_config.get("text_config"), dict):
        size = model_config["text_config"].get("vocab_size")
    return int(size) if size is not None else None


def template_overhead_tokens(tokenizer, settings: SRPOSettings) -> int:
    """Tokens the teacher template adds around the question when every field it shows is empty."""
    solution = settings.solution_template.format(successful_previous_attempt="")
    feedback = settings.feedback_template.format(feedback_raw="") if settings.include_environment_feedback else ""
    text = settings.reprompt_template.format(prompt="", solution=solution, feedback=feedback)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def check_run_inputs(config: Mapping[str, Any], settings: SRPOSettings, runs_srpo_trainer: bool) -> list[str]:
    """Check the files the run reads before Ray starts: data files, the model directory, srpo.topk against the
    vocabulary and srpo.max_reprompt_len against the prompt cap plus the template's tokens.

    Returns notes for the console (what could not be checked and why); refuses with RunConfigError.
    """
    notes = []
    _check_data_files(config)
    model_json, model_dir = model_config_json(config)
    model_path = _get(config, "actor_rollout_ref.model.path")
    if model_json is None:
        notes.append(f"actor_rollout_ref.model.path={model_path!r} is not a local directory (nor in the Hugging Face "
                     "cache): verl will download it on every node, which needs the hub; srpo.topk and "
                     "srpo.max_reprompt_len are not checked against its vocabulary and tokenizer")
    if not (runs_srpo_trainer and settings.uses_teacher) or model_json is None:
        return notes
    vocab = vocab_size(model_json)
    if vocab is not None and settings.topk > vocab:
        _refuse(f"srpo.topk={settings.topk} is larger than the vocabulary of actor_rollout_ref.model.path "
                f"(vocab_size={vocab}): use 1..{vocab}")
    tokenizer_path = _get(config, "actor_rollout_ref.model.tokenizer_path", None) or model_dir
    tokenizer_path = os.path.expanduser(str(tokenizer_path))
    if os.path.isdir(tokenizer_path) and os.path.isfile(os.path.join(tokenizer_path, "tokenizer_config.json")):
        overhead = template_overhead_tokens(_load_tokenizer(tokenizer_path), settings)
        prompt_len = _number(config, "data.max_prompt_length", 512)
        if settings.max_reprompt_len < prompt_len + overhead:
            _refuse(f"srpo.max_reprompt_len={settings.max_reprompt_len} is below data.max_prompt_length + the "
                    f"teacher template = {prompt_len} + {overhead} = {prompt_len + overhead} tokens: the longest "
                    f"prompt would lose its demonstration; set it ≥ {prompt_len + overhead} (room for the "
                    "demonstration comes on top)")
    else:
        notes.append(f"no tokenizer files in {tokenizer_path}: srpo.max_reprompt_len is checked against "
                     "data.max_prompt_length only, not the template's tokens")
    return notes


#: set to 1 when the driver's node cannot see the data and model paths (node-local files on the workers only)
SKIP_INPUT_CHECKS_ENV = "SRPO_VERL_SKIP_INPUT_CHECKS"


def startup_checks(config: Mapping[str, Any]) -> tuple[SRPOSettings, list[str]]:
    """Everything the driver checks before Ray starts: :func:`validate_run_config` then :func:`check_run_inputs`
    (skipped, with a note, when SRPO_VERL_SKIP_INPUT_CHECKS=1). Returns the settings and the notes to print;
    raises RunConfigError (one line) for the first problem."""
    settings = validate_run_config(config)
    if os.environ.get(SKIP_INPUT_CHECKS_ENV) == "1":
        return settings, [f"{SKIP_INPUT_CHECKS_ENV}=1: data files, model path, srpo.topk against the vocabulary and "
                          "srpo.max_reprompt_len against the tokenizer are not checked on this node"]
    notes = check_run_inputs(config, settings, _check_entry(config))
    return settings, notes
