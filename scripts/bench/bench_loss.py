#!/usr/bin/env python
"""Benchmark: the routed SRPO loss forward + backward against verl's vanilla GRPO loss on the same tokens.

Both start from the same [N, V] logits with gradient (what the engine holds) and end with a backward:
  verl   log-probs of the sampled tokens (verl's logprobs_from_logits) → compute_policy_loss_vanilla
  srpo   the same log-probs → GRPO surrogate on GRPO rows, plus on the routed rows the student's log-probs at
         the stored top-K ids (srpo_verl.core.gather_logprobs_with_entropy, chunked), the tail-bucket JSD against
         the teacher, IS clip and entropy weights → one token-mean (srpo_verl.core.routed_policy_loss)
The table gives the time of each and the ratio, for a range of routed fractions (0 = all GRPO rows).

    python scripts/bench/bench_loss.py                      # CPU, V = 32,768 to keep it short
    python scripts/bench/bench_loss.py --device cuda --vocab 151936 --rows 32 --length 1024
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import median_seconds


def build(rows: int, length: int, vocab: int, k: int, routed_frac: float, device: str, dtype: torch.dtype):
    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.empty(rows * length, vocab, device=device, dtype=dtype).normal_(generator=gen)
    labels = torch.randint(0, vocab, (rows * length,), generator=gen, device=device)
    topk_ids = torch.randint(0, vocab, (rows, length, k), generator=gen, device=device)
    teacher = torch.log_softmax(torch.randn(rows, length, k, generator=gen, device=device), -1) - 1.0
    distill = torch.zeros(rows, dtype=torch.bool, device=device)
    distill[: int(round(routed_frac * rows))] = True
    return dict(
        logits=logits, labels=labels, topk_ids=topk_ids, teacher=teacher, distill=distill,
        old=torch.randn(rows, length, generator=gen, device=device) * 0.01 - 3.0,
        adv=torch.where(distill, 0.0, 0.5).to(device),
        mask=torch.ones(rows, length, device=device),
        weights=torch.rand(rows, length, generator=gen, device=device) + 0.5,
        rows=rows, length=length,
    )


def sampled_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """verl's logprobs_from_logits where verl is installed; the same log_softmax + gather otherwise (GPU machines
    lent to this project have torch only)."""
    try:
        from verl.utils.torch_functional import logprobs_from_logits
    except ImportError:
        return torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return logprobs_from_logits(logits, labels)


def grpo_step(b) -> None:
    """verl's compute_policy_loss_vanilla (token-mean, clip 0.2 / 0.28); without verl, srpo_verl.core's GRPO loss,
    which tests/unit/test_losses.py checks equal to it."""
    leaf = b["logits"].detach().requires_grad_()
    log_prob = sampled_logprobs(leaf, b["labels"]).view(b["rows"], b["length"])
    try:
        from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla
        from verl.workers.config.actor import ActorConfig
    except ImportError:
        from srpo_verl.core import RoutedLossConfig, routed_policy_loss

        no_distill = torch.zeros_like(b["distill"])
        loss = routed_policy_loss(RoutedLossConfig(method="grpo"), log_prob, b["old"], b["adv"], b["mask"],
                                  no_distill).loss
    else:
        config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size=1, clip_ratio=0.2,
                             clip_ratio_low=0.2, clip_ratio_high=0.28)
        loss, _ = compute_policy_loss_vanilla(b["old"], log_prob, b["adv"].unsqueeze(-1).expand_as(log_prob),
                                              b["mask"], "token-mean", config)
    loss.backward()


def srpo_step(b, chunk: int, backend: str) -> None:
    from srpo_verl.core import RoutedLossConfig, distillation_token_loss, gather_logprobs_with_entropy
    from srpo_verl.core import routed_policy_loss

    leaf = b["logits"].detach().requires_grad_()
    rows, length = b["rows"], b["length"]
    log_prob = sampled_logprobs(leaf, b["labels"]).view(rows, length)
    routed = b["distill"].repeat_interleave(length).nonzero().flatten()
    ids = b["topk_ids"].reshape(rows * length, -1)[routed]
    student, _ = gather_logprobs_with_entropy(leaf, ids, chunk_size=chunk, rows=routed, backend=backend)
    per_token = distillation_token_loss(student, b["teacher"].reshape(rows * length, -1)[routed])
    divergence = torch.zeros(rows * length, device=leaf.device).index_copy(0, routed, per_token)
    out = routed_policy_loss(RoutedLossConfig(method="srpo"), log_prob, b["old"], b["adv"], b["mask"], b["distill"],
                             entropy_weights=b["weights"], divergence=divergence.view(rows, length))
    out.loss.backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.4, 1.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=["auto", "chunked", "triton"],
                        help="srpo_verl.core log-prob backend for the routed rows")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {name}   torch {torch.__version__}   tokens {args.rows}×{args.length}   V={args.vocab}   "
          f"k={args.k}   logits {args.dtype}")
    try:
        import verl  # noqa: F401

        reference = "verl GRPO"
    except ImportError:
        reference = "GRPO (core; no verl here)"
        print("verl is not installed here: the GRPO reference is srpo_verl.core's GRPO loss (tested equal to verl's)")
    from srpo_verl.core.logprobs import resolve_backend

    print(f"log-prob backend on routed rows: {resolve_backend(args.backend, torch.empty(0, device=args.device))}")
    header = f"{'routed frac':>11} {'GRPO ms':>13} {'SRPO ms':>9} {'SRPO / GRPO':>12}"
    print(header)
    print("-" * len(header))
    for frac in args.fractions:
        b = build(args.rows, args.length, args.vocab, args.k, frac, args.device, dtype)
        t_verl = median_seconds(lambda: grpo_step(b), args.device, args.repeats)
        t_srpo = median_seconds(lambda: srpo_step(b, args.chunk, args.backend), args.device, args.repeats)
        print(f"{frac:>11.2f} {t_verl * 1e3:>13.1f} {t_srpo * 1e3:>9.1f} {t_srpo / t_verl:>12.2f}")
    print(f"GRPO = {reference}. Both include the log-prob pass from the logits and the backward into them; SRPO adds the top-K gather "
          "+ JSD on routed rows only.")


if __name__ == "__main__":
    main()
