"""End-to-end: `srpo.success_memory=true` through the real verl trainer on CPU.

The train file holds exactly one batch of prompts (8), so every step sees every prompt again: a prompt solved at an
earlier step whose group fails at a later one must get its failures self-distilled with the remembered response.
Checked against verl's own rollout dump (prompt text, reward) step by step, then a resume from step 2 restores the
memory and reproduces step 3. The same runs check the teacher-entropy collapse watch (2-step windows) step by step
and through the resume.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from srpo_verl.bench.cpu_run import CpuRun
from srpo_verl.preflight import checkpoint as ckpt

pytestmark = [pytest.mark.e2e]

STEPS = 3
OVERRIDES = ("srpo.method=srpo", "srpo.success_memory=true", f"trainer.total_training_steps={STEPS}",
             "trainer.save_freq=1", "srpo.teacher_entropy_window=2")


@pytest.fixture(scope="module")
def one_batch_assets(tiny_assets, tmp_path_factory):
    model, train, test = tiny_assets
    path = tmp_path_factory.mktemp("one_batch") / "train.parquet"
    pq.write_table(pq.read_table(train).slice(0, 8), path)
    return model, path, test


@pytest.fixture(scope="module")
def memory_run(one_batch_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("memory"), *one_batch_assets, *OVERRIDES)


def step_groups(run: CpuRun, step: int) -> dict[str, dict]:
    """{prompt text: {"solved": any reward ≥ 0.5, "keys": its sample keys}} from verl's rollout dump."""
    groups: dict[str, dict] = {}
    for row in run.rollouts(step):
        group = groups.setdefault(row["input"], {"solved": False, "keys": set()})
        group["solved"] |= row["score"] >= 0.5
        group["keys"].add(row["uid"])
    return groups


def test_failed_groups_of_remembered_prompts_are_distilled_from_memory(memory_run):
    memory_run.check(list(range(1, STEPS + 1)))
    solved_before: set[str] = set()
    hits_seen = 0
    for step in range(1, STEPS + 1):
        groups = step_groups(memory_run, step)
        routes = {r["key"]: r for r in memory_run.routes(step)}
        expected_hits = {p for p, g in groups.items() if not g["solved"] and p in solved_before}
        for prompt, group in groups.items():
            rows = [routes[key] for key in group["keys"]]
            from_memory = prompt in expected_hits
            assert all(r["memory_demo"] == from_memory for r in rows), (step, prompt, rows)
            if from_memory:  # every failure of the group is distilled, with no in-batch demonstration
                assert all(r["distill"] and r["demo_key"] is None for r in rows)
            if not group["solved"] and not from_memory:
                assert not any(r["distill"] for r in rows)
        metrics = memory_run.steps[step]
        unsolved = sum(not g["solved"] for g in groups.values())
        solved_before |= {p for p, g in groups.items() if g["solved"]}
        assert metrics["srpo/memory/hit_groups"] == len(expected_hits)
        assert metrics["srpo/memory/unsolved_groups"] == unsolved
        assert metrics["srpo/memory/hit_rate"] == pytest.approx(len(expected_hits) / unsolved if unsolved else 0.0)
        assert metrics["srpo/memory/entries"] == len(solved_before)
        assert metrics["srpo/memory/routed_frac"] == pytest.approx(
            sum(r["memory_demo"] for r in routes.values()) / 32)
        assert metrics["srpo/teacher/samples"] == sum(r["distill"] for r in routes.values())
        hits_seen += len(expected_hits)
    assert hits_seen > 0, "no remembered prompt failed: the check above never saw a memory route"


@pytest.mark.slow  # one more launch; the default suite keeps the run above
def test_memory_is_checkpointed_and_a_resume_reproduces_step_3(memory_run, one_batch_assets, tmp_path_factory):
    memory_run.check(list(range(1, STEPS + 1)))
    saved = json.loads((memory_run.workdir / "ckpt" / "global_step_2" / ckpt.SUCCESS_MEMORY_FILE).read_text())
    assert len(saved["entries"]) == memory_run.steps[2]["srpo/memory/entries"]
    workdir = tmp_path_factory.mktemp("memory_resumed")
    root = memory_run.copy_checkpoints(workdir, 2)
    resumed = CpuRun(workdir, *one_batch_assets, *OVERRIDES, "trainer.resume_mode=auto")
    resumed.check([3])
    assert (f"[srpo] success memory: {len(saved['entries'])} prompts restored from {root / 'global_step_2'}"
            in resumed.log_path.read_text())
    for key in ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "srpo/loss/distill", "srpo/loss/grpo",
                "srpo/teacher/samples", "srpo/teacher/tokens", "srpo/memory/hit_groups", "srpo/memory/entries",
                "srpo/memory/routed_frac", "srpo/teacher/entropy_rise"):
        assert resumed.steps[3][key] == pytest.approx(memory_run.steps[3][key], rel=1e-5, abs=1e-7), key


def test_teacher_entropy_rise_is_the_window_mean_over_its_lowest(memory_run):
    memory_run.check(list(range(1, STEPS + 1)))
    entropy = [memory_run.steps[s]["srpo/teacher/entropy_mean"] for s in range(1, STEPS + 1)]
    assert all(memory_run.steps[s]["srpo/teacher/tokens"] > 0 for s in range(1, STEPS + 1))
    assert "srpo/teacher/entropy_rise" not in memory_run.steps[1]  # the first window is not full yet
    means = [(entropy[0] + entropy[1]) / 2, (entropy[1] + entropy[2]) / 2]
    assert memory_run.steps[2]["srpo/teacher/entropy_rise"] == pytest.approx(1.0)
    assert memory_run.steps[3]["srpo/teacher/entropy_rise"] == pytest.approx(means[1] / min(means), rel=1e-5)
