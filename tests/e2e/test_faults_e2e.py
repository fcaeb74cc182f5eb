"""Fault injection through `python -m srpo_verl.main` (issue 23): what used to train wrong with exit 0 now stops
with one line. The row and lock refusals happen before Ray (seconds); the reward runs go through the real trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srpo_verl.data.parquet import write_verl_parquet
from srpo_verl.bench.cpu_run import CPU_ENV, CpuRun

pytestmark = pytest.mark.e2e

FAULTY = Path(__file__).resolve().parents[1] / "fixtures" / "faulty_reward" / "reward.py"


def _rows(parquet: Path) -> list[dict]:
    import pandas as pd

    rows = pd.read_parquet(parquet).head(16).to_dict("records")
    return [json.loads(json.dumps(r, default=lambda v: v.tolist())) for r in rows]


def _main(workdir: Path, model: Path, train: Path, test: Path) -> tuple[int, list[str]]:
    """`python -m srpo_verl.main --config-name cpu_srpo` as a user runs it (no HYDRA_FULL_ERROR): exit code and the
    `error: ` lines of stderr."""
    env = {**os.environ, **CPU_ENV}
    env.pop("HYDRA_FULL_ERROR")
    cmd = [sys.executable, "-m", "srpo_verl.main", "--config-name", "cpu_srpo", f"data.train_files={train}",
           f"data.val_files={test}", f"actor_rollout_ref.model.path={model}",
           f"trainer.default_local_dir={workdir / 'ckpt'}", f"hydra.run.dir={workdir / 'hydra'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_bad_rows_and_a_held_directory_are_refused_before_ray(tiny_assets, tmp_path):
    """Before: exit 0 (a row without ground truth scored 0, a [] prompt trained on the template, a second run
    overwrote the first's checkpoints). Each refusal costs the driver's start-up only (12-25 s loaded, no Ray)."""
    model, train, test = tiny_assets
    rows = _rows(train)
    rows[5]["reward_model"]["ground_truth"] = None
    bad = write_verl_parquet(rows, tmp_path / "no_gt.parquet")
    rc, errors = _main(tmp_path / "no_gt", model, bad, test)
    assert rc == 2 and errors == [f"error: data.train_files={bad} row 5: reward_model.ground_truth is missing or null "
                                 "(verl would score every rollout of this prompt 0); fix or drop the row"]

    # a 242-token prompt with cpu_srpo's truncation=error goes through the same check_data_files:
    # tests/unit/test_preflight.py::test_overlong_prompt_with_truncation_error_is_refused
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from srpo_verl.preflight.lock import acquire_run_lock; "
         "acquire_run_lock(sys.argv[1]); print('held', flush=True); time.sleep(600)", str(tmp_path / "busy" / "ckpt")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, errors = _main(tmp_path / "busy", model, train, test)
        busy = tmp_path / "busy" / "ckpt"
        assert rc == 2 and len(errors) == 1 and errors[0].startswith(
            f"error: trainer.default_local_dir={busy} is in use by another run: pid {holder.pid} on ")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_reward_errors_above_the_bound_stop_the_run_naming_the_source(tiny_assets, tmp_path, monkeypatch):
    """Before: exit 0, tracebacks, failed groups dropped and the batch padded every step. Cost: one step of the
    real trainer (~3 min on the loaded 2-core machine)."""
    monkeypatch.setenv("FAULTY_DIGIT", "7")
    run = CpuRun(tmp_path, *tiny_assets, f"reward.custom_reward_function.path={FAULTY}",
                 "trainer.total_training_steps=2", dumps=False)
    assert run.rc == 1 and run.steps == {}, run.tail()
    line = next(line for line in run.log_path.read_text().splitlines() if "[srpo] error: " in line)
    message = line.split("[srpo] error: ", 1)[1]
    assert message.startswith(f"step 1: reward.custom_reward_function compute_score ({FAULTY}) raised on ")
    assert "of 32 rollouts" in message
    assert "above srpo.max_reward_error_rate=0.01 (by data source: synthetic: " in message
    assert "data source 'synthetic': ValueError: cannot parse '" in message and "one sample: ground_truth=" in message


@pytest.mark.slow
def test_reward_errors_under_the_bound_are_counted_every_step(tiny_assets, tmp_path, monkeypatch):
    """Cost: two steps of the real trainer (~3-4 min loaded)."""
    monkeypatch.setenv("FAULTY_DIGIT", "7")
    run = CpuRun(tmp_path, *tiny_assets, f"reward.custom_reward_function.path={FAULTY}",
                 "trainer.total_training_steps=2", "srpo.max_reward_error_rate=1.0")
    run.check([1, 2])
    for step in (1, 2):
        m = run.steps[step]
        kept = len(run.rollouts(step))
        assert m["srpo/reward/errors"] >= 1 and m["srpo/reward/error_rate"] == m["srpo/reward/errors"] / 32
        # a failed group keeps its scored siblings: at most the errors' share of rollouts is missing
        assert m["srpo/batch/dropped_frac"] == pytest.approx((32 - kept) / 32) or kept == 32
        assert 0 < m["srpo/batch/dropped_frac"] <= m["srpo/reward/error_rate"] + 1e-9


@pytest.mark.slow
def test_every_reward_call_failing_names_the_reward_function(tiny_assets, tmp_path, monkeypatch):
    """Before: exit 1 after 113 s with verl's replay-buffer message (no reward function named, a key that would not
    help). Cost: start-up and one rollout round (~3 min loaded)."""
    monkeypatch.setenv("FAULTY_DIGIT", "all")
    run = CpuRun(tmp_path, *tiny_assets, f"reward.custom_reward_function.path={FAULTY}",
                 "trainer.total_training_steps=1", dumps=False)
    assert run.rc == 1, run.tail()
    line = next(line for line in run.log_path.read_text().splitlines() if "[srpo] error: " in line)
    assert "raised on 32 of 32 rollouts (100.0%)" in line or "and no trajectory of the step was left" in line
    assert f"reward.custom_reward_function compute_score ({FAULTY})" in line


@pytest.mark.slow
def test_sigterm_stops_at_a_step_boundary_checkpoints_and_resumes_exactly(tiny_assets, srpo, tmp_path):
    """Before: the driver died by SIGABRT (exit 134) 3 s after SIGTERM, with nothing saved since the last save_freq
    checkpoint. Now: the step in flight finishes, step 1 is saved (save_freq=-1 here), exit 143 with the line; the
    relaunch resumes from step 1 and its steps 2-3 equal the uninterrupted `srpo` run's. Cost: two launches
    (~4-5 min loaded) on top of the session's `srpo` run."""
    import signal
    import time

    from srpo_verl.report.logs import read_console

    model, train, test = tiny_assets
    workdir = tmp_path / "preempted"
    workdir.mkdir()
    cmd = [sys.executable, "-m", "srpo_verl.main", "--config-name", "cpu_srpo", f"data.train_files={train}",
           f"data.val_files={test}", f"actor_rollout_ref.model.path={model}", "srpo.method=srpo",
           "trainer.total_training_steps=3", "trainer.save_freq=-1", "trainer.max_actor_ckpt_to_keep=2",
           f"trainer.default_local_dir={workdir / 'ckpt'}", f"hydra.run.dir={workdir / 'hydra'}"]
    log_path = workdir / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env={**os.environ, **CPU_ENV}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while 1 not in read_console(log_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=400)
    text = log_path.read_text()
    assert rc == 143, text[-3000:]
    done = max(read_console(log_path))
    resume_line = [line for line in text.splitlines() if line.startswith("[srpo] preempted (SIGTERM) before step")]
    assert len(resume_line) == 1, text[-3000:]
    assert resume_line[0].startswith(f"[srpo] preempted (SIGTERM) before step {done + 1}: saved step {done} in ")
    assert resume_line[0].endswith(f"relaunch the same command to resume from step {done} "
                                   f"({workdir / 'ckpt' / f'global_step_{done}'}; trainer.resume_mode=auto)")
    assert (workdir / "ckpt" / "latest_checkpointed_iteration.txt").read_text() == str(done)

    with open(log_path, "a") as log:
        rc = subprocess.run(cmd, cwd=workdir, env={**os.environ, **CPU_ENV}, stdout=log, stderr=subprocess.STDOUT,
                            timeout=900).returncode
    assert rc == 0, log_path.read_text()[-3000:]
    resumed = read_console(log_path)
    for step in range(done + 1, 4):
        for key in ("critic/score/mean", "actor/pg_loss", "srpo/route/sdpo_frac", "srpo/teacher/entropy_mean"):
            assert resumed[step][key] == srpo.steps[step][key], (step, key)
