#!/usr/bin/env python
"""Benchmark: chunked top-k / gather log-probs + full-vocabulary entropy vs a plain log_softmax reference.

For each token count N it measures, side by side in one run, on one device:
  student  topk_logprobs_with_entropy(logits, k)          vs  log_softmax(logits) → topk + entropy
  teacher  gather_logprobs_with_entropy(logits, ids)      vs  log_softmax(logits) → gather + entropy
  backward gather (student at stored ids) fwd+bwd          vs  log_softmax → gather through autograd
for each backend (``chunked`` PyTorch, and the fused ``triton`` kernels where triton and CUDA are available), and
prints time (median of repeats) and *extra* peak memory over the logits (and their gradient) that exist anyway.
Targets (issue "Performance"): extra peak ≤ chunk × V × 4 bytes (the table allows 10% for the outputs and the
allocator), throughput ≥ 0.8× the plain log_softmax pass.

Memory: CUDA uses torch.cuda.max_memory_allocated; on CPU each case runs in a fresh subprocess and reports its
peak RSS growth (VmHWM) over a baseline taken after the inputs are allocated.

    python scripts/bench/bench_logprobs.py                 # CPU, V = 151,936, N in 256 512 1024
    python scripts/bench/bench_logprobs.py --device cuda --tokens 1024 4096 16384 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import torch
from timing import median_seconds

QWEN3_VOCAB = 151_936
PASSES = ("student", "teacher", "backward")


def make_inputs(tokens: int, vocab: int, k: int, dtype: torch.dtype, device: str):
    """Logits filled in place (no temporaries, so a process's peak RSS is exactly the inputs before a case runs)."""
    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.empty(tokens, vocab, dtype=dtype, device=device).normal_(generator=gen).mul_(2)
    ids = torch.randint(0, vocab, (tokens, k), generator=gen, device=device)
    return logits, ids


def run_case(case: str, logits: torch.Tensor, ids: torch.Tensor, k: int, chunk: int):
    """case = "<pass>_<impl>": pass in PASSES, impl "plain" or a backend of srpo_verl.core.logprobs."""
    from srpo_verl.core import gather_logprobs_with_entropy, topk_logprobs_with_entropy

    name, impl = case.split("_", 1)
    if impl == "plain":
        if name == "backward":
            leaf = logits.detach().requires_grad_()
            torch.log_softmax(leaf.float(), dim=-1).gather(-1, ids).sum().backward()
            return leaf.grad
        with torch.no_grad():
            logp = torch.log_softmax(logits.float(), dim=-1)
            entropy = -(logp.exp() * logp).sum(-1)
            picked = logp.topk(k, dim=-1) if name == "student" else logp.gather(-1, ids)
            return picked, entropy
    if name == "student":
        with torch.no_grad():
            return topk_logprobs_with_entropy(logits, k, chunk_size=chunk, backend=impl)
    if name == "teacher":
        with torch.no_grad():
            return gather_logprobs_with_entropy(logits, ids, chunk_size=chunk, backend=impl)
    # the student's update: log-probs at the stored ids, with gradient (its entropy is not differentiated)
    leaf = logits.detach().requires_grad_()
    logp, _ = gather_logprobs_with_entropy(leaf, ids, chunk_size=chunk, backend=impl)
    logp.sum().backward()
    return leaf.grad


def time_case(case, logits, ids, k, chunk, device, repeats) -> float:
    return median_seconds(lambda: run_case(case, logits, ids, k, chunk), device, repeats)


def cuda_extra_peak(case, logits, ids, k, chunk) -> int:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = run_case(case, logits, ids, k, chunk)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    if case.startswith("backward"):
        peak -= out.numel() * out.element_size()  # the logits' gradient exists in any training step
    del out
    return peak


def cpu_extra_peak(args, case: str) -> int:
    """Run one case in a fresh process; extra peak RSS in bytes over the process with its inputs allocated."""
    cmd = [sys.executable, __file__, "--_child", case, "--tokens", str(args._n), "--vocab", str(args.vocab),
           "--k", str(args.k), "--chunk", str(args.chunk), "--dtype", args.dtype]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["extra_peak"])


def high_water_rss() -> int:
    """This process's peak resident set in bytes (VmHWM: per address space, so unlike ru_maxrss it does not
    carry the parent's peak across fork + exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args) -> None:
    dtype = getattr(torch, args.dtype)
    logits, ids = make_inputs(args.tokens[0], args.vocab, args.k, dtype, "cpu")
    base = high_water_rss()
    out = run_case(args._child, logits, ids, args.k, args.chunk)
    peak = high_water_rss() - base
    if args._child.startswith("backward"):
        peak -= out.numel() * out.element_size()
    print(json.dumps({"extra_peak": max(peak, 0)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--vocab", type=int, default=QWEN3_VOCAB)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=256, help="rows per fp32 chunk")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args)
        return
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    budget = args.chunk * args.vocab * 4
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device_name}   torch {torch.__version__}   V={args.vocab}   k={args.k}   chunk={args.chunk} rows "
          f"(budget chunk×V×4 = {budget / 2**20:.0f} MiB)   logits dtype {args.dtype}")
    from srpo_verl.core.logprobs import resolve_backend

    backends = ["chunked"]
    if args.device == "cuda" and resolve_backend("auto", torch.empty(0, 1, device="cuda")) == "triton":
        backends.append("triton")
    header = (f"{'N':>6} {'pass':<9} {'backend':<8} {'ms':>9} {'plain ms':>9} {'speed ×':>8} "
              f"{'extra MiB':>10} {'plain extra MiB':>16} {'≤ 1.1 budget':>13}")
    print(header)
    print("-" * len(header))
    for n in args.tokens:
        args._n = n
        logits, ids = make_inputs(n, args.vocab, args.k, dtype, args.device)
        for name in PASSES:
            plain = f"{name}_plain"
            t_plain = time_case(plain, logits, ids, args.k, args.chunk, args.device, args.repeats)
            m_plain = extra_peak(args, plain, logits, ids)
            for backend in backends:
                case = f"{name}_{backend}"
                t = time_case(case, logits, ids, args.k, args.chunk, args.device, args.repeats)
                m = extra_peak(args, case, logits, ids)
                print(f"{n:>6} {name:<9} {backend:<8} {t * 1e3:>9.2f} {t_plain * 1e3:>9.2f} {t_plain / t:>8.2f} "
                      f"{m / 2**20:>10.1f} {m_plain / 2**20:>16.1f} {'yes' if m <= 1.1 * budget else 'NO':>13}")
        del logits, ids
    print("speed × = plain time / backend time (target ≥ 0.8); extra = peak memory beyond the logits "
          "(and, for backward, their gradient).")
    if args.device == "cuda" and "triton" not in backends:
        print("triton is not importable here: only the chunked backend was measured.")


def extra_peak(args, case: str, logits: torch.Tensor, ids: torch.Tensor) -> int:
    if args.device == "cuda":
        return cuda_extra_peak(case, logits, ids, args.k, args.chunk)
    return cpu_extra_peak(args, case)


if __name__ == "__main__":
    main()
