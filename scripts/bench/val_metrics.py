#!/usr/bin/env python
"""verl's validation aggregation with its bootstrap loop vs srpo_verl's vectorised one, side by side in one run.

    python scripts/bench/val_metrics.py                 # the toy's shape: 150 prompts x 4 samples
    python scripts/bench/val_metrics.py --prompts 500 --samples 16

Prints both wall times, the ratio, and whether the two metric dicts are identical.
"""

from __future__ import annotations

import argparse
import random
import time

import verl.trainer.ppo.metric_utils as metric_utils

from srpo_verl.verl_ext.val_metrics import make_bootstrap_metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=150)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(0)
    uids = [f"p{i // args.samples}" for i in range(args.prompts * args.samples)]
    infos = {"score": [float(rng.random() < 0.3) for _ in uids], "format_ok": [rng.random() < 0.9 for _ in uids],
             "pred": [rng.choice(["123", "132", "213", "231"]) for _ in uids]}
    infos["acc"] = list(infos["score"])
    infos["reward"] = list(infos["score"])
    sources = ["synthetic"] * len(uids)
    verls = getattr(metric_utils.bootstrap_metric, "__wrapped__", metric_utils.bootstrap_metric)
    ours = make_bootstrap_metric(verls, metric_utils.calc_maj_val)
    results, seconds = {}, {}
    for name, fn in (("verl", verls), ("srpo_verl", ours)):
        metric_utils.bootstrap_metric = fn
        start = time.perf_counter()
        out = metric_utils.process_validation_metrics(sources, uids, infos)
        seconds[name] = time.perf_counter() - start
        results[name] = {s: {v: dict(m) for v, m in vm.items()} for s, vm in out.items()}
    print(f"{args.prompts} prompts x {args.samples} samples, {len(infos) - 1} variables + votes: "
          f"verl {seconds['verl']:.2f} s, vectorised {seconds['srpo_verl']:.3f} s, "
          f"{seconds['verl'] / seconds['srpo_verl']:.0f}x faster; identical: {results['verl'] == results['srpo_verl']}")


if __name__ == "__main__":
    main()
