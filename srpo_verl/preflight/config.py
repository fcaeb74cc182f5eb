"""Start-up validation of the run config: what this design can honour (types, ranges, combinations).

Pure Python on OmegaConf/dicts (no verl import), so the driver runs it before Ray starts and the SRPO trainer again
in its process. Every error is one line that names the key and what would be valid (:class:`RunConfigError`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping

from omegaconf import OmegaConf

from srpo_verl.verl_ext.replay_poll import poll_interval_from_config
from srpo_verl.verl_ext.settings import (
    RunConfigError,
    SRPOSettings,
    config_number,
    config_value,
    has_key,
    refuse,
)
from srpo_verl.preflight.sequence_parallel import sequence_parallel_problems
from srpo_verl.verl_ext.teacher_layout import engine_sp_size, teacher_layout_conflicts

__all__ = ["RunConfigError", "validate_run_config", "teacher_batching", "teacher_micro_batch_size", "reward_range"]

#: the trainer_mode srpo_verl registers (registration.TRAINER_NAME; not imported: that module imports the CPU hooks).
SRPO_TRAINER_MODE = "srpo"

#: reward range of srpo_verl's verifiers (srpo_verl/rewards: score 1.0 or 0.0).
SRPO_VERIFIER_REWARD_RANGE = (0.0, 1.0)
#: assumed for any other reward function: verl's built-in scorers return 0/1 (gsm8k, math, ...) or -1/+1 (math_dapo).
GENERIC_REWARD_RANGE = (-1.0, 1.0)
SRPO_VERIFIER_FILE = Path(__file__).resolve().parents[1] / "rewards" / "verl_entry.py"


def reward_range(config: Mapping[str, Any], settings: SRPOSettings) -> tuple[tuple[float, float], str]:
    """The reward range the run's verifier can return, and where it comes from (for the message)."""
    if settings.reward_range is not None:
        return settings.reward_range, "srpo.reward_range"
    path = str(config_value(config, "reward.custom_reward_function.path", "") or "")
    ours = "srpo_verl_path:rewards/verl_entry.py" in path or (
        path and os.path.realpath(os.path.expanduser(path)) == os.path.realpath(SRPO_VERIFIER_FILE))
    if ours and not config_value(config, "reward.reward_model.enable", False):
        return SRPO_VERIFIER_REWARD_RANGE, "srpo_verl's verifiers"
    return GENERIC_REWARD_RANGE, "the assumed range of other reward functions (set srpo.reward_range=[low,high])"


def _dp_size(config: Mapping[str, Any]) -> int | None:
    """Data-parallel size of the FSDP actor (all GPUs of the hybrid engine over Ulysses SP); None for megatron."""
    if str(config_value(config, "actor_rollout_ref.actor.strategy", "fsdp")) not in ("fsdp", "fsdp2"):
        return None
    n_gpus = (config_number(config, "trainer.n_gpus_per_node", 1) or 1) * (config_number(config, "trainer.nnodes", 1) or 1)
    sp = engine_sp_size(config_value(config, "actor_rollout_ref.actor", {}))
    return max(n_gpus // sp, 1)


def _sp_budget(config: Mapping[str, Any], longest: int) -> tuple[int, int]:
    """(the actor's Ulysses SP size, the per-GPU token budget a ``longest``-token sequence needs): verl's dynamic
    micro-batch holds budget × SP tokens (verl/workers/engine/utils.py prepare_micro_batches)."""
    sp = engine_sp_size(config_value(config, "actor_rollout_ref.actor", {}))
    return sp, -(-longest // sp)


def check_entry(config: Mapping[str, Any]) -> bool:
    """A config with an `srpo:` group must run the SRPO trainer; returns whether it does."""
    mode = str(config_value(config, "trainer.v1.trainer_mode", "sync"))
    if has_key(config, "srpo") and mode != SRPO_TRAINER_MODE:
        refuse(
            f"trainer.v1.trainer_mode={mode!r} runs verl's own trainer, which ignores the srpo: group (the run "
            f"would be plain verl PPO/GRPO): set trainer.v1.trainer_mode={SRPO_TRAINER_MODE} (as --config-name "
            "srpo_trainer / cpu_srpo do), or drop the srpo.* keys"
        )
    use_v1 = config_value(config, "trainer.use_v1", True)
    if use_v1 is not True:
        refuse(f"trainer.use_v1={use_v1!r}: srpo_verl.main runs verl's V1 trainer only; set trainer.use_v1=true")
    return mode == SRPO_TRAINER_MODE


def _is_unset(config: Mapping[str, Any], dotted: str) -> bool:
    """True when the key is absent, null or OmegaConf's mandatory `???` (verl's default for rollout.name)."""
    *parents, last = dotted.split(".")
    node = config_value(config, ".".join(parents), None) if parents else config
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
        micro = config_number(config, key, None)
        if micro is not None and (micro < 1 or share % micro):
            refuse(f"{key}={micro} must divide the {share} {what}: one of {_divisors(share)}, or set "
                    "actor_rollout_ref.actor.use_dynamic_bsz=true (verl asserts it mid-step)")


def _check_generic(config: Mapping[str, Any]) -> None:
    """What every run through srpo_verl.main needs, whatever the method."""
    if _is_unset(config, "actor_rollout_ref.rollout.name"):
        refuse("actor_rollout_ref.rollout.name is not set: vllm or sglang on GPUs (the paper recipes set it; hf is "
                "the CPU rollout of --config-name cpu_srpo / cpu_grpo)")
    temperature = config_number(config, "actor_rollout_ref.rollout.temperature", 1.0, kind=float)
    if not temperature > 0:
        refuse(f"actor_rollout_ref.rollout.temperature={temperature!r} must be > 0 (the log-probs are computed "
                "at logits / temperature; 0 makes every loss and gradient 0)")
    prompt_len = config_number(config, "data.max_prompt_length", 512)
    response_len = config_number(config, "data.max_response_length", 512)
    for key, value in (("data.max_prompt_length", prompt_len), ("data.max_response_length", response_len)):
        if value < 1:
            refuse(f"{key}={value} must be ≥ 1")
    n = config_number(config, "actor_rollout_ref.rollout.n", 1)
    if n < 1:
        refuse(f"actor_rollout_ref.rollout.n={n} must be ≥ 1")
    adv = str(config_value(config, "algorithm.adv_estimator", "grpo"))
    if adv == "grpo" and n < 2:
        refuse(f"actor_rollout_ref.rollout.n={n} must be ≥ 2 with algorithm.adv_estimator=grpo: advantages are "
                "relative to the other rollouts of the same prompt (a group of one has advantage 0, and no sibling "
                "to distil from)")

    batch = config_number(config, "data.train_batch_size", None)
    mini = config_number(config, "actor_rollout_ref.actor.ppo_mini_batch_size", None)
    if batch is not None and batch < 1:
        refuse(f"data.train_batch_size={batch} must be ≥ 1")
    if mini is not None and batch is not None:
        if mini < 1 or batch % mini:
            refuse(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} must divide data.train_batch_size={batch} "
                    f"(one of {_divisors(batch)}): otherwise verl pads the batch with no-op samples "
                    "or fails mid-step")
        dp = _dp_size(config)
        if dp is not None and (mini * n) % dp:
            refuse(f"actor_rollout_ref.actor.ppo_mini_batch_size={mini} x actor_rollout_ref.rollout.n={n} = "
                    f"{mini * n} samples per mini-batch must be divisible by the data-parallel size {dp} "
                    "(trainer.n_gpus_per_node x trainer.nnodes / Ulysses SP); verl asserts it in the update")
        if dp is not None and not config_value(config, "actor_rollout_ref.actor.use_dynamic_bsz", False):
            _check_static_micro_batches(config, batch * n // dp, mini * n // dp)

    try:
        poll_interval_from_config(config)
    except ValueError as error:
        refuse(str(error))

    dynamic = config_value(config, "actor_rollout_ref.actor.use_dynamic_bsz", False)
    log_prob_dynamic = config_value(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", dynamic)
    if bool(dynamic) != bool(log_prob_dynamic):
        refuse(f"actor_rollout_ref.rollout.log_prob_use_dynamic_bsz={log_prob_dynamic} must equal "
                f"actor_rollout_ref.actor.use_dynamic_bsz={dynamic} (verl's actor engine uses one setting for both)")
    if dynamic:
        longest = prompt_len + response_len
        # verl's dynamic micro-batch holds budget × Ulysses SP tokens, split over the SP group
        sp, need = _sp_budget(config, longest)
        for key in ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
                    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"):
            budget = config_number(config, key, 16384)
            if budget < need:
                refuse(f"{key}={budget} is below data.max_prompt_length + data.max_response_length = {longest} "
                        f"{'' if sp == 1 else f'over Ulysses SP={sp} '}"
                        "(one sequence must fit a dynamic micro-batch; verl asserts it mid-step): set it ≥ "
                        f"{need}")


def teacher_batching(config: Mapping[str, Any], live: bool = False) -> tuple[bool, int | None, str]:
    """How the teacher engine batches its forward (as `worker._build_teacher` builds it from `ref`, falling back
    to the rollout's log-prob settings; ``live``: the actor engine's log-prob settings, `ref` is unused): (dynamic
    batching on, token budget per GPU, the key the budget is read from)."""
    if live:
        key = "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        return bool(config_value(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", False)), \
            config_number(config, key, None), key
    ref_dynamic = config_value(config, "actor_rollout_ref.ref.log_prob_use_dynamic_bsz", False)
    rollout_dynamic = config_value(config, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz", False)
    key = "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu"
    budget = config_number(config, key, None)
    if budget is None:
        key = "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"
        budget = config_number(config, key, None)
    return bool(ref_dynamic or rollout_dynamic), budget, key


def teacher_micro_batch_size(config: Mapping[str, Any], live: bool = False) -> int | None:
    """Rows per static teacher micro-batch, as `worker._build_teacher` configures the engine (``live``: the actor
    engine's log-prob micro-batch); None with dynamic batching."""
    if teacher_batching(config, live)[0]:
        return None
    rollout_micro = config_number(config, "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", None)
    micro = None if live else config_number(config, "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", None)
    return (micro if micro is not None else rollout_micro) or 1


def _check_teacher_layout(config: Mapping[str, Any]) -> None:
    """The teacher's FSDP layout follows the actor's (teacher_layout.py, also the worker's check): a `ref` strategy
    or `ref.fsdp_config` value set unlike the actor's, or a teacher dtype other than fp32, is refused."""
    problems = teacher_layout_conflicts(config_value(config, "actor_rollout_ref", {}))
    if problems:
        refuse(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def lora_rank(config: Mapping[str, Any]) -> int:
    """``actor_rollout_ref.model.lora_rank`` (verl's FSDP LoRA; 0 = off)."""
    return config_number(config, "actor_rollout_ref.model.lora_rank", 0) or 0


def teacher_on_actor_engine(config: Mapping[str, Any], settings: SRPOSettings) -> bool:
    """The teacher pass runs on the actor engine (its batching, no teacher engine): ``live``, and every kind with
    LoRA (the base weights are shared; base disables the adapters, ema swaps in the adapter EMA)."""
    return settings.teacher == "live" or lora_rank(config) > 0


def _check_lora(config: Mapping[str, Any], settings: SRPOSettings) -> None:
    """LoRA runs every teacher kind on the actor's shared base weights (adapter_teacher.py). Refused: verl's
    megatron LoRA key on the FSDP engine (an adapter on the actor always trains: peft freezes only the base)."""
    rank = lora_rank(config)
    megatron_rank = config_number(config, "actor_rollout_ref.model.lora.rank", 0) or 0
    if megatron_rank > 0 and rank <= 0:
        refuse(f"actor_rollout_ref.model.lora.rank={megatron_rank} is verl's megatron LoRA key; srpo.method="
               f"{settings.method} runs on fsdp2: set actor_rollout_ref.model.lora_rank={megatron_rank} instead")
    if rank < 0:
        refuse(f"actor_rollout_ref.model.lora_rank={rank} must be ≥ 0 (0 = no LoRA)")


def validate_run_config(config: Mapping[str, Any]) -> SRPOSettings:
    """Check the whole run config for what this design can honour; return the typed `srpo:` settings.

    Every run: an `srpo:` group runs the SRPO trainer; temperature > 0; lengths ≥ 1; n ≥ 2 for GRPO advantages;
    the mini-batch divides the batch and (× n) the DP size; dynamic-batch token budgets fit one sequence.
    Every run: Ulysses SP that verl cannot split (preflight/sequence_parallel.py).
    Teacher methods also refuse: a KL-to-reference term, verl's megatron LoRA key, fused kernels, an actor strategy
    other than fsdp2, a teacher SP size unlike the actor's, a static packed pad (pad_to_length), FSDP2's offload_policy
    on the actor,
    multi-turn rollouts, verl's distillation, an entropy bonus, a non-GRPO advantage estimator, rollout-correction
    bypass mode, a success threshold outside the verifier's reward range, a teacher prompt cap or token budget
    too small for the prompts, a teacher laid out unlike the actor or not in fp32. Warns when the update is not
    on-policy (the stored top-K ids then differ from the update-time top-K).
    """
    runs_srpo_trainer = check_entry(config)
    _check_generic(config)
    settings = SRPOSettings.from_config(config_value(config, "srpo", {}))
    sp_problems = sequence_parallel_problems(config, teacher_engine=runs_srpo_trainer and settings.teacher_engine)
    if sp_problems:
        refuse(sp_problems[0] + (f" (and {len(sp_problems) - 1} more)" if len(sp_problems) > 1 else ""))
    if not (runs_srpo_trainer and settings.uses_teacher):
        return settings

    def refuse_key(key: str, value: Any, why: str) -> None:
        refuse(f"{key}={value!r} is not supported with srpo.method={settings.method}: {why}")

    adv = config_value(config, "algorithm.adv_estimator", "grpo")
    if str(adv) != "grpo":
        refuse_key("algorithm.adv_estimator", adv, "the routed loss uses group-relative (grpo) advantages")
    for key in ("actor_rollout_ref.actor.use_kl_loss", "algorithm.use_kl_in_reward"):
        if config_value(config, key, False):
            refuse_key(key, True, "the paper uses no reference KL, and a reference pass on every sample would cancel "
                   "SRPO's teacher-compute saving")
    if float(config_value(config, "actor_rollout_ref.actor.entropy_coeff", 0) or 0) != 0:
        refuse_key("actor_rollout_ref.actor.entropy_coeff", config_value(config, "actor_rollout_ref.actor.entropy_coeff"),
               "the paper uses no entropy bonus")
    _check_lora(config, settings)
    if config_value(config, "actor_rollout_ref.model.use_fused_kernels", False):
        refuse_key("actor_rollout_ref.model.use_fused_kernels", True, "fused kernels never materialise the logits "
               "that the top-K distillation reads")
    strategy = config_value(config, "actor_rollout_ref.actor.strategy", "fsdp")
    if strategy != "fsdp2":
        refuse_key("actor_rollout_ref.actor.strategy", strategy, "the teacher engine, the EMA and the logits processor "
               "run on verl's FSDP2 engine only (FSDP1 has never run them; megatron has no logits-processor hook); "
               "set actor_rollout_ref.actor.strategy=fsdp2")
    for key in ("actor_rollout_ref.actor.pad_to_length", "actor_rollout_ref.actor.fsdp_config.pad_to_length",
                "actor_rollout_ref.ref.pad_to_length", "actor_rollout_ref.ref.fsdp_config.pad_to_length"):
        if config_value(config, key, False):
            refuse_key(key, True, "verl 0.9.1 raises at the first pi_old micro-batch when top-K distillation meets a "
                   "static packed pad (after the whole generation); set it to false")
    if config_value(config, "actor_rollout_ref.actor.fsdp_config.offload_policy", False):
        refuse_key("actor_rollout_ref.actor.fsdp_config.offload_policy", True, "FSDP2's CPUOffloadPolicy keeps the "
               "actor's shards and optimizer step on the host, a branch the EMA teacher has never run; use "
               "actor_rollout_ref.actor.fsdp_config.param_offload=true and optimizer_offload=true (verl's offload "
               "between phases) instead")
    if config_value(config, "actor_rollout_ref.rollout.multi_turn.enable", False):
        refuse_key("actor_rollout_ref.rollout.multi_turn.enable", True, "teacher prompts are built for single-turn "
               "rollouts")
    if config_value(config, "distillation.enabled", False):
        refuse_key("distillation.enabled", True, "verl's own distillation and SRPO's teacher cannot both run")
    if config_value(config, "trainer.default_hdfs_dir", None):
        refuse_key("trainer.default_hdfs_dir", config_value(config, "trainer.default_hdfs_dir"), "verl 0.9.1's FSDP checkpoint "
               "manager never uploads (its hdfs_path is unused) and the V1 trainer never downloads, so neither actor/ "
               "nor the EMA teacher's teacher/ would reach it; set it to null and copy trainer.default_local_dir")
    if config_value(config, "algorithm.rollout_correction.bypass_mode", False):
        refuse_key("algorithm.rollout_correction.bypass_mode", True, "bypass mode skips the pi_old forward that "
               "takes the student's top-K ids (the run would die mid-step); set it to false")

    (low, high), source = reward_range(config, settings)
    if not low < settings.success_threshold <= high:
        refuse(f"srpo.success_threshold={settings.success_threshold!r} must lie in ({low:g}, {high:g}] "
                f"({source}): at or below {low:g} every rollout is correct, above {high:g} none is, and nothing "
                "is ever routed")

    prompt_len = config_number(config, "data.max_prompt_length", 512)
    response_len = config_number(config, "data.max_response_length", 512)
    if settings.max_reprompt_len <= prompt_len:
        refuse(f"srpo.max_reprompt_len={settings.max_reprompt_len} must exceed data.max_prompt_length={prompt_len}: "
                "the teacher prompt holds the student's prompt, the template and the demonstration (the paper: "
                "10240 = 2048 + 8192)")
    on_actor = teacher_on_actor_engine(config, settings)
    dynamic, budget, budget_key = teacher_batching(config, live=on_actor)
    longest = settings.max_reprompt_len + response_len
    sp, need = _sp_budget(config, longest)  # the teacher takes the actor's SP size
    if dynamic and budget is not None and budget < need:
        refuse(f"{budget_key}={budget} (the teacher's token budget per GPU) is below srpo.max_reprompt_len + "
                f"data.max_response_length = {longest}{'' if sp == 1 else f' over Ulysses SP={sp}'}: a teacher "
                "sequence must fit a dynamic micro-batch; set "
                f"{budget_key if on_actor else 'actor_rollout_ref.ref.log_prob_max_token_len_per_gpu'}"
                f" ≥ {need}")
    if not on_actor:  # live and LoRA build no teacher engine: nothing to lay out like the actor
        _check_teacher_layout(config)

    mini = config_value(config, "actor_rollout_ref.actor.ppo_mini_batch_size")
    batch = config_value(config, "data.train_batch_size")
    epochs = config_value(config, "actor_rollout_ref.actor.ppo_epochs", 1)
    if settings.teacher == "trust_region" and mini is not None and batch is not None and (
            int(mini) != int(batch) or int(epochs) != 1):
        refuse(f"srpo.teacher=trust_region with actor.ppo_mini_batch_size={mini}, data.train_batch_size={batch}, "
               f"ppo_epochs={epochs}: the teacher mixes in the actor as it is before the step's update, which is the "
               "official teacher's student only with one optimizer step per training step; set "
               "actor_rollout_ref.actor.ppo_mini_batch_size=data.train_batch_size and ppo_epochs=1")
    if mini is not None and batch is not None and (int(mini) != int(batch) or int(epochs) != 1):
        warnings.warn(
            f"actor.ppo_mini_batch_size={mini}, data.train_batch_size={batch}, ppo_epochs={epochs}: the update is "
            "off-policy, so the student's top-K ids (taken at the pi_old forward) can differ from the update-time "
            "top-K; the paper's setting is one mini-batch of the whole batch and one epoch",
            stacklevel=2,
        )
    return settings
