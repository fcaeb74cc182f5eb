"""LoRA adapter sync for the `hf` rollout: the server merges the adapters it receives into its own weights.

verl's default LoRA sync (``model.lora.merge=false``) sends the base weights once (names ``...q_proj.base_layer.weight``)
and then, each step, only the adapters as peft names them (``base_model.model.<module>.lora_A.weight`` /
``lora_B.weight``, from ``get_peft_model_state_dict``) with the peft config. vLLM serves the adapter as a LoRA; a plain
HF model has no adapter slot, so the server keeps a copy of each targeted base weight and serves
W = W_base + scaling · B @ A (peft's ``LoraLayer.merge``: scaling = lora_alpha / r, or / √r with rsLoRA), recomputed
from the base copy at every sync (never accumulated).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

PEFT_PREFIX = "base_model.model."
_A, _B = ".lora_A.weight", ".lora_B.weight"


def base_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A base-weight sync's names as the HF model names them (``.base_layer`` dropped)."""
    return {name.replace(".base_layer", ""): tensor for name, tensor in state.items()}


def lora_scaling(peft_config: Mapping[str, Any]) -> float:
    """peft's per-layer scaling for a plain LoRA config; refuses what the merge below does not implement."""
    for key in ("rank_pattern", "alpha_pattern"):
        if peft_config.get(key):
            raise NotImplementedError(f"hf rollout: LoRA sync with a per-module {key} is not implemented; set "
                                      "actor_rollout_ref.model.lora.merge=true (verl merges in the actor)")
    if peft_config.get("use_dora"):
        raise NotImplementedError("hf rollout: DoRA adapters are not implemented; set actor_rollout_ref.model.lora."
                                  "merge=true")
    r, alpha = int(peft_config["r"]), float(peft_config["lora_alpha"])
    return alpha / (math.sqrt(r) if peft_config.get("use_rslora") else r)


def adapter_pairs(adapters: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{HF weight name of the targeted module: (A [r, in], B [out, r])}; any other adapter tensor is refused."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in adapters.items():
        plain = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
        for suffix, slot in ((_A, "A"), (_B, "B")):
            if plain.endswith(suffix):
                pairs.setdefault(plain[: -len(suffix)] + ".weight", {})[slot] = tensor
                break
        else:
            raise NotImplementedError(f"hf rollout: adapter tensor {name!r} is not a linear layer's lora_A/lora_B "
                                      "(embedding LoRA or modules_to_save); set actor_rollout_ref.model.lora.merge=true")
    incomplete = [target for target, slots in pairs.items() if set(slots) != {"A", "B"}]
    if incomplete:
        raise ValueError(f"hf rollout: adapter sync has lora_A without lora_B (or the reverse) for {incomplete[:3]}")
    return {target: (slots["A"], slots["B"]) for target, slots in pairs.items()}


def merged_weight(base: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """W_base + scaling · B @ A in fp32, returned in ``base``'s dtype (base [out, in], A [r, in], B [out, r])."""
    delta = (b.float() @ a.float()) * scaling
    if delta.shape != base.shape:
        raise ValueError(f"hf rollout: adapter B@A is {tuple(delta.shape)}, the base weight {tuple(base.shape)}")
    return (base.float() + delta).to(base.dtype)
