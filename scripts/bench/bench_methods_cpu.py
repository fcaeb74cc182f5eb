#!/usr/bin/env python
"""Benchmark: GRPO vs SDPO vs SRPO through the real verl trainer on CPU, one seed side by side.

A preset of the toy comparison harness (scripts/bench/compare_methods.py, srpo_verl/bench/compare.py), which absorbed
this script: one seed, 8 steps, validation every 4. Its OUT/table.md has the per-method s/step (steps >= 2; step 1
includes warm-up), teacher s/step and teacher tokens per step, and the replayed-batch check: step 1 is the same batch
for SDPO and SRPO (same seed; checked on the rollout dumps), SRPO's teacher tokens must be exactly its routed samples'
(teacher prompt + response) tokens, and the two teacher times compare directly. Every harness flag works here too.

    python scripts/bench/bench_methods_cpu.py --steps 8 --out runs/cpu_tiny
    # = python scripts/bench/compare_methods.py --seeds 0 --steps 8 --test-freq 4 --out runs/cpu_tiny
"""

import sys

from srpo_verl.bench.compare import main

PRESET = ["--seeds", "0", "--steps", "8", "--test-freq", "4", "--out", "runs/cpu_tiny"]

if __name__ == "__main__":
    sys.exit(main(PRESET + sys.argv[1:]))
