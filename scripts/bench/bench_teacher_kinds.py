#!/usr/bin/env python
"""Benchmark: `srpo.teacher` = ema | live | base through the real verl trainer on CPU (tiny Qwen3, synthetic task).

One run per kind on the same seed (same step-1 batch: at step 1 all three teachers hold the initial weights, so
their step-1 teacher metrics must agree), each sampled every 0.2 s for the resident memory (RSS) of its process
tree (driver, Ray's head processes and the worker that holds the actor and, for ema / base, the teacher engine).
Prints, per kind: mean over steps ≥ 2 of the step time, the teacher pass (timing_s/srpo_teacher), the EMA
(timing_s/srpo_ema) and the update; the peak RSS of the largest process (the FSDP worker) and of the whole tree;
and the teacher engine's parameter bytes (fp32 copy of the model: what `live` does not allocate).

    heavy .venv/bin/python scripts/bench/bench_teacher_kinds.py --assets /work/assets_h1 --steps 5 --out runs/kinds \
        actor_rollout_ref.actor.optim.lr=2e-4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import psutil

from srpo_verl.bench.cpu_run import CpuRun

KINDS = ("ema", "live", "base")
TIMERS = ("step", "srpo_teacher", "srpo_ema", "update_actor", "old_log_prob", "gen")


def mean_after_first(run: CpuRun, key: str) -> float | None:
    """Mean of ``key`` over the logged steps ≥ 2 (step 1 includes the warm-up); None when never logged."""
    values = [m[key] for step, m in run.steps.items() if step >= 2 and key in m]
    return statistics.fmean(values) if values else None


class TreeRSS:
    """Peak RSS of this process's descendants (one trainer run at a time), sampled every ``period`` seconds."""

    def __init__(self, period: float = 0.2):
        self.period, self.peak_total, self.peak_process, self.peak_name = period, 0, 0, ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    rss, name = child.memory_info().rss, " ".join(child.cmdline()[:2])[:60]
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                total += rss
                if rss > self.peak_process:
                    self.peak_process, self.peak_name = rss, name
            self.peak_total = max(self.peak_total, total)
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def model_bytes_fp32(model_dir: Path) -> int:
    """Parameters of the model × 4 bytes (the teacher engine's fp32 copy), counted on the meta device (a tied
    embedding / LM head counted once)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return 4 * sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, required=True, help="tiny assets dir (srpo_verl.tiny.build --out)")
    parser.add_argument("--out", type=Path, default=Path("runs/teacher_kinds"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--method", default="srpo")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (e.g. optim.lr)")
    args = parser.parse_args()
    model, train, test = args.assets / "model", args.assets / "data" / "train.parquet", args.assets / "data" / "test.parquet"

    results = {}
    for kind in args.kinds:
        print(f"[bench] teacher={kind}: {args.steps} steps ...", flush=True)
        with TreeRSS() as rss:
            run = CpuRun(args.out / kind, model, train, test, f"srpo.method={args.method}", f"srpo.teacher={kind}",
                         f"trainer.total_training_steps={args.steps}", *args.overrides, timeout_s=3600)
        run.check(list(range(1, args.steps + 1)))
        results[kind] = {
            "wall_s": run.wall_s,
            **{f"timing_s/{t}": mean_after_first(run, f"timing_s/{t}") for t in TIMERS},
            "peak_rss_largest_process_MiB": rss.peak_process / 2**20, "largest_process": rss.peak_name,
            "peak_rss_tree_MiB": rss.peak_total / 2**20,
            "step1": {k: run.steps[1].get(k) for k in ("srpo/teacher/entropy_mean", "srpo/teacher/topk_mass",
                                                       "srpo/loss/distill", "actor/grad_norm")},
        }
    teacher_bytes = model_bytes_fp32(model)
    print()
    print(f"teacher engine parameters (fp32): {teacher_bytes / 2**20:.2f} MiB ({teacher_bytes // 4} parameters)")
    header = f"{'kind':<5} {'wall s':>7} " + " ".join(f"{t + ' s':>15}" for t in TIMERS) + \
        f" {'worker RSS MiB':>15} {'tree RSS MiB':>13}"
    print(header)
    print("-" * len(header))
    for kind, r in results.items():
        cells = " ".join(f"{r[f'timing_s/{t}']:>15.3f}" if r[f"timing_s/{t}"] is not None else f"{'-':>15}"
                         for t in TIMERS)
        print(f"{kind:<5} {r['wall_s']:>7.1f} {cells} {r['peak_rss_largest_process_MiB']:>15.0f} "
              f"{r['peak_rss_tree_MiB']:>13.0f}")
    print("step-1 teacher metrics (all kinds hold the initial weights at step 1):")
    for kind, r in results.items():
        print(f"  {kind:<5} {r['step1']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"teacher_param_bytes_fp32": teacher_bytes, **results},
                                                      indent=1))
    print(f"[bench] wrote {args.out / 'results.json'} (host: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
