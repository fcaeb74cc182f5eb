#!/usr/bin/env python
"""Benchmark: GRPO vs SDPO vs SRPO through the real verl trainer on CPU (tiny Qwen3, synthetic task).

Runs the three methods one after the other on the same seed and prints, side by side:
  * per-step time (mean over steps ≥ 2; step 1 includes warm-up), teacher time and teacher tokens per step;
  * the replayed batch: step 1 is the same batch for every method (same seed, checked on the rollout dumps),
    so SDPO's and SRPO's teacher work on it compare directly. Target: SRPO's teacher tokens are exactly its routed
    samples' (teacher prompt + response) tokens, and its teacher time ≈ SDPO's time × (SRPO tokens / SDPO tokens).
On CPU generation dominates a step; these are reported, not targets. The run logs land in
OUT/<method>/synthetic/run.log, the layout `scripts/report/make_report.py --root OUT` reads.

    python scripts/bench/bench_methods_cpu.py --steps 8 --out runs/cpu_tiny
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from srpo_verl.runs import CpuRun

METHODS = ("grpo", "sdpo", "srpo")


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, default=Path("outputs/tiny_assets"),
                        help="tiny assets dir (built with srpo_verl.tiny.build when missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/cpu_tiny"))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--test-freq", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()

    from srpo_verl.tiny.build import BuildSettings, build_tiny_assets, cached_assets

    # assets of another builder version or other settings are rebuilt, not reused
    assets = cached_assets(args.assets, BuildSettings(seed=0)) or build_tiny_assets(args.assets, seed=0)
    model, train, test = assets.model_dir, assets.train_parquet, assets.test_parquet

    runs: dict[str, CpuRun] = {}
    for method in args.methods:
        print(f"[bench] {method}: {args.steps} steps ...", flush=True)
        run = CpuRun(args.out / method / "synthetic", model, train, test, f"srpo.method={method}",
                     f"trainer.total_training_steps={args.steps}", f"trainer.test_freq={args.test_freq}",
                     "trainer.val_before_train=true", timeout_s=3600)
        run.check(list(range(0, args.steps + 1)))  # step 0: validation before training
        runs[method] = run

    print()
    header = (f"{'method':<6} {'wall s':>7} {'s/step':>7} {'teacher s/step':>15} {'teacher tok/step':>17} "
              f"{'sdpo frac':>10} {'reward first→last':>18} {'val acc last':>13}")
    print(header)
    print("-" * len(header))
    for method, run in runs.items():
        steps = [s for s in sorted(run.steps) if s >= 1]
        later = [run.steps[s] for s in steps if s >= 2]
        reward = [run.steps[s].get("critic/score/mean") for s in steps]
        val = [run.steps[s].get("val-core/synthetic/acc/mean@1") for s in sorted(run.steps)]
        val = [v for v in val if v is not None]
        print(f"{method:<6} {run.wall_s:>7.0f} {mean(m.get('timing_s/step') for m in later):>7.2f} "
              f"{mean(m.get('timing_s/srpo_teacher', 0.0) for m in later):>15.3f} "
              f"{mean(m.get('srpo/teacher/tokens', 0.0) for m in later):>17.0f} "
              f"{mean(m.get('srpo/route/sdpo_frac', 0.0) for m in later):>10.2f} "
              f"{reward[0]:>8.3f} → {reward[-1]:<7.3f} {val[-1] if val else float('nan'):>13.3f}")

    if "sdpo" in runs and "srpo" in runs:
        sdpo, srpo = runs["sdpo"], runs["srpo"]
        same = sorted((r["input"], r["output"], r["score"]) for r in sdpo.rollouts(1)) == sorted(
            (r["input"], r["output"], r["score"]) for r in srpo.rollouts(1))
        routed = [r for r in srpo.routes(1) if r["distill"]]
        exact = sum(r["teacher_prompt_len"] + r["response_len"] for r in routed)
        t_sdpo, t_srpo = sdpo.steps[1]["srpo/teacher/tokens"], srpo.steps[1]["srpo/teacher/tokens"]
        s_sdpo, s_srpo = sdpo.steps[1]["timing_s/srpo_teacher"], srpo.steps[1]["timing_s/srpo_teacher"]
        expected = s_sdpo * t_srpo / t_sdpo if t_sdpo else float("nan")
        print(f"\nreplayed batch (step 1, identical rollouts and rewards: {same})")
        print(f"  teacher tokens  SDPO {t_sdpo:.0f}   SRPO {t_srpo:.0f}   ratio {t_srpo / t_sdpo if t_sdpo else 0:.3f}"
              f"   SRPO = its routed samples' tokens ({exact}): {t_srpo == exact}")
        print(f"  teacher time    SDPO {s_sdpo:.3f} s   SRPO {s_srpo:.3f} s   SDPO time × token ratio {expected:.3f} s"
              f"   SRPO / that {s_srpo / expected if expected == expected and expected else float('nan'):.2f}")
    print(f"\nlogs: {args.out}/<method>/synthetic/run.log   report: python scripts/report/make_report.py "
          f"--root {args.out} --step-windows 2,4,{args.steps}")


if __name__ == "__main__":
    main()
