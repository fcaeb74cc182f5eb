"""Shared e2e fixtures: the tiny Qwen3 assets, built once per test session (about 2.5 minutes on 2 cores), and the
one-rank SRPO and SDPO runs that several modules compare against (each run once per session).

Set SRPO_VERL_E2E_ASSETS=DIR to reuse prebuilt assets (DIR/model, DIR/data/{train,test}.parquet), e.g. the ones
`python -m srpo_verl.tiny.build --out DIR` or the quickstart (runs/tiny_assets_seed0) wrote.
"""

import os
from pathlib import Path

import pytest

from srpo_verl.bench.cpu_run import CpuRun


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """(model_dir, train_parquet, test_parquet) of the tiny synthetic task, warm-started to mixed groups."""
    prebuilt = os.environ.get("SRPO_VERL_E2E_ASSETS")
    if prebuilt:
        root = Path(prebuilt)
        paths = (root / "model", root / "data" / "train.parquet", root / "data" / "test.parquet")
        missing = [str(p) for p in paths if not p.exists()]
        assert not missing, f"SRPO_VERL_E2E_ASSETS={prebuilt}: missing {missing}"
        return paths
    from srpo_verl.tiny.build import build_tiny_assets

    built = build_tiny_assets(tmp_path_factory.mktemp("tiny"), seed=0)
    return built.model_dir, built.train_parquet, built.test_parquet


@pytest.fixture(scope="session")
def srpo(tiny_assets, tmp_path_factory):
    """SRPO, 1 rank, one micro-batch per step: 3 steps with a checkpoint each step, the last 2 kept (step 1's actor/
    and teacher/ rotate out)."""
    return CpuRun(tmp_path_factory.mktemp("srpo"), *tiny_assets, "srpo.method=srpo", "trainer.total_training_steps=3",
                  "trainer.save_freq=1", "trainer.max_actor_ckpt_to_keep=2")


@pytest.fixture(scope="session")
def sdpo(tiny_assets, tmp_path_factory):
    """SDPO, 1 rank, 1 step on the same seed as ``srpo`` (the same step-1 batch)."""
    return CpuRun(tmp_path_factory.mktemp("sdpo"), *tiny_assets, "srpo.method=sdpo", "trainer.total_training_steps=1")


#: Step metrics that must not depend on how the batch is laid out (ranks, micro-batches, packed or padded
#: sequences, which cross-entropy verl would pick): the step's score, loss parts and gradient norm, its routes, the
#: teacher's tokens, entropy and top-K mass, the entropy weights and the EMA's change.
LAYOUT_FREE_METRICS = (
    "critic/score/mean", "actor/pg_loss", "actor/grad_norm", "srpo/loss/grpo", "srpo/loss/distill",
    "srpo/route/grpo_frac", "srpo/route/sdpo_frac", "srpo/teacher/tokens", "srpo/teacher/samples",
    "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass", "srpo/dw/weight_mean", "srpo/dw/weight_min",
    "srpo/dw/weight_max", "srpo/teacher/ema_max_abs_delta",
)


@pytest.fixture(scope="session")
def assert_same_step():
    """check(one, two, step, rel=1e-5, abs=1e-7): both runs sampled the same step (every session's response and
    reward) and agree on every :data:`LAYOUT_FREE_METRICS` key the first logged. fp32 sums taken in another order
    (other micro-batches, ranks, attention shapes) differ at ~1e-7 relative: 1e-5 covers that and nothing else."""

    def check(one: CpuRun, two: CpuRun, step: int, rel: float = 1e-5, abs: float = 1e-7) -> None:
        assert two.samples_by_session(step) == one.samples_by_session(step), f"step {step} sampled other rollouts"
        compared = [key for key in LAYOUT_FREE_METRICS if key in one.steps[step]]
        assert "actor/grad_norm" in compared, sorted(one.steps[step])
        for key in compared:
            assert two.steps[step][key] == pytest.approx(one.steps[step][key], rel=rel, abs=abs), key

    return check
