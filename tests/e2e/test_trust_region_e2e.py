"""End-to-end: `srpo.teacher=trust_region` through the real verl trainer on CPU (the official SDPO code's trust-region
teacher: logits lerp(base, live, rate), the actor's and the base teacher's forwards interleaved per micro-batch).

At step 1 the actor still holds the initial weights, so the mix equals them and the run must reproduce the session
``srpo`` (EMA) run's step 1. Then: no teacher/ in the checkpoints but teacher_base.json (the reference is rebuilt from
the model path), and a resume from step 2 reproduces step 3. The mixing maths itself, against the official class, is
tests/unit/test_trust_region_teacher.py.
"""

from __future__ import annotations

import pytest

from srpo_verl.bench.cpu_run import CpuRun
from srpo_verl.preflight import checkpoint as ckpt

pytestmark = [pytest.mark.e2e]

OVERRIDES = ("srpo.method=srpo", "srpo.teacher=trust_region", "srpo.trust_region_rate=0.5",
             "trainer.total_training_steps=3", "trainer.save_freq=1")
SAME_AT_STEP_1 = ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "srpo/loss/grpo", "srpo/loss/distill",
                  "srpo/teacher/tokens", "srpo/teacher/samples", "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass",
                  "srpo/dw/weight_min", "srpo/dw/weight_max")


@pytest.fixture(scope="module")
def trust_region(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("trust_region"), *tiny_assets, *OVERRIDES)


def test_step_1_is_the_initial_teacher_and_no_teacher_copy_is_checkpointed(trust_region, srpo):
    trust_region.check([1, 2, 3])
    srpo.check([1, 2, 3])
    assert trust_region.samples_by_session(1) == srpo.samples_by_session(1), "step-1 batch differs"
    assert srpo.steps[1]["srpo/teacher/samples"] > 0
    for key in SAME_AT_STEP_1:
        assert trust_region.steps[1][key] == pytest.approx(srpo.steps[1][key], rel=1e-5, abs=1e-7), key
    assert not [k for s in (1, 2, 3) for k in ("srpo/teacher/ema_applied", "timing_s/srpo_ema")
                if k in trust_region.steps[s]]
    root = trust_region.workdir / "ckpt"
    assert not list(root.glob("global_step_*/teacher"))
    assert sorted(p.parent.name for p in root.glob(f"global_step_*/{ckpt.BASE_TEACHER_FILE}")) == [
        "global_step_1", "global_step_2", "global_step_3"]


@pytest.mark.slow  # one more launch; the default suite keeps the run above
def test_resume_rebuilds_the_reference_and_reproduces_step_3(trust_region, tiny_assets, tmp_path_factory):
    trust_region.check([1, 2, 3])
    workdir = tmp_path_factory.mktemp("trust_region_resumed")
    root = trust_region.copy_checkpoints(workdir, 2)
    resumed = CpuRun(workdir, *tiny_assets, *OVERRIDES, "trainer.resume_mode=auto")
    resumed.check([3])
    assert (f"[srpo] resumed from step 2 ({root / 'global_step_2'}): actor (teacher: lerp of the frozen initial "
            "weights, rebuilt from actor_rollout_ref.model.path, and the actor)") in resumed.log_path.read_text()
    for key in ("critic/score/mean", "actor/pg_loss", "srpo/loss/distill", "srpo/loss/grpo", "actor/grad_norm",
                "srpo/teacher/tokens", "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass"):
        assert resumed.steps[3][key] == pytest.approx(trust_region.steps[3][key], rel=1e-5, abs=1e-7), key
