#!/usr/bin/env python
"""Benchmark: tile width and warps of the fused Triton log-prob kernels (srpo_verl.core.logprobs_triton), CUDA only.

Times the forward kernel (log Z + entropy, one read of the logits) and the backward kernel (one read, one write) for a
few (BLOCK, num_warps) settings side by side, with the effective memory bandwidth each reaches, so that the module's
defaults can be checked on a new card.

    python scripts/bench/bench_triton_tiles.py --tokens 4096 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics

import torch

SETTINGS = ((1024, 4), (2048, 4), (2048, 8), (4096, 8), (4096, 16), (8192, 16))


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_triton_tiles.py needs a CUDA device")
    from srpo_verl.core import logprobs_triton as fused

    dtype = getattr(torch, args.dtype)
    logits = torch.randn(args.tokens, args.vocab, device="cuda", dtype=dtype)
    grad = torch.empty_like(logits)
    size = logits.numel() * logits.element_size()
    print(f"device: {torch.cuda.get_device_name()}   N={args.tokens}   V={args.vocab}   {args.dtype}   "
          f"logits {size / 2**30:.2f} GiB   defaults BLOCK={fused.FORWARD_BLOCK}/{fused.BACKWARD_BLOCK} "
          f"warps={fused.NUM_WARPS}")
    header = f"{'BLOCK':>6} {'warps':>6} {'forward ms':>11} {'fwd GB/s':>9} {'backward ms':>12} {'bwd GB/s':>9}"
    print(header)
    print("-" * len(header))
    for block, warps in SETTINGS:
        lz, h = fused.row_stats(logits, None, 1.0, block=block, num_warps=warps)
        g = torch.ones_like(lz)
        t_fwd = timed(lambda: fused.row_stats(logits, None, 1.0, block=block, num_warps=warps), args.repeats)
        t_bwd = timed(lambda: fused.dense_grad(logits, None, grad, 1.0, lz, h, g, g, block=block, num_warps=warps),
                      args.repeats)
        print(f"{block:>6} {warps:>6} {t_fwd * 1e3:>11.3f} {size / t_fwd / 1e9:>9.0f} {t_bwd * 1e3:>12.3f} "
              f"{2 * size / t_bwd / 1e9:>9.0f}")


if __name__ == "__main__":
    main()
