"""scripts/gpu_e2e.sh's dry run on this CPU machine: the same `stage` + `run` the GPU machine gets, on a one-wheel
offline set. Everything up to the first CUDA use must run (assemble + hash check, offline install into the target
directory, srpo_verl's own wheel with its verl.plugins entry point, the import check, the run's config composition)
and the script must then stop with exit 3 and one line saying CUDA is needed. Also the run summary's checks on
hand-written console logs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_e2e.sh"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU path; on a GPU the script really runs")
def test_dry_run_does_everything_up_to_cuda_then_stops_with_exit_3(tmp_path):
    wheelhouse = _load(REPO / "tests" / "unit" / "test_wheelhouse.py", "wheelhouse_helpers")
    links = tmp_path / "links"
    links.mkdir()
    wheelhouse.write_wheel(links, "tinypure", "1.0", "py3-none-any", "VALUE = 'pure'\n")
    (tmp_path / "freeze.txt").write_text("tinypure==1.0\n")
    built = wheelhouse.run("build", "--requirements", "freeze.txt", "--out", "wh", "--no-index", "--find-links",
                           str(links), "--part-size", "1K", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assets = tmp_path / "assets"
    (assets / "model").mkdir(parents=True)
    (assets / "model" / "config.json").write_text("{}")
    env = {**os.environ, "PYTHON": sys.executable, "WORK": str(tmp_path / "work"), "ASSETS": str(assets),
           "RUNS": "srpo", "OUT": str(tmp_path / "out")}
    env.pop("PYTHONPATH", None)
    # as on the GPU machine: one call per part, `stage` for all but the last, `run` with the last
    *first, last = sorted((tmp_path / "wh" / "parts").iterdir())
    for part in first:
        staged = subprocess.run(["bash", str(SCRIPT), "stage", str(part)], capture_output=True, text=True, env=env)
        assert staged.returncode == 0, staged.stderr
    result = subprocess.run(["bash", str(SCRIPT), "run", str(last)], capture_output=True, text=True, timeout=600,
                            env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("[gpu_e2e] CUDA is needed from here on: torch ") and "sees no CUDA device" in last
    assert "assembled 1 wheels" in output and "every sha256 matches" in output
    assert "[gpu_e2e] python " in output and "verl 0.9.1" in output
    assert "configs compose: srpo" in output
    site = tmp_path / "work" / "site"
    assert (site / "tinypure.py").exists()
    (dist_info,) = site.glob("srpo_verl-*.dist-info")
    assert "srpo_verl = srpo_verl.plugin" in (dist_info / "entry_points.txt").read_text()
    config = (tmp_path / "work" / "logs" / "config_srpo.yaml").read_text()
    assert "device: cuda" in config and "name: hf" in config and "logits_backend: triton" in config


def test_summary_checks_hold_the_runs_to_their_tolerances(tmp_path):
    summary = _load(REPO / "scripts" / "gpu_e2e_summary.py", "gpu_e2e_summary")

    def write(name: str, rc: int, steps: dict[int, dict[str, float]]):
        (tmp_path / name).mkdir()
        lines = [f"step:{step} - " + " - ".join(f"{k}:{v}" for k, v in metrics.items())
                 for step, metrics in steps.items()]
        (tmp_path / name / "run.log").write_text("\n".join(lines) + "\n")
        (tmp_path / f"{name}.rc").write_text(f"{rc}\n")
        (tmp_path / f"{name}.wall_s").write_text("60\n")

    keys = {"critic/score/mean": 0.5, "actor/pg_loss": 0.1, "actor/grad_norm": 2.0, "response_length/mean": 9.0,
            "critic/advantages/mean": 0.0, "actor/entropy": 1.5, "timing_s/step": 3.0}
    write("grpo", 0, {1: keys, 2: {**keys, "actor/grad_norm": 2.01}})
    write("verl_grpo", 0, {1: {**keys, "actor/grad_norm": 2.0005}, 2: keys})
    write("flash_ce", 0, {1: {**keys, "actor/grad_norm": 2.5}})
    write("srpo", 0, {1: keys, 2: keys, 3: keys})
    runs = summary.read_runs(tmp_path)
    assert runs["grpo"]["steps"][2]["actor/grad_norm"] == pytest.approx(2.01)
    rows = {row["check"]: row["status"] for row in summary.check(runs)}
    assert rows["grpo = verl_grpo at step [1] (rel 0.001, abs 1e-05)"] == "pass"  # 2.5e-4 relative
    assert rows["grpo = verl_grpo at step [2] (rel 0.01, abs 0.0001)"] == "pass"
    assert rows["flash_ce = srpo at step [1] (rel 1e-05, abs 1e-07)"].startswith("FAIL: actor/grad_norm@1: 2.5 vs 2")
    assert rows["resume = srpo at step [3] (rel 0.0001, abs 1e-06)"] == "not run"
    assert rows["srpo ran [1, 2, 3]"] == "pass" and rows["sdpo ran [1]"] == "not run"
    table = summary.timing_table(runs)
    assert table[0] == "| metric | srpo | grpo |" and "| timing_s/step | 3 | 3 |" in table
