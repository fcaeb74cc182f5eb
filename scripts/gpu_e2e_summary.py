"""Summary of scripts/gpu_e2e.sh's runs: exit codes, the checks of issue 14 with their tolerances, and the per-step
timing breakdown (timing_s/*, srpo/teacher/*) of SRPO, SDPO and GRPO side by side.

    python scripts/gpu_e2e_summary.py RUNS_DIR      # prints the text summary, writes RUNS_DIR/summary.json

RUNS_DIR holds <name>/run.log (verl's console logger), <name>.rc and <name>.wall_s per run.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from srpo_verl.report.logs import read_console

# (run, reference run, steps compared, keys, rel, abs): the GPU tolerances this script holds the runs to.
#  - resume: verl's deterministic mode (rollout.full_determinism) on one GPU; the step-3 replay should be exact up to
#    kernel reduction order.
#  - flash_ce: flash-attn's Triton cross-entropy importable against VERL_DISABLE_FLASH_ATTN_CE=1; the teacher methods
#    never call it (the worker returns its own log-probs), so the same step up to kernel reduction order.
#  - grpo: srpo.method=grpo against verl's own trainer; step 1 is the same computation, step 2 starts from weights
#    that may differ in the last bits, so it gets a looser bound.
CHECKS = [
    ("resume", "srpo", [3], ["critic/score/mean", "actor/pg_loss", "srpo/loss/distill", "srpo/loss/grpo",
                             "actor/grad_norm", "srpo/teacher/tokens", "srpo/teacher/entropy_mean",
                             "srpo/teacher/ema_max_abs_delta"], 1e-4, 1e-6),
    ("flash_ce", "srpo", [1], ["actor/grad_norm", "actor/pg_loss", "critic/score/mean"], 1e-5, 1e-7),
    ("grpo", "verl_grpo", [1], ["critic/score/mean", "actor/pg_loss", "actor/grad_norm", "response_length/mean",
                                "critic/advantages/mean", "actor/entropy"], 1e-3, 1e-5),
    ("grpo", "verl_grpo", [2], ["critic/score/mean", "actor/pg_loss", "actor/grad_norm", "response_length/mean",
                                "critic/advantages/mean", "actor/entropy"], 1e-2, 1e-4),
]
EXPECTED_STEPS = {"srpo": [1, 2, 3], "resume": [3], "flash_ce": [1], "sdpo": [1], "grpo": [1, 2], "verl_grpo": [1, 2]}
TIMING_PREFIXES = ("timing_s/", "srpo/teacher/")


def close(a: float, b: float, rel: float, abs_: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def read_runs(runs: Path) -> dict[str, dict]:
    """{name: {"rc": str, "wall_s": int | None, "steps": {step: metrics}}} of every run that left an .rc file."""
    out = {}
    for rc_file in sorted(runs.glob("*.rc")):
        name = rc_file.stem
        log = runs / name / "run.log"
        wall = runs / f"{name}.wall_s"
        out[name] = {"rc": rc_file.read_text().strip(),
                     "wall_s": int(wall.read_text()) if wall.exists() else None,
                     "steps": dict(read_console(log)) if log.exists() else {}}
    return out


def check(runs: dict[str, dict]) -> list[dict]:
    """One row per check: what, status (pass / FAIL / not run), the largest deviation found."""
    rows = []
    for name, steps in EXPECTED_STEPS.items():
        run = runs.get(name)
        if run is None or run["rc"] != "0":
            rows.append({"check": f"{name} ran {steps}", "status": "not run" if run is None else f"FAIL (rc {run['rc']})"})
            continue
        logged = sorted(run["steps"])
        rows.append({"check": f"{name} ran {steps}", "status": "pass" if logged == steps else f"FAIL (logged {logged})"})
    for name, reference, steps, keys, rel, abs_ in CHECKS:
        what = f"{name} = {reference} at step {steps} (rel {rel:g}, abs {abs_:g})"
        a, b = runs.get(name), runs.get(reference)
        if not a or not b or a["rc"] != "0" or b["rc"] != "0":
            rows.append({"check": what, "status": "not run"})
            continue
        worst, failures = 0.0, []
        for step in steps:
            for key in keys:
                x, y = a["steps"].get(step, {}).get(key), b["steps"].get(step, {}).get(key)
                if x is None or y is None:
                    failures.append(f"{key}@{step} missing")
                    continue
                worst = max(worst, abs(x - y))
                if not close(x, y, rel, abs_):
                    failures.append(f"{key}@{step}: {x:.6g} vs {y:.6g}")
        rows.append({"check": what, "status": "pass" if not failures else "FAIL: " + "; ".join(failures),
                     "max_abs_diff": worst})
    return rows


def timing_table(runs: dict[str, dict], names=("srpo", "sdpo", "grpo")) -> list[str]:
    """Mean over the logged steps of every timing_s/* and srpo/teacher/* metric, one column per method."""
    present = [n for n in names if n in runs and runs[n]["steps"]]
    keys = sorted({k for n in present for m in runs[n]["steps"].values() for k in m if k.startswith(TIMING_PREFIXES)})
    lines = ["| metric | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    for key in keys:
        cells = []
        for n in present:
            values = [m[key] for m in runs[n]["steps"].values() if key in m]
            cells.append(f"{sum(values) / len(values):.4g}" if values else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit("usage: gpu_e2e_summary.py RUNS_DIR")
    runs_dir = Path(argv[0])
    runs = read_runs(runs_dir)
    rows = check(runs)
    table = timing_table(runs)
    print("runs: " + ", ".join(f"{n} rc={r['rc']} {r['wall_s']}s" for n, r in runs.items()))
    for row in rows:
        print(f"{row['status']:<8} {row['check']}" + (f"  max |diff| {row['max_abs_diff']:.3g}" if "max_abs_diff" in row else ""))
    print("\n".join(table))
    (runs_dir / "summary.json").write_text(json.dumps({"runs": runs, "checks": rows, "timing": table}, indent=1,
                                                      default=str))
    return 0 if all(r["status"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
