#!/usr/bin/env python
"""Did each collapse warning fire before the run's validation accuracy declined, and never on a healthy run?

Replays the SRPO trainer's two warnings (the validation format rate, srpo.format_drop_warn; the teacher's entropy on
SDPO tokens, srpo.teacher_entropy_warn) over the comparison harness's finished runs (OUT/<method>/seed<S>/
metrics.jsonl) and prints one markdown row per run (srpo_verl.report.collapse.collapse_evidence).

    python scripts/bench/collapse_signals.py runs/compare_long
    python scripts/bench/collapse_signals.py runs/compare_long --entropy-warn 4 --entropy-window 10
"""

import argparse
import sys
from pathlib import Path

from srpo_verl.report import collapse
from srpo_verl.report.compare import metric_series
from srpo_verl.report.logs import read_jsonl


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="harness output folders (<root>/<method>/seed<S>/)")
    parser.add_argument("--format-drop-warn", type=float, default=0.2)
    parser.add_argument("--entropy-warn", type=float, default=5.0)
    parser.add_argument("--entropy-window", type=int, default=20)
    parser.add_argument("--decline", type=float, default=0.10, help="accuracy drop below the best that counts")
    args = parser.parse_args(argv)
    records = []
    for root in args.roots:
        for path in sorted(root.glob("*/seed*/metrics.jsonl")):
            name = f"{path.parent.parent.name} {path.parent.name}"
            steps = read_jsonl(path)
            accuracy = metric_series(steps, None, name)
            if not accuracy:
                print(f"{path}: no validation logged, skipped", file=sys.stderr)
                continue
            records.append(collapse.collapse_evidence(name, steps, accuracy, args.format_drop_warn, args.entropy_warn,
                                                      args.entropy_window, args.decline))
    if not records:
        print(f"error: no run with a validation under {', '.join(map(str, args.roots))}", file=sys.stderr)
        return 1
    print(collapse.render_evidence_markdown(records, args.format_drop_warn, args.entropy_warn, args.entropy_window,
                                            args.decline), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
