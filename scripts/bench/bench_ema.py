#!/usr/bin/env python
"""Benchmark: the EMA teacher update (ema_update_teacher) before and after srpo_verl.core.ema, side by side.

The tensors are one rank's FSDP2 shards (Shard(0), rank 0) of Qwen3-8B's 399 parameters, over as many ranks as
brings the rank's values nearest --values (2.5e8 by default: 32 ranks; a rank of the paper's 8-rank run holds
1.02e9). Teacher fp32, actor fp32 (verl's training dtype), both in this process's memory, as on the CPU backend.
  before   the update as it was: per parameter (θ − θ_T)·rate into a new tensor, θ_T += it, max|Δ| from abs().max()
  before+copy  the same with the actor shard first copied into a fresh buffer (what `.to("cpu")` of a GPU shard does)
  after    srpo_verl.core.ema.ema_update_: actor finiteness (aminmax) + chunked d = θ − θ_T, aminmax, θ_T += rate·d
  lerp     torch._foreach_lerp_ alone (no max|Δ|, no finiteness check): the floor for an update on this memory
  copy     θ_T.copy_(θ): the machine's copy bandwidth, for reference (with --device cuda: one D2H of the actor)
With --device cuda the actor is on the GPU and the teacher in pinned host memory (verl's forward-only engine), and
the cases are before (its .to("cpu") per shard, then the host arithmetic), after and copy.
GB/s counts the 12 bytes per value an update must move (read θ, read θ_T, write θ_T; 8 for copy).
Peak memory ≈ 2 × 4 × values bytes (+ 2 parameters' temporaries for `before`): 2.2 GB at 2.5e8.

    python scripts/bench/bench_ema.py                        # 2.5e8 values, 1 and 2 threads, median of 3
    python scripts/bench/bench_ema.py --values 5e7 --threads 1 --repeats 1
    python scripts/bench/bench_ema.py --device cuda --values 1.02e9 --threads 1   # one 8B rank (8 GB host RAM)
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch
from timing import median_seconds

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from srpo_verl.core.ema import ema_update_  # noqa: E402

#: Qwen3-8B (untied embeddings): hidden 4096, 36 layers, MLP 12288, 32 query / 8 key-value heads of 128, V 151,936.
QWEN3_8B = dict(hidden=4096, layers=36, mlp=12288, q=32 * 128, kv=8 * 128, head_dim=128, vocab=151936)
PAPER_VALUES_PER_RANK = 1.02e9  # Qwen3-8B over 8 ranks


def qwen3_shapes(m: dict) -> list[tuple[int, ...]]:
    h = m["hidden"]
    layer = [(m["q"], h), (m["kv"], h), (m["kv"], h), (h, m["q"]), (m["head_dim"],), (m["head_dim"],),
             (m["mlp"], h), (m["mlp"], h), (h, m["mlp"]), (h,), (h,)]
    return [(m["vocab"], h)] + layer * m["layers"] + [(h,), (m["vocab"], h)]


def rank0_shards(shapes: list[tuple[int, ...]], ranks: int) -> list[tuple[int, ...]]:
    return [(math.ceil(s[0] / ranks),) + s[1:] for s in shapes]


def before(teacher, actor, rate: float, copy_actor: bool) -> float:
    """The update as it was (worker.ema_update_teacher before srpo_verl.core.ema)."""
    largest = []
    with torch.no_grad():
        for target, actor_param in zip(teacher, actor):
            source = actor_param.clone() if copy_actor else actor_param.to(device=target.device, dtype=target.dtype)
            delta = (source - target).mul_(rate)
            target.add_(delta)
            if delta.numel():
                largest.append(delta.abs().max())
    return float(torch.stack(largest).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=float, default=2.5e8, help="target values per rank")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: actor on the GPU, teacher in pinned host memory (verl's forward-only engine)")
    args = parser.parse_args()

    shapes = qwen3_shapes(QWEN3_8B)
    total = sum(math.prod(s) for s in shapes)
    ranks = max(1, round(total / args.values))
    shards = rank0_shards(shapes, ranks)
    values = sum(math.prod(s) for s in shards)
    gen = torch.Generator().manual_seed(0)
    teacher = [torch.randn(s, generator=gen) for s in shards]
    actor = [t + 0.01 * torch.randn(s, generator=gen) for t, s in zip(teacher, shards)]
    if args.device == "cuda":
        teacher = [t.pin_memory() for t in teacher]
        actor = [a.cuda() for a in actor]
    print(f"{args.device}: Qwen3-8B rank-0 shards over {ranks} ranks: {len(shards)} tensors, {values:.3e} fp32 values "
          f"({values * 4 / 1e9:.2f} GB per copy), rate {args.rate}, median of {args.repeats}; torch {torch.__version__}")

    cases = {
        "before": lambda: before(teacher, actor, args.rate, copy_actor=False),
        "before+copy": lambda: before(teacher, actor, args.rate, copy_actor=True),
        "after": lambda: ema_update_(teacher, actor, args.rate),
        "lerp": lambda: torch._foreach_lerp_(teacher, actor, args.rate),
        "copy": lambda: torch._foreach_copy_(teacher, actor),
    }
    if args.device == "cuda":  # before = the old code's .to("cpu") of each GPU shard, then the host arithmetic
        cases = {"before": cases["before"], "after": cases["after"],
                 "copy": lambda: [t.copy_(a, non_blocking=True) for t, a in zip(teacher, actor)]}
    moved = {name: (8 if name == "copy" else 12) * values for name in cases}
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        seconds = {name: median_seconds(fn, args.device, args.repeats) for name, fn in cases.items()}
        rows.append((threads, seconds))
    print("\n| threads | case | s | GB/s | before / case | s at 1.02e9 values (8B, 8 ranks) |")
    print("|---|---|---|---|---|---|")
    for threads, seconds in rows:
        for name, s in seconds.items():
            print(f"| {threads} | {name} | {s:.3f} | {moved[name] / s / 1e9:.1f} | {seconds['before'] / s:.1f} | "
                  f"{s * PAPER_VALUES_PER_RANK / values:.2f} |")


if __name__ == "__main__":
    main()
