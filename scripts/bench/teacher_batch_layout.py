#!/usr/bin/env python
"""Benchmark: the teacher batch over data-parallel ranks, and the bytes of the π_old pass's outputs per rank.

1. Teacher pass balance. A batch of the paper's shape (32 prompts x 8 rollouts) is sampled with a heavy-tailed
   length model (below); its SDPO-routed rows become teacher rows (teacher prompt with the sibling's answer as the
   demonstration, + the failed response). Tokens per rank are printed for verl's in-order split (what the teacher
   batch got before) and for srpo_verl's balanced order (srpo_verl.verl_ext.teacher_batch); with static
   micro-batches, the micro-batches per rank of the previous divisor rule against the padded batch.
2. π_old outputs. The logits processor's old-phase outputs are measured on a real call (Qwen3's 151,936-token
   vocabulary, K = 100) and scaled to a rank's tokens: K int64 ids per packed token (the previous layout) against
   three ids per int64 value (layout.pack_token_ids).

Length model (an assumption, stated: the paper reports means only, e.g. Qwen3-8B GRPO responses 820.8 tokens on
average, Table 8): prompts lognormal(median 200, sigma 0.5) capped at 2048; responses lognormal(median 600,
sigma 1.0) capped at 8192 (mean ~1000); per-prompt success probability uniform on [0, 1]; teacher template 30
tokens; teacher prompt capped at 10240.

    python scripts/bench/teacher_batch_layout.py [--ranks 8] [--seeds 5]
"""

from __future__ import annotations

import argparse
import math

import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu

from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.teacher_batch import dispatch_order, rank_tokens

PROMPTS, GROUP, MAX_PROMPT, MAX_RESPONSE, MAX_REPROMPT, TEMPLATE = 32, 8, 2048, 8192, 10240, 30


def lognormal(gen: torch.Generator, n: int, median: float, sigma: float, cap: int) -> list[int]:
    values = torch.exp(math.log(median) + sigma * torch.randn(n, generator=gen))
    return [max(1, min(cap, int(v))) for v in values]


def sample_batch(seed: int):
    """(per-sample sequence lengths of the main batch, teacher sequence lengths of its SDPO-routed rows)."""
    gen = torch.Generator().manual_seed(seed)
    prompts = lognormal(gen, PROMPTS, 200, 0.5, MAX_PROMPT)
    main, teacher = [], []
    for prompt in prompts:
        p_success = float(torch.rand(1, generator=gen))
        responses = lognormal(gen, GROUP, 600, 1.0, MAX_RESPONSE)
        correct = (torch.rand(GROUP, generator=gen) < p_success).tolist()
        main += [prompt + r for r in responses]
        demos = [r for r, ok in zip(responses, correct) if ok]
        if demos:
            for r, ok in zip(responses, correct):
                if not ok:
                    teacher.append(min(MAX_REPROMPT, prompt + TEMPLATE + demos[0]) + r)
    return main, teacher


def largest_divisor(rows: int, configured: int) -> int:
    """The micro-batch size the engine fell back to before the padding: the largest divisor of the rank's rows."""
    return max(d for d in range(1, min(rows, configured) + 1) if rows % d == 0)


def balance_table(ranks: int, seeds: int, micro: int = 4) -> None:
    print(f"Teacher pass, {ranks} ranks, {PROMPTS}x{GROUP} samples per step, {seeds} sampled steps; static "
          f"micro-batch size {micro}")
    print(f"{'seed':>4} {'rows':>5} {'tokens':>8} | {'max/mean tokens per rank':>24} {'':>8} | "
          f"{'micro-batches per rank':>22}")
    print(f"{'':>4} {'':>5} {'':>8} | {'in order':>24} {'balanced':>8} | {'divisor rule':>14} {'padded':>7}")
    ratios = {"order": [], "bal": []}
    for seed in range(seeds):
        _, teacher = sample_batch(seed)
        n = len(teacher)
        mean = sum(teacher) / ranks
        # before: routing order, padded with two-token rows to a multiple of the DP size
        in_order = list(range(n)) + [None] * (-n % ranks)
        per_rank_before = len(in_order) // ranks
        per_rank_after = len(dispatch_order(teacher, ranks, micro)) // ranks
        row = {"order": max(rank_tokens(in_order, teacher, ranks)) / mean,
               "bal": max(rank_tokens(dispatch_order(teacher, ranks), teacher, ranks)) / mean}
        for key, value in row.items():
            ratios[key].append(value)
        before_mb = per_rank_before // largest_divisor(per_rank_before, micro)
        after_mb = per_rank_after // min(micro, per_rank_after)
        print(f"{seed:>4} {n:>5} {sum(teacher):>8} | {row['order']:>24.3f} {row['bal']:>8.3f} | "
              f"{before_mb:>14} {after_mb:>7}")
    mean_of = {key: sum(v) / len(v) for key, v in ratios.items()}
    print(f"mean max/mean tokens per rank: in order {mean_of['order']:.3f} -> balanced {mean_of['bal']:.3f} "
          f"({mean_of['order'] / mean_of['bal']:.2f}x less on the slowest rank)")


def old_phase_bytes_per_token(k: int, vocab: int) -> tuple[float, float]:
    """(measured bytes per packed token of the old-phase outputs, the previous layout's: 4 + 8k)."""
    prompt, response = [5, 7], [6, 4]
    rows = len(prompt)
    gen = torch.Generator().manual_seed(0)
    nested = lambda xs: torch.nested.as_nested_tensor(xs, layout=torch.jagged)  # noqa: E731
    data = TensorDict({
        "prompts": nested([torch.randint(0, vocab, (p,), generator=gen) for p in prompt]),
        "responses": nested([torch.randint(0, vocab, (r,), generator=gen) for r in response]),
        "input_ids": nested([torch.randint(0, vocab, (p + r,), generator=gen) for p, r in zip(prompt, response)]),
        L.DISTILL_MASK: nested([torch.ones(r) for r in response]),
    }, batch_size=rows)
    tu.assign_non_tensor(data, srpo_phase="old")
    nnz = sum(prompt) + sum(response)
    logits = torch.randn(1, nnz, vocab, generator=gen)
    outputs = L.srpo_loss(SRPOSettings(topk=k, logits_chunk_size=8), None, data=data, student_logits=logits)
    measured = sum(v.numel() * v.element_size() for v in outputs.values()) / nnz
    return measured, 4 + 8 * k


def bytes_table(ranks: int, seeds: int, k: int, vocab: int) -> None:
    after, before = old_phase_bytes_per_token(k, vocab)
    tokens = [sum(sample_batch(seed)[0]) / ranks for seed in range(seeds)]
    typical = sum(tokens) / len(tokens)
    longest = PROMPTS * GROUP / ranks * (MAX_PROMPT + MAX_RESPONSE)
    print(f"\npi_old outputs (K={k}, vocabulary {vocab:,}): {before:.0f} -> {after:.0f} bytes per packed token "
          f"(measured), {before / after:.2f}x less")
    for label, n in (("sampled lengths", typical), ("every sequence at its cap", longest)):
        print(f"  per rank, {label}: {n:,.0f} tokens: {n * before / 2**20:,.1f} MiB -> {n * after / 2**20:,.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--topk", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=151936)
    args = parser.parse_args()
    balance_table(args.ranks, args.seeds)
    bytes_table(args.ranks, args.seeds, args.topk, args.vocab)


if __name__ == "__main__":
    main()
