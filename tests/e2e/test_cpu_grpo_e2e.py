"""End-to-end: verl 0.9.1's real V1 trainer (`python -m srpo_verl.main`) doing GRPO on CPU through the CPU backend.

Two trainer runs on the tiny Qwen3 task (srpo_verl.tiny, short warm start so groups are mixed and gradients flow):
  1. fresh: 3 steps, a checkpoint after every step, validation after step 3;
  2. resumed from run 1's step-2 checkpoint: must run only step 3 and reproduce run 1's step 3 exactly
     (same sampled responses, same metrics, same weights afterwards).
Set SRPO_VERL_E2E_ASSETS=DIR to reuse prebuilt assets (DIR/model, DIR/data/{train,test}.parquet).
"""

from pathlib import Path

import pytest
import torch

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_S = 600
# Metrics that are a function of the sampled responses and the weights that produced them.
REPRODUCIBLE_METRICS = ("critic/score/mean", "actor/entropy", "response_length/mean", "rollout_corr/rollout_log_ppl",
                        "actor/grad_norm", "actor/pg_loss")


@pytest.fixture(scope="module")
def assets(tiny_assets):
    return tiny_assets


def actor_weights(ckpt_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """Full fp32 actor weights saved by verl at `global_step_<step>` (world size 1: the local shard is everything)."""
    path = ckpt_dir / f"global_step_{step}" / "actor" / "model_world_size_1_rank_0.pt"
    assert path.exists(), f"no checkpoint at {path}: {sorted(p.name for p in ckpt_dir.glob('*'))}"
    state = torch.load(path, map_location="cpu", weights_only=False)
    return {k: (v.to_local() if hasattr(v, "to_local") else v).float() for k, v in state.items()}


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def run_trainer(workdir: Path, assets, *overrides: str) -> CpuRun:
    """`python -m srpo_verl.main --config-name cpu_grpo` in a subprocess (verl's own GRPO trainer, no dumps)."""
    return CpuRun(workdir, *assets, *overrides, config_name="cpu_grpo", timeout_s=RUN_TIMEOUT_S, dumps=False)


@pytest.fixture(scope="module")
def fresh_run(assets, tmp_path_factory):
    return run_trainer(tmp_path_factory.mktemp("fresh"), assets, "trainer.total_training_steps=3",
                       "trainer.save_freq=1", "trainer.test_freq=3")


def test_grpo_runs_three_steps_with_rollout_actor_agreement(fresh_run):
    fresh_run.check([1, 2, 3])
    steps, workdir = fresh_run.steps, fresh_run.workdir
    for step, metrics in steps.items():
        assert metrics["training/rollout_probs_diff_valid"] == 1.0
        assert metrics["training/rollout_probs_diff_mean"] < 1e-6, (step, metrics["training/rollout_probs_diff_mean"])
        assert 0.0 <= metrics["critic/score/mean"] <= 1.0
    # the warm-started model gets some answers right and some wrong, so GRPO has a gradient
    assert any(0.0 < m["critic/score/mean"] < 1.0 for m in steps.values()), {s: m["critic/score/mean"]
                                                                            for s, m in steps.items()}
    assert any(m["actor/grad_norm"] > 0.0 for m in steps.values())
    assert "val-core/synthetic/acc/mean@1" in steps[3], sorted(k for k in steps[3] if k.startswith("val"))
    weights_1, weights_3 = actor_weights(workdir / "ckpt", 1), actor_weights(workdir / "ckpt", 3)
    assert max_abs_diff(weights_1, weights_3) > 1e-6  # training changed the weights


def test_resume_from_checkpoint_continues_at_step_3_with_the_same_weights(fresh_run, assets, tmp_path_factory):
    fresh_run.check([1, 2, 3])
    fresh_dir = fresh_run.workdir
    resumed_run = run_trainer(tmp_path_factory.mktemp("resumed"), assets, "trainer.total_training_steps=3",
                              "trainer.save_freq=1", "trainer.test_freq=3", "trainer.resume_mode=resume_path",
                              f"trainer.resume_from_path={fresh_dir / 'ckpt' / 'global_step_2'}")
    resumed_run.check([3])
    steps, workdir = resumed_run.steps, resumed_run.workdir
    fresh_step_3 = fresh_run.steps[3]
    for key in REPRODUCIBLE_METRICS:
        assert steps[3][key] == pytest.approx(fresh_step_3[key], rel=1e-5, abs=1e-7), key
    assert steps[3]["val-core/synthetic/acc/mean@1"] == fresh_step_3["val-core/synthetic/acc/mean@1"]
    resumed = actor_weights(workdir / "ckpt", 3)
    assert max_abs_diff(resumed, actor_weights(fresh_dir / "ckpt", 3)) < 1e-6
    assert max_abs_diff(resumed, actor_weights(fresh_dir / "ckpt", 2)) > 1e-6
