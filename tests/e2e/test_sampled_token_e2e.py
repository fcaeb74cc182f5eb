"""End-to-end: SDPO with token-level distillation (``srpo.distill_mode=sampled_token``) through the real verl
trainer on CPU, one step on the seed of the shared ``sdpo`` fixture (tests/e2e/conftest.py, top-K mode).

The batch, the routes and the teacher's prompts are the mode's inputs, so they equal the top-K run's; the teacher
scores one token per position instead of K, so its mean probability on the query ids (``srpo/teacher/topk_mass``)
is the sampled token's, below the top-K mass; the distillation part is the token-level loss, another value than
the top-K divergence, and the step trains (finite, non-zero gradient)."""

from __future__ import annotations

import math

import pytest

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sdpo_sampled(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("sdpo_sampled"), *tiny_assets, "srpo.method=sdpo",
                  "srpo.distill_mode=sampled_token", "srpo.alpha=1.0", "trainer.total_training_steps=1")


def test_token_level_sdpo_step_trains_on_the_top_k_runs_batch(sdpo, sdpo_sampled):
    sdpo.check([1])
    sdpo_sampled.check([1])
    topk, sampled = sdpo.steps[1], sdpo_sampled.steps[1]
    assert sdpo_sampled.samples_by_session(1) == sdpo.samples_by_session(1), "step 1 sampled other rollouts"
    for key in ("srpo/route/sdpo_frac", "srpo/teacher/samples", "srpo/teacher/tokens"):
        assert sampled[key] == topk[key], key
    assert sampled["srpo/teacher/samples"] > 0
    assert 0 < sampled["srpo/teacher/topk_mass"] < topk["srpo/teacher/topk_mass"]
    assert sampled["srpo/teacher/entropy_mean"] == pytest.approx(topk["srpo/teacher/entropy_mean"], rel=1e-5)
    assert math.isfinite(sampled["srpo/loss/distill"]) and sampled["srpo/loss/distill"] != pytest.approx(
        topk["srpo/loss/distill"], rel=1e-3)
    assert math.isfinite(sampled["actor/grad_norm"]) and sampled["actor/grad_norm"] > 0
