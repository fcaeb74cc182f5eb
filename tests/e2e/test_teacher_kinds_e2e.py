"""End-to-end: `srpo.teacher=live` and `srpo.teacher=base` through the real verl trainer on CPU (marker slow: runs of
their own, beyond the suite's ~60 s per addition; `-m slow`).

At step 1 every teacher kind holds the initial weights, so on the same seed (the same step-1 batch) live and base
must reproduce the session ``srpo`` run's (EMA) step 1: teacher metrics, loss parts and grad norm. Then:
  live  1 step: the teacher pass ran on the actor engine (no EMA metrics, no EMA timer);
  base  3 steps, a checkpoint every step: no teacher/ but teacher_base.json, and a resume from step 2 (the frozen
        teacher rebuilt from the model path) reproduces step 3.
The exact live = ema(rate 1) / base = ema(rate 0) equivalence on later steps is tests/unit/test_teacher_kinds.py.
"""

from __future__ import annotations

import pytest

from srpo_verl.bench.cpu_run import CpuRun
from srpo_verl.preflight import checkpoint as ckpt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAME_AT_STEP_1 = ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "srpo/loss/grpo", "srpo/loss/distill",
                  "srpo/teacher/tokens", "srpo/teacher/samples", "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass",
                  "srpo/dw/weight_min", "srpo/dw/weight_max")
EMA_ONLY = ("srpo/teacher/ema_applied", "srpo/teacher/ema_max_abs_delta", "timing_s/srpo_ema")


@pytest.fixture(scope="module")
def live(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("live"), *tiny_assets, "srpo.method=srpo", "srpo.teacher=live",
                  "trainer.total_training_steps=1")


@pytest.fixture(scope="module")
def base(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("base"), *tiny_assets, "srpo.method=srpo", "srpo.teacher=base",
                  "trainer.total_training_steps=3", "trainer.save_freq=1")


def assert_same_step_1(run: CpuRun, srpo: CpuRun) -> None:
    assert run.samples_by_session(1) == srpo.samples_by_session(1), "step-1 batch differs"
    assert srpo.steps[1]["srpo/teacher/samples"] > 0, "nothing routed at step 1: the comparison would be empty"
    for key in SAME_AT_STEP_1:
        assert run.steps[1][key] == pytest.approx(srpo.steps[1][key], rel=1e-5, abs=1e-7), key


def test_live_reproduces_step_1_on_the_actor_engine_without_an_ema(live, srpo):
    live.check([1])
    srpo.check([1, 2, 3])
    assert_same_step_1(live, srpo)
    assert not [key for key in EMA_ONLY if key in live.steps[1]]
    assert live.steps[1]["timing_s/srpo_teacher"] > 0


def test_base_reproduces_step_1_and_checkpoints_no_teacher_copy(base, srpo):
    base.check([1, 2, 3])
    assert_same_step_1(base, srpo)
    assert not [key for step in (1, 2, 3) for key in EMA_ONLY if key in base.steps[step]]
    root = base.workdir / "ckpt"
    assert not list(root.glob("global_step_*/teacher"))
    assert sorted(p.parent.name for p in root.glob(f"global_step_*/{ckpt.BASE_TEACHER_FILE}")) == [
        "global_step_1", "global_step_2", "global_step_3"]


def test_base_resume_rebuilds_the_frozen_teacher_and_reproduces_step_3(base, tiny_assets, tmp_path_factory):
    base.check([1, 2, 3])
    workdir = tmp_path_factory.mktemp("base_resumed")
    root = base.copy_checkpoints(workdir, 2)
    resumed = CpuRun(workdir, *tiny_assets, "srpo.method=srpo", "srpo.teacher=base", "trainer.total_training_steps=3",
                     "trainer.save_freq=1", "trainer.resume_mode=auto")
    resumed.check([3])
    assert (f"[srpo] resumed from step 2 ({root / 'global_step_2'}): actor (teacher: the frozen initial weights, "
            "rebuilt from actor_rollout_ref.model.path)") in resumed.log_path.read_text()
    for key in ("critic/score/mean", "actor/pg_loss", "srpo/loss/distill", "srpo/loss/grpo", "actor/grad_norm",
                "srpo/teacher/tokens", "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass"):
        assert resumed.steps[3][key] == pytest.approx(base.steps[3][key], rel=1e-5, abs=1e-7), key
