"""End-to-end: SRPO step 1 with what a GPU user runs, bf16 mixed precision (FSDP2 MixedPrecisionPolicy: bf16
compute, fp32 master weights and gradient reduction, for the actor and the teacher engine), gradient checkpointing
and packed sequences, against the fp32 padded run of tests/e2e/conftest.py (``srpo``).

The rollouts are the same (the hf rollout keeps its own fp32 weights, synced from the fp32 master copy), so the
routes and teacher tokens must match exactly; every value computed by the model differs by bf16 rounding.
Tolerance: bf16 keeps 8 significant bits (unit roundoff u = 2^-9 ≈ 2e-3 per rounding). Each logit is a sum through
the model's layers of products rounded to bf16, so a log-prob carries an error of a few u relative to the logit
scale, ~1e-2 absolute here; the step's loss parts and gradient norm are means over ~10^3 tokens of such terms, whose
rounding errors partly cancel, but the PPO ratio exp(log π − log π_old) and the top-K ids (a near-tie can swap a
stored id) pass them on unaveraged for some tokens. A 5% relative bound on the loss parts, the gradient norm and
the teacher's mean entropy and top-K mass is a few times that. The smallest and largest entropy weight are not
averages but one token's exp(−β·H) over the batch mean: a logit error of u·|l| (~0.03 on this model's logits)
moves one token's entropy by up to ~0.1 nats, so those two get a 12% bound (exp(0.1) − 1 ≈ 0.105, plus the
mean's share). A wrong branch (a bf16 divergence, an fp32/bf16 mix-up of the teacher shards, a lost gradient) moves
these by far more. Measured (2-core CPU): grad norm 1.4%, mean teacher entropy 1.5%, loss parts 0.1-0.3%, top-K
mass 8e-6, smallest weight 7.2%, largest 0.02% (docs/SRPO_ON_VERL.md). The fp32 maths of the divergence on bf16 logits is asserted in the loss itself
(srpo_verl/verl_ext/loss.py) and unit-tested (tests/unit/test_srpo_loss_fn.py).
"""

from __future__ import annotations

import pytest

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

GPU_USER = (
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=bf16",
    "actor_rollout_ref.ref.fsdp_config.mixed_precision.param_dtype=bf16",
    "actor_rollout_ref.model.enable_gradient_checkpointing=true",
    "actor_rollout_ref.model.use_remove_padding=true",
)
EXACT = ("critic/score/mean", "srpo/route/grpo_frac", "srpo/route/sdpo_frac", "srpo/teacher/tokens",
         "srpo/teacher/samples")
ROUNDED = {key: 5e-2 for key in ("actor/pg_loss", "actor/grad_norm", "srpo/loss/grpo", "srpo/loss/distill",
                                   "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass")}
ROUNDED.update({"srpo/dw/weight_min": 0.12, "srpo/dw/weight_max": 0.12})


@pytest.fixture(scope="module")
def srpo_bf16(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("srpo_bf16"), *tiny_assets, "srpo.method=srpo",
                  "trainer.total_training_steps=1", *GPU_USER)


def test_bf16_packed_checkpointed_step_is_the_fp32_step_within_bf16_rounding(srpo, srpo_bf16):
    srpo.check([1, 2, 3])
    srpo_bf16.check([1])
    fp32, bf16 = srpo.steps[1], srpo_bf16.steps[1]
    assert srpo_bf16.samples_by_session(1) == srpo.samples_by_session(1), "step 1 sampled other rollouts"
    assert fp32["srpo/route/sdpo_frac"] > 0, "step 1 routed nothing to SDPO: the comparison is empty"
    for key in EXACT:
        assert bf16[key] == pytest.approx(fp32[key], rel=1e-9), key
    deviations = {key: abs(bf16[key] - fp32[key]) / abs(fp32[key]) for key in ROUNDED}
    print("bf16 vs fp32 relative deviations:", {k: f"{v:.2e}" for k, v in deviations.items()})
    assert all(deviations[key] <= bound for key, bound in ROUNDED.items()), deviations
    # the run computed in bf16: its gradient norm is not the fp32 one to the last bits
    assert deviations["actor/grad_norm"] > 1e-6, deviations
    assert bf16["srpo/dw/weight_mean"] == pytest.approx(1.0, rel=1e-5)
