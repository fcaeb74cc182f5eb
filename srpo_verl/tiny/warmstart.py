"""Deterministic supervised warm start of the tiny policy, and its accuracy measured by sampling.

A randomly initialised model never writes ``<answer>X</answer>``, so every GRPO/SRPO group would be all-wrong and
get zero gradient. A teacher-forced pass teaches the format and the task, towards *soft* targets where the data
asks for them: on the student prompt each answer digit is right with a set probability and a near miss otherwise
(``srpo_verl.tiny.task``), so the accuracy *under sampling at temperature 1* (what the RL rollout sees) converges to
a value set by the data, in a middle band with mixed groups for RL (and SRPO's routing) to work on, instead of
depending on where an early stop lands on a given machine.

Everything here is plain torch on CPU: fixed seeds, one thread-count-independent order of operations per call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import math

import torch


# A target distribution over tokens for one response position: (token id, probability) pairs summing to 1.
TokenDistribution = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class EncodedExample:
    """One supervised pair in token ids: the templated prompt and the response ending with eos.

    ``targets`` (optional, one entry per response token): the distribution the model is trained towards at that
    position, instead of the one-hot of ``response_ids[k]`` (an entry ``None`` keeps the one-hot). The token fed
    in at that position (teacher forcing) is then drawn from the same distribution, so the model also learns what
    follows a drawn near miss.
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    targets: tuple[TokenDistribution | None, ...] | None = None

    def __post_init__(self):
        if self.targets is not None and len(self.targets) != len(self.response_ids):
            raise ValueError(f"targets has {len(self.targets)} entries for {len(self.response_ids)} response tokens")


def position_distributions(example: EncodedExample) -> list[TokenDistribution]:
    """The target distribution at every response position of ``example`` (one-hot where none is given)."""
    targets = example.targets or (None,) * len(example.response_ids)
    return [dist if dist is not None else ((token, 1.0),) for token, dist in zip(example.response_ids, targets)]


def draw_response(example: EncodedExample, generator: torch.Generator) -> list[int]:
    """The response tokens fed in for ``example``: each position drawn from its target distribution."""
    drawn = []
    for dist in position_distributions(example):
        if len(dist) == 1:
            drawn.append(dist[0][0])
            continue
        probs = torch.tensor([p for _, p in dist], dtype=torch.float64)
        drawn.append(dist[int(torch.multinomial(probs, 1, generator=generator))][0])
    return drawn


def collate_soft_targets(examples: Sequence[EncodedExample], pad_id: int, vocab_size: int,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded prompt + drawn response, with the target distribution of every next token.

    Returns ``input_ids`` [B, T] (int64) and ``targets`` [B, T, V] (float32): ``targets[b, t]`` is the distribution
    the logits at position t are trained towards (the next token's), all zeros on prompt and pad positions. Right
    padding needs no attention mask: causal attention never lets a real token see the pads after it.
    """
    rows = [(list(e.prompt_ids), draw_response(e, generator), position_distributions(e)) for e in examples]
    width = max(len(prompt) + len(response) for prompt, response, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(rows), width, vocab_size), dtype=torch.float32)
    for row, (prompt, response, dists) in enumerate(rows):
        sequence = prompt + response
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        for k, dist in enumerate(dists):
            for token, probability in dist:
                targets[row, len(prompt) - 1 + k, token] = probability
    return input_ids, targets


def soft_target_loss(model: torch.nn.Module, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy to the target distributions over the positions that have one (scalar).

    Shapes: input_ids [B, T], targets [B, T, V]. With one-hot targets this is the usual next-token loss.
    """
    log_probs = torch.log_softmax(model(input_ids=input_ids).logits.float(), dim=-1)
    has_target = targets.sum(-1) > 0
    return -(targets * log_probs).sum(-1)[has_target].mean()


def target_entropy(examples: Sequence[EncodedExample]) -> float:
    """The mean per-token entropy of the targets (nats): the loss a perfectly converged model reaches."""
    entropies = [-sum(p * math.log(p) for _, p in dist if p > 0)
                 for e in examples for dist in position_distributions(e)]
    return sum(entropies) / len(entropies)


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def supervised_warmstart(
    model: torch.nn.Module,
    examples: Sequence[EncodedExample],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    pad_id: int,
    warmup_steps: int = 20,
) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps (warm-up + cosine decay) on seeded batches.

    Returns the per-step losses. The same model, examples, hyper-parameters and seed give identical weights. The
    decay to 0 lets the model settle at the targets' distribution instead of wherever the last step left it.
    """
    if steps < 0 or batch_size < 1 or not examples:
        raise ValueError(f"warm start needs steps >= 0, batch_size >= 1 and examples; got {steps}, {batch_size}, "
                         f"{len(examples)} examples")
    vocab_size = model.get_output_embeddings().weight.shape[0]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, min(warmup_steps, steps))
        picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        input_ids, targets = collate_soft_targets([examples[i] for i in picks], pad_id, vocab_size, generator)
        loss = soft_target_loss(model, input_ids, targets)
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
