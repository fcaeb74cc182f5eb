"""The method names, their routing modes and the routed loss's hyperparameters, free of torch.

The driver's start-up checks (``srpo_verl.preflight.config``) read these before anything imports torch, so a bad
``srpo.*`` value is refused in about a second; ``srpo_verl.core.losses`` defines the loss functions for them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``srpo.logits_backend``: how log-probs / top-K are computed from logits (``srpo_verl.core.logprobs``).
LOGPROB_BACKENDS = ("auto", "chunked", "triton")

METHODS = ("grpo", "sdpo", "srpo", "srpo_no_dw", "adv_mix", "sdpo_incorrect_only", "sdpo_correct_only")

#: the :func:`srpo_verl.core.route_samples` mode each method routes with.
METHOD_ROUTE_MODE = {
    "grpo": "grpo",
    "sdpo": "sdpo",
    "srpo": "srpo",
    "srpo_no_dw": "srpo",
    "adv_mix": "sdpo",
    "sdpo_incorrect_only": "sdpo_incorrect_only",
    "sdpo_correct_only": "sdpo_correct_only",
}

#: route modes that distil failed samples with a teacher: there the success memory can supply one
#: (``srpo_verl.core.success_memory``).
MEMORY_ROUTE_MODES = ("srpo", "sdpo", "sdpo_incorrect_only")

#: methods whose distillation tokens are weighted by exp(−β·H_teacher) (§1.4); SDPO and the ablations are not.
METHODS_WITH_ENTROPY_WEIGHTS = frozenset({"srpo"})

#: ``srpo.distill_mode``: ``topk`` (the paper: top-K + tail-bucket divergence on the logits) or ``sampled_token``
#: (SDPO's token-level distillation: a reverse-KL estimate on the sampled token only).
DISTILL_MODES = ("topk", "sampled_token")

LOSS_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum")


@dataclass(frozen=True)
class RoutedLossConfig:
    """Hyperparameters of the routed loss (defaults: the paper's Table 3 / SRPO_SPEC §7)."""

    method: str = "srpo"
    alpha: float = 0.5  # generalised JSD; 0 = KL(T‖S), 1 = KL(S‖T)
    add_tail: bool = True  # append the (K+1)-th tail bucket; False renormalises the top-K (SDPO's option)
    is_clip: float | None = 2.0  # detached min(π_θ/π_old, is_clip) on distillation tokens; None disables
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: float = 3.0  # dual clip for negative advantages
    adv_mix_lambda: float = 0.9

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"srpo.method={self.method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"srpo.alpha={self.alpha!r} must be in [0, 1]")
        if self.is_clip is not None and not self.is_clip > 0:
            raise ValueError(f"srpo.is_clip={self.is_clip!r} must be > 0 or null")
        if not 0.0 <= self.adv_mix_lambda <= 1.0:
            raise ValueError(f"srpo.adv_mix_lambda={self.adv_mix_lambda!r} must be in [0, 1]")
        if not self.clip_ratio_c > 1.0:
            raise ValueError(f"clip_ratio_c must be > 1, got {self.clip_ratio_c}")
