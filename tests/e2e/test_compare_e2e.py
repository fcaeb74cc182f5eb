"""End-to-end: the toy comparison harness (scripts/bench/compare_methods.py) on its cheapest setting.

SRPO (it logs every metric of the report: routes, teacher entropy and tokens; GRPO's launch differs only in ALGO and
the dumps, unit-tested in tests/unit/test_compare.py), 1 seed, 2 steps of 8 prompts x 4 rollouts (the CPU configs' micro-batch of 32), validation on 8 prompts x 1 sample before training and
after each step, each run a real `scripts/quickstart.sh` launch. Asserts the figure and the table exist and that the
table holds the runs' own numbers read back from their metrics.jsonl; then that a second invocation reruns nothing
(the finished markers) and a changed setting is not mistaken for a finished run. The time bounds are generous (a
loaded 2-core host took 4.5 min to start one run); they are bounds, not the cost (see the commit message).
"""

import json
from pathlib import Path

import pytest

from srpo_verl.bench import compare as bench
from srpo_verl.report.logs import read_jsonl

pytestmark = pytest.mark.e2e

VAL = "val-core/synthetic/acc/mean@1"
ARGS = ["--methods", "srpo", "--seeds", "0", "--steps", "2", "--batch", "8", "--n", "4", "--test-freq", "1",
        "--val-n", "1", "--run-timeout-min", "10", "--budget-min", "20"]
OVERRIDES = ["--", "data.val_max_samples=8"]


@pytest.fixture(scope="module")
def harness(tiny_assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assets = Path(tiny_assets[0]).parent
    rc = bench.main([*ARGS, "--out", str(out), "--assets", str(assets), *OVERRIDES])
    return rc, out, assets


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def test_figure_and_table_hold_the_runs_numbers(harness):
    rc, out, _ = harness
    assert rc == 0, (out / "table.md").read_text() if (out / "table.md").exists() else "no table"
    png = out / "compare.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    table = (out / "table.md").read_text()
    data = json.loads((out / "table.json").read_text())
    assert data["step_windows"] == ["1st", "2st"]
    assert data["lr"]["srpo"] == float(bench.quickstart_defaults()["LR"])
    method, run = "srpo", out / "srpo" / "seed0"
    assert (run / bench.MARKER).exists()
    steps = read_jsonl(run / "metrics.jsonl")
    assert sorted(steps) == [0, 1, 2]
    val = {s: steps[s][VAL] for s in (0, 1, 2)}
    row = data["methods"][method]
    assert row["base"]["mean"] == val[0]
    assert row["by_step"][0]["mean"] == val[1] and row["by_step"][1]["mean"] == max(val[1], val[2])
    assert row["step_seconds"]["mean"] == steps[2]["timing_s/step"]
    tokens = [steps[s]["srpo/teacher/tokens"] for s in (1, 2)]
    assert row["teacher_tokens"]["mean"] == pytest.approx(sum(tokens) / 2)
    line = next(line for line in table.splitlines() if line.startswith(f"| {method} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == [method, "1", "2 ± 0", f"{_pct(val[0])} ± 0.0"]
    assert cells[4:6] == [f"{_pct(val[1])} ± 0.0", f"{_pct(max(val[1], val[2]))} ± 0.0"]
    assert cells[-3] == f"{steps[2]['timing_s/step']:.2f} ± 0.00"
    assert cells[-2] == f"{steps[2]['timing_s/srpo_teacher']:.3f} ± 0.000"
    assert cells[-1] == f"{sum(tokens) / 2:.0f} ± 0"
    assert (run / "rollouts" / "1.jsonl").exists()
    assert any(k.endswith("srpo/route/sdpo_frac") for k in steps[1])
    assert "- srpo seed 0: finished, step 2/2" in table


def test_second_invocation_reruns_nothing_and_a_changed_setting_is_not_reused(harness, capsys):
    _, out, assets = harness
    metrics = out / "srpo" / "seed0" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    assert bench.main([*ARGS, "--out", str(out), "--assets", str(assets), *OVERRIDES]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished earlier, skipped") == 1
    assert metrics.stat().st_mtime_ns == before
    three = bench.plan_runs(["srpo"], [0], bench.method_lr("srpo", float(bench.quickstart_defaults()["LR"])), 3, 8, 4,
                            1, 1, ["data.val_max_samples=8"])[0]
    assert not bench.is_finished(out / "srpo" / "seed0", three)
