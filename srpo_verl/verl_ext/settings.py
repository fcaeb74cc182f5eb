"""The `srpo:` config group as typed settings, and the dotted-path helpers every config reader shares.

Pure Python on OmegaConf/dicts (no verl import). Start-up validation against the rest of the verl config lives in
:mod:`srpo_verl.preflight`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from srpo_verl.core.methods import (DISTILL_MODES, LOGPROB_BACKENDS, MEMORY_ROUTE_MODES, METHOD_ROUTE_MODE, METHODS,
                                    METHODS_WITH_ENTROPY_WEIGHTS, RoutedLossConfig)
from srpo_verl.core.teacher_prompt import TRUNCATION_MODES, TeacherTemplates

#: methods that need the EMA teacher, the top-K ids and the distillation loss.
TEACHER_METHODS = frozenset(m for m in METHODS if m != "grpo")

#: `srpo.teacher`: ema (the paper: an EMA of the actor in its own engine), live (the current policy: the teacher pass
#: runs on the actor engine, no teacher copy, no EMA), base (the frozen initial weights in the teacher engine),
#: trust_region (the official SDPO code's trust-region teacher: logits lerp(base, live, trust_region_rate)).
TEACHER_KINDS = ("ema", "live", "base", "trust_region")


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
    trust_region_rate: float = 0.05
    distill_mode: str = "topk"
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
    teacher_entropy_warn: float | None = 5.0
    teacher_entropy_window: int = 20
    max_reward_error_rate: float = 0.01
    preempt_grace_s: float = 300.0
    success_memory: bool = False
    success_memory_max_entries: int = 100_000

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
        self._check_distill_mode()
        self._check_success_memory()
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
        if self.teacher_entropy_warn is not None and not self.teacher_entropy_warn > 1.0:
            raise RunConfigError(f"srpo.teacher_entropy_warn={self.teacher_entropy_warn!r} must be > 1 (a ratio of "
                                 "the teacher's windowed entropy to its lowest so far) or null (off)")
        if self.teacher_entropy_window < 1:
            raise RunConfigError(f"srpo.teacher_entropy_window={self.teacher_entropy_window!r} must be ≥ 1 (training "
                                 "steps that distilled anything)")
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
        ema_rate with them would be a setting that does nothing (refused rather than ignored); likewise a
        trust_region_rate with any kind but trust_region."""
        default_mix = type(self).__dataclass_fields__["trust_region_rate"].default
        if self.teacher != "trust_region" and self.trust_region_rate != default_mix:
            raise RunConfigError(f"srpo.trust_region_rate={self.trust_region_rate!r} has no effect with "
                                 f"srpo.teacher={self.teacher}: leave it at {default_mix}, or use srpo.teacher=trust_region")
        if not 0.0 <= self.trust_region_rate <= 1.0:
            raise RunConfigError(f"srpo.trust_region_rate={self.trust_region_rate!r} must be in [0, 1] (0: the "
                                 "initial weights, 1: the current policy)")
        if self.teacher == "ema":
            return
        if not self.uses_teacher:
            raise RunConfigError(f"srpo.teacher={self.teacher} has no effect with srpo.method={self.method} (no "
                                 "teacher): drop it, or use a teacher method (" + ", ".join(sorted(TEACHER_METHODS))
                                 + ")")
        default_rate = type(self).__dataclass_fields__["ema_rate"].default
        if self.ema_rate != default_rate:
            what = {"live": "the current policy", "base": "the initial weights, frozen",
                    "trust_region": "lerp(initial, current, srpo.trust_region_rate), on logits"}[self.teacher]
            raise RunConfigError(f"srpo.ema_rate={self.ema_rate!r} has no effect with srpo.teacher={self.teacher} "
                                 f"(no EMA: the teacher is {what}): leave it at {default_rate}, or use srpo.teacher=ema")

    def _check_distill_mode(self) -> None:
        """sampled_token is the official SDPO code's token-level branch: reverse KL only, on the sampled token, so
        alpha must be 1 (srpo.topk and srpo.add_tail are not read in that mode)."""
        if self.distill_mode not in DISTILL_MODES:
            raise RunConfigError(f"srpo.distill_mode={self.distill_mode!r} is not one of {', '.join(DISTILL_MODES)}")
        if self.distill_mode == "topk":
            return
        if not self.uses_teacher:
            raise RunConfigError(f"srpo.distill_mode={self.distill_mode} has no effect with srpo.method={self.method} "
                                 "(no distillation): drop it, or use a teacher method")
        if self.alpha != 1.0:
            raise RunConfigError(f"srpo.alpha={self.alpha!r} is not supported with srpo.distill_mode=sampled_token: "
                                 "the token-level loss is reverse KL only (the official SDPO code asserts it); set "
                                 "srpo.alpha=1")

    def _check_success_memory(self) -> None:
        if self.success_memory_max_entries < 1:
            raise RunConfigError(f"srpo.success_memory_max_entries={self.success_memory_max_entries!r} must be ≥ 1 "
                                 "(prompts remembered)")
        if self.success_memory and self.route_mode not in MEMORY_ROUTE_MODES:
            methods = sorted(m for m, mode in METHOD_ROUTE_MODE.items() if mode in MEMORY_ROUTE_MODES)
            raise RunConfigError(f"srpo.success_memory=true has no effect with srpo.method={self.method}, which "
                                 f"distils no failed sample: drop it, or use one of {', '.join(methods)}")

    @property
    def sampled_token(self) -> bool:
        """Token-level distillation: the teacher scores only the sampled token; no top-K ids are taken."""
        return self.uses_teacher and self.distill_mode == "sampled_token"

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
    def teacher_from_model_path(self) -> bool:
        """The teacher engine holds the frozen initial weights, rebuilt from the model path on resume (base, and
        trust_region's reference)."""
        return self.uses_teacher and self.teacher in ("base", "trust_region")

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


def config_value(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at a dotted path of an OmegaConf / dict tree; ``default`` when a level is missing or the value null."""
    node: Any = config
    for part in dotted.split("."):
        if node is None or not hasattr(node, "get"):
            return default
        node = node.get(part, None)
    return default if node is None else node


def has_key(config: Mapping[str, Any], dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node = config_value(config, ".".join(parents), None) if parents else config
    return node is not None and hasattr(node, "keys") and last in node.keys()


def refuse(message: str) -> None:
    """Raise :class:`RunConfigError` with a one-line message."""
    raise RunConfigError(message)


def config_number(config, key: str, default: Any, kind=int) -> Any:
    """A numeric config value, refused by name when it is not a number of that kind."""
    value = config_value(config, key, default)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        refuse(f"{key}={value!r} must be {'an integer' if kind is int else 'a number'}")
    return kind(value)
