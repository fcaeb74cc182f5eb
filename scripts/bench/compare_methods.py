#!/usr/bin/env python
"""GRPO / SDPO / SRPO (and ablations) x seeds on the CPU toy, one quickstart run at a time, resumable and bounded in
time; writes OUT/compare.png (mean ± std curves vs step and training time) and OUT/table.md (best validation accuracy
within step and time budgets, s/step, teacher tokens per step). The logic: srpo_verl/bench/compare.py.

    python scripts/bench/compare_methods.py --seeds 0 1 2 --steps 40 --budget-min 40 --out runs/compare
    python scripts/bench/compare_methods.py --methods grpo srpo srpo_no_dw --seeds 0 --steps 20
    python scripts/bench/compare_methods.py --out runs/compare --report-only    # re-draw from finished runs
"""

import sys

from srpo_verl.bench.compare import main

if __name__ == "__main__":
    sys.exit(main())
