"""Batched token-in / token-out decoding with an HF causal LM and a KV cache (torch + transformers only).

Several requests decode together (left-padded prompts, one forward per step for the whole batch), but every row
samples with its own `torch.Generator`, so a request's tokens depend on its seed and logits only, not on which other
requests shared its batch (up to float rounding of batched matmuls, ~1e-7 in fp32). The model runs on its own device
(CPU or an accelerator); sampling always runs on the CPU, on the step's [B, V] logits, so a seed draws the same
tokens from the same logits whatever the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srpo_verl.rollout.hf.sampling import SamplingSpec, sample_token


@dataclass
class Generation:
    """Output of one request: response token ids, their log-probs, and why decoding stopped."""

    token_ids: list[int]
    log_probs: list[float]
    finish_reason: str  # "stop" (a stop token was produced, and kept) or "length" (max_tokens reached)


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token id lists.

    Returns:
        input_ids [B, L] long, attention_mask [B, L] long (0 on padding), position_ids [B, L] long (0 on padding,
        then 0..len-1 over the real tokens).
    """
    if any(len(p) == 0 for p in prompts):
        raise ValueError("hf rollout: got an empty prompt (no token ids)")
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids


@torch.no_grad()
def generate_batch(
    model: torch.nn.Module,
    prompts: list[list[int]],
    specs: list[SamplingSpec],
    stop_token_ids: set[int],
    pad_id: int,
    logprobs_mode: str = "processed_logprobs",
) -> list[Generation]:
    """Decode all `prompts` together until each hits a stop token or its own `max_tokens`.

    Args:
        model: an HF causal LM in eval mode (`model(input_ids, attention_mask, position_ids, past_key_values,
            use_cache=True)` returning `.logits` [B, T, V] and `.past_key_values`).
        prompts: B lists of prompt token ids.
        specs: B sampling specs (temperature, top-k, top-p, max_tokens, seed).
        stop_token_ids: ids that end a sequence (the stop token is part of the response, as in vLLM).
        pad_id: id fed for left padding and for rows that have already finished.
        logprobs_mode: see `sampling.sample_token`.
    Returns:
        B `Generation`s in input order.
    """
    if len(prompts) != len(specs):
        raise ValueError(f"hf rollout: {len(prompts)} prompts but {len(specs)} sampling specs")
    generators = [torch.Generator().manual_seed(spec.seed) for spec in specs]
    outputs = [Generation([], [], "length") for _ in prompts]
    active = [spec.max_tokens > 0 for spec in specs]

    device = next(model.parameters()).device
    input_ids, attention_mask, position_ids = (t.to(device) for t in left_pad(prompts, pad_id))
    past = None
    step_ids = input_ids
    step_positions = position_ids
    while any(active):
        out = model(
            input_ids=step_ids,
            attention_mask=attention_mask,
            position_ids=step_positions,
            past_key_values=past,
            use_cache=True,
        )
        past = out.past_key_values
        next_logits = out.logits[:, -1, :].float().cpu()
        next_ids = torch.full((len(prompts), 1), pad_id, dtype=torch.long)
        for row, gen in enumerate(outputs):
            if not active[row]:
                continue
            token, logprob = sample_token(next_logits[row], specs[row], generators[row], logprobs_mode)
            gen.token_ids.append(token)
            gen.log_probs.append(logprob)
            next_ids[row, 0] = token
            if token in stop_token_ids:
                gen.finish_reason = "stop"
                active[row] = False
            elif len(gen.token_ids) >= specs[row].max_tokens:
                active[row] = False
        step_ids = next_ids.to(device)
        step_positions = step_positions[:, -1:] + 1
        attention_mask = torch.cat([attention_mask, torch.ones_like(step_ids)], dim=1)
    return outputs
