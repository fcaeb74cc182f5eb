"""Results tooling: read verl run logs, build the paper's Table 1 (best avg@16 within wall-clock and step windows),
draw training-curve PNGs, and score validation generations (avg@n, unbiased pass@k).

Modules: `passk` (estimators), `generations` (verl validation dumps → per-prompt counts), `logs` (JSONL / console /
TensorBoard → per-step metrics), `table` (training time, windows, Table 1 rows), `plots` (matplotlib figures),
`cli` (the `scripts/report` and `scripts/eval` entry points). See docs/REPORT.md.
"""
