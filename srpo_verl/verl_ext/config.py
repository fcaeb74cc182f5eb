"""The `srpo:` config group: typed settings and start-up validation against the rest of the verl config.

Pure Python on OmegaConf/dicts (no verl import), so it is checked in the driver before Ray starts and in tests.
Every error names the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

from srpo_verl.core.logprobs import BACKENDS as LOGPROB_BACKENDS
from srpo_verl.core.losses import METHOD_ROUTE_MODE, METHODS, METHODS_WITH_ENTROPY_WEIGHTS, RoutedLossConfig
from srpo_verl.core.teacher_prompt import TRUNCATION_MODES, TeacherTemplates

#: methods that need the EMA teacher, the top-K ids and the distillation loss.
TEACHER_METHODS = frozenset(m for m in METHODS if m != "grpo")


@dataclass(frozen=True)
class SRPOSettings:
    """Typed view of the `srpo:` group (defaults as in srpo_verl/config/srpo_trainer.yaml)."""

    method: str = "srpo"
    success_threshold: float = 0.5
    dw_beta: float = 1.0
    topk: int = 100
    add_tail: bool = True
    alpha: float = 0.5
    ema_rate: float = 0.05
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

    def __post_init__(self):
        self.loss_config({})  # method, alpha, is_clip and adv_mix_lambda are checked where the loss defines them
        if self.logits_backend not in LOGPROB_BACKENDS:
            raise ValueError(
                f"srpo.logits_backend={self.logits_backend!r} is not one of {', '.join(LOGPROB_BACKENDS)}"
            )
        if self.reprompt_truncation not in TRUNCATION_MODES:
            raise ValueError(
                f"srpo.reprompt_truncation={self.reprompt_truncation!r} is not one of {', '.join(TRUNCATION_MODES)}"
            )
        checks = [
            ("topk", self.topk >= 1, "an integer ≥ 1"),
            ("dw_beta", self.dw_beta > 0, "> 0"),
            ("ema_rate", 0.0 < self.ema_rate <= 1.0, "in (0, 1]"),
            ("max_reprompt_len", self.max_reprompt_len >= 1, "≥ 1"),
            ("logits_chunk_size", self.logits_chunk_size >= 1, "≥ 1"),
        ]
        for key, ok, allowed in checks:
            if not ok:
                raise ValueError(f"srpo.{key}={getattr(self, key)!r} must be {allowed}")
        self.templates  # validates the three templates

    @classmethod
    def from_config(cls, group: Mapping[str, Any] | None) -> "SRPOSettings":
        """Build from the `srpo:` mapping (OmegaConf or dict); unknown keys are refused by name."""
        values = dict(group or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown key(s) under srpo: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    @property
    def uses_teacher(self) -> bool:
        return self.method in TEACHER_METHODS

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


def _get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if node is None or not hasattr(node, "get"):
            return default
        node = node.get(part, None)
    return default if node is None else node


def validate_run_config(config: Mapping[str, Any]) -> SRPOSettings:
    """Check the whole run config for what this design can honour; return the typed `srpo:` settings.

    Refuses for the teacher methods: a KL-to-reference term, LoRA, fused kernels, Ulysses sequence parallelism,
    async trainer modes and multi-turn rollouts; an entropy bonus; a non-GRPO advantage estimator. Warns when the
    update is not on-policy (the stored top-K ids then differ from the update-time top-K).
    """
    settings = SRPOSettings.from_config(_get(config, "srpo", {}))
    if not settings.uses_teacher:
        return settings

    def refuse(key: str, value: Any, why: str) -> None:
        raise ValueError(f"{key}={value!r} is not supported with srpo.method={settings.method}: {why}")

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
    mode = _get(config, "trainer.v1.trainer_mode", "srpo")
    if mode not in ("srpo", "sync"):
        refuse("trainer.v1.trainer_mode", mode, "only the synchronous loop is supported (set it to srpo)")
    if _get(config, "actor_rollout_ref.rollout.multi_turn.enable", False):
        refuse("actor_rollout_ref.rollout.multi_turn.enable", True, "teacher prompts are built for single-turn "
               "rollouts")
    if _get(config, "distillation.enabled", False):
        refuse("distillation.enabled", True, "verl's own distillation and SRPO's teacher cannot both run")
    if _get(config, "trainer.default_hdfs_dir", None):
        refuse("trainer.default_hdfs_dir", _get(config, "trainer.default_hdfs_dir"), "verl 0.9.1's FSDP checkpoint "
               "manager never uploads (its hdfs_path is unused) and the V1 trainer never downloads, so neither actor/ "
               "nor the EMA teacher's teacher/ would reach it; set it to null and copy trainer.default_local_dir")

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
