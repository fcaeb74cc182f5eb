"""Deterministic supervised warm start of the tiny policy, and its accuracy measured by sampling.

A randomly initialised model never writes ``<answer>X</answer>``, so every GRPO/SRPO group would be all-wrong and
get zero gradient. A short teacher-forced pass on (prompt, reference response) pairs teaches the format and part of
the task; it is stopped early on purpose so that accuracy *under sampling at temperature 1* (what the RL rollout
sees) stays in a middle band, with mixed groups left for RL (and SRPO's routing) to work on.

Everything here is plain torch on CPU: fixed seeds, one thread-count-independent order of operations per call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class EncodedExample:
    """One supervised pair in token ids: the templated prompt and the response ending with eos."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]


def collate_right_padded(examples: Sequence[EncodedExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad prompt+response sequences for teacher forcing.

    Returns ``input_ids`` [B, T] (int64) and ``labels`` [B, T] (int64) with -100 on prompt and pad positions, so the
    loss covers response tokens only. Right padding needs no attention mask: causal attention never lets a real
    token see the pads after it.
    """
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in examples]
    width = max(lengths)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        sequence = list(example.prompt_ids) + list(example.response_ids)
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        start = len(example.prompt_ids)
        labels[row, start : len(sequence)] = torch.tensor(example.response_ids)
    return input_ids, labels


def response_token_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over response tokens (scalar). Shapes: input_ids, labels [B, T]."""
    logits = model(input_ids=input_ids).logits[:, :-1]
    targets = labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def supervised_warmstart(
    model: torch.nn.Module,
    examples: Sequence[EncodedExample],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    pad_id: int,
) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps on batches drawn with a seeded generator.

    Returns the per-step losses. The same model, examples, hyper-parameters and seed give identical weights.
    """
    if steps < 0 or batch_size < 1 or not examples:
        raise ValueError(f"warm start needs steps >= 0, batch_size >= 1 and examples; got {steps}, {batch_size}, "
                         f"{len(examples)} examples")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        input_ids, labels = collate_right_padded([examples[i] for i in picks], pad_id)
        loss = response_token_loss(model, input_ids, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def sample_responses(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> list[list[int]]:
    """Sample one response per prompt (plain ancestral sampling, no top-k/top-p), like the RL rollout.

    Prompts of equal length are batched together, so no padding or attention mask is needed. Each response stops
    after its first eos (which is kept) or after ``max_new_tokens`` tokens. Returns token id lists in prompt order.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        by_length[len(prompt)].append(index)
    responses: list[list[int]] = [[] for _ in prompts]
    model.eval()
    for length in sorted(by_length):
        indices = by_length[length]
        sequences = torch.tensor([list(prompts[i]) for i in indices], dtype=torch.long)
        finished = torch.zeros(len(indices), dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits = model(input_ids=sequences).logits[:, -1].float() / temperature
            next_ids = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)
            next_ids = torch.where(finished, torch.full_like(next_ids, eos_id), next_ids)
            for row, token in enumerate(next_ids.tolist()):
                if not finished[row]:
                    responses[indices[row]].append(token)
            finished |= next_ids == eos_id
            sequences = torch.cat([sequences, next_ids[:, None]], dim=1)
            if bool(finished.all()):
                break
    return responses


@dataclass(frozen=True)
class SampledAccuracy:
    """Accuracy of ``samples_per_prompt`` temperature-1 samples per prompt.

    ``accuracy``: fraction of all samples that are correct; ``mixed_group_fraction``: fraction of prompts whose
    samples are neither all right nor all wrong (the groups where GRPO has signal and SRPO routes to SDPO);
    ``format_rate``: fraction of samples that contain ``<answer>...</answer>``.
    """

    accuracy: float
    mixed_group_fraction: float
    format_rate: float
    num_prompts: int
    samples_per_prompt: int


def measure_sampled_accuracy(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    ground_truths: Sequence[str],
    *,
    decode: Callable[[list[int]], str],
    is_correct: Callable[[str, str], bool],
    has_answer_block: Callable[[str], bool],
    samples_per_prompt: int,
    max_new_tokens: int,
    eos_id: int,
    seed: int,
) -> SampledAccuracy:
    """Sample ``samples_per_prompt`` responses per prompt at temperature 1 and score them with ``is_correct``."""
    generator = torch.Generator().manual_seed(seed)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    texts = [decode(r) for r in sample_responses(model, repeated, max_new_tokens=max_new_tokens, eos_id=eos_id,
                                                 generator=generator)]
    correct = [is_correct(t, ground_truths[i // samples_per_prompt]) for i, t in enumerate(texts)]
    mixed = 0
    for p in range(len(prompts)):
        group = correct[p * samples_per_prompt : (p + 1) * samples_per_prompt]
        mixed += int(0 < sum(group) < len(group))
    return SampledAccuracy(
        accuracy=sum(correct) / len(correct),
        mixed_group_fraction=mixed / len(prompts),
        format_rate=sum(has_answer_block(t) for t in texts) / len(texts),
        num_prompts=len(prompts),
        samples_per_prompt=samples_per_prompt,
    )
