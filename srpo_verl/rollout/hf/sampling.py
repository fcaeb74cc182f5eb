"""Pure sampling helpers of the `hf` rollout backend (torch only; unit-tested without Ray or verl).

Semantics follow vLLM's, which verl's agent loop assumes: `temperature == 0` is greedy, `top_k <= 0` and
`top_p >= 1` disable those filters, and the reported log-prob of a sampled token is taken either from the
distribution actually sampled from (`processed_logprobs`, verl's default `rollout.logprobs_mode`) or from the raw
logits (`raw_logprobs`). Order of processing: temperature, then top-k, then top-p (as HF and vLLM do).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

SUPPORTED_LOGPROBS_MODES = ("processed_logprobs", "raw_logprobs")


@dataclass(frozen=True)
class SamplingSpec:
    """Sampling parameters of one request, normalised (vLLM conventions)."""

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


def request_key(request_id: str, prompt_ids: list[int], occurrence: int) -> str:
    """Identity of one sampling request for seeding: its id, its prompt and how many identical requests came before.

    verl's V1 agent loop sends the n samples of a prompt as n requests with the same prompt and, under
    `rollout.full_determinism`, the same id ("det-<priority>", priority 0 unless the batch carries one), so neither
    the id nor the prompt tells them apart; the occurrence count does. Identical requests are interchangeable, so
    which of them receives which occurrence index does not change the set of responses of a group.
    """
    digest = hashlib.sha256(",".join(map(str, prompt_ids)).encode()).hexdigest()[:16]
    return f"{request_id}|{digest}|{occurrence}"


def request_seed(base_seed: int, global_steps: int, key: str) -> int:
    """63-bit seed of one request: a hash of (rollout.seed, weight version, `request_key(...)`).

    With `rollout.full_determinism=true` verl's request ids are stable ("det-..."), so the seeds, and therefore the
    sampled tokens, are reproducible run to run (and across a checkpoint resume); with random uuids as ids they are
    merely independent.
    """
    digest = hashlib.sha256(f"{base_seed}|{global_steps}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) the logits outside top-k and outside the top-p nucleus.

    Args:
        logits: [V] float, already divided by the temperature.
        top_k: keep the k largest; <= 0 or >= V keeps all.
        top_p: keep the smallest prefix of tokens (by descending probability) whose mass reaches top_p; >= 1 keeps
            all. The most likely token is always kept.
    Returns:
        [V] logits with the filtered-out entries set to -inf.
    """
    vocab = logits.shape[-1]
    out = logits
    if 0 < top_k < vocab:
        kth = torch.topk(out, top_k).values[-1]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop_sorted[0] = False
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_token(logits: torch.Tensor, spec: SamplingSpec, generator: torch.Generator, logprobs_mode: str) -> tuple[int, float]:
    """Pick the next token of one sequence and its log-prob.

    Args:
        logits: [V] raw next-token logits (float32).
        spec: the request's sampling parameters.
        generator: the request's own RNG (seeded from `spec.seed`), so concurrent requests cannot perturb each other.
        logprobs_mode: "processed_logprobs" (log-prob under the sampled-from distribution, i.e. after temperature,
            top-k and top-p) or "raw_logprobs" (log_softmax of the raw logits).
    Returns:
        (token id, log-prob of that token).
    """
    if logprobs_mode not in SUPPORTED_LOGPROBS_MODES:
        raise ValueError(
            f"actor_rollout_ref.rollout.logprobs_mode={logprobs_mode!r} is not supported by the hf rollout; "
            f"use one of {SUPPORTED_LOGPROBS_MODES}"
        )
    logits = logits.float()
    if spec.greedy:
        token = int(torch.argmax(logits))
        return token, float(torch.log_softmax(logits, dim=-1)[token])
    processed = filter_logits(logits / spec.temperature, spec.top_k, spec.top_p)
    processed_logprobs = torch.log_softmax(processed, dim=-1)
    token = int(torch.multinomial(processed_logprobs.exp(), 1, generator=generator))
    chosen = processed_logprobs if logprobs_mode == "processed_logprobs" else torch.log_softmax(logits, dim=-1)
    return token, float(chosen[token])
