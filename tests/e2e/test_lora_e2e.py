"""End-to-end: LoRA (``actor_rollout_ref.model.lora_rank=8``) through the real verl trainer on CPU, every teacher
kind on the actor's shared base weights (srpo_verl/verl_ext/adapter_teacher.py), the `hf` rollout synced by adapter
(verl's default ``lora.merge=false``: the server merges, srpo_verl/rollout/hf/lora.py).

  * ema, 1 rank, 2 steps, a checkpoint each step: teacher/ holds the adapter EMA only (fp32, the actor's adapter
    names), the EMA moves by rate · |θ − θ_T| each step, and a kill-and-resume from step 1 reproduces step 2;
  * (slow) ema at rate 1 equals live over 2 steps, and base equals both at step 1 (peft's adapter B starts at 0, so
    the adapters disabled, the initial adapter and the live one are one function at step 1); at step 2 (the same
    rollouts) ema at the default rate, live and base give three different teachers (the swap and verl's
    no-adapter context act);
  * (slow) 2 ranks (FSDP2 over gloo): steps 1 and 2 equal the 1-rank run's (step 2 scores with the swapped-in EMA,
    which differs from the actor's adapters), and its teacher/ holds one adapter shard file per rank.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed.tensor  # noqa: F401  (the actor's shards are DTensors)

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

#: full_determinism: verl's FSDP engine then seeds torch (fsdp_config.seed) before peft draws lora_A; without it the
#: adapter's initial A differs from launch to launch (measured: step-1 grad norm 0.0795 vs 0.0738 on the same rollouts)
LORA = ("srpo.method=srpo", "actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora_alpha=16",
        "actor_rollout_ref.actor.fsdp_config.full_determinism=true")
STEP_KEYS = ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "srpo/loss/grpo", "srpo/loss/distill",
             "srpo/teacher/tokens", "srpo/teacher/samples", "srpo/teacher/entropy_mean", "srpo/teacher/topk_mass")


def assert_same(one: CpuRun, two: CpuRun, step: int, keys=STEP_KEYS, rel: float = 1e-5) -> None:
    assert two.samples_by_session(step) == one.samples_by_session(step), f"step {step} sampled other rollouts"
    assert one.steps[step]["srpo/teacher/samples"] > 0, "nothing routed: the comparison would be empty"
    for key in keys:
        assert two.steps[step][key] == pytest.approx(one.steps[step][key], rel=rel, abs=1e-7), key


@pytest.fixture(scope="module")
def lora_ema(tiny_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("lora_ema"), *tiny_assets, *LORA, "trainer.total_training_steps=2",
                  "trainer.save_freq=1")


def test_lora_ema_trains_checkpoints_the_adapter_ema_and_resumes(lora_ema, tiny_assets, tmp_path_factory):
    lora_ema.check([1, 2])
    for step in (1, 2):
        assert lora_ema.steps[step]["srpo/teacher/ema_applied"] == 1.0
        assert 0 < lora_ema.steps[step]["srpo/teacher/ema_max_abs_delta"] < 1e-3
    teacher = torch.load(lora_ema.workdir / "ckpt" / "global_step_2" / "teacher" / "model_world_size_1_rank_0.pt",
                         weights_only=True)
    assert teacher and all((".lora_A." in n or ".lora_B." in n) and t.dtype == torch.float32
                           for n, t in teacher.items())
    actor = torch.load(lora_ema.workdir / "ckpt" / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt",
                       weights_only=True)
    adapter_bytes = sum(t.numel() * 4 for t in teacher.values())
    base_bytes = sum(t.numel() * t.element_size() for n, t in actor.items() if "lora_" not in n)
    assert adapter_bytes < base_bytes / 5, (adapter_bytes, base_bytes)

    workdir = tmp_path_factory.mktemp("lora_ema_resumed")
    root = lora_ema.copy_checkpoints(workdir, 1)
    resumed = CpuRun(workdir, *tiny_assets, *LORA, "trainer.total_training_steps=2", "trainer.save_freq=1",
                     "trainer.resume_mode=auto")
    resumed.check([2])
    assert f"[srpo] resumed from step 1 ({root / 'global_step_1'}): actor + EMA teacher" in resumed.log_path.read_text()
    assert_same(lora_ema, resumed, 2, STEP_KEYS + ("srpo/teacher/ema_max_abs_delta",))


@pytest.mark.slow
def test_lora_ema_at_rate_1_is_live_and_base_is_both_at_step_1(lora_ema, tiny_assets, tmp_path_factory):
    lora_ema.check([1, 2])
    runs = {kind: CpuRun(tmp_path_factory.mktemp(f"lora_{kind}"), *tiny_assets, *LORA, *extra)
            for kind, extra in (("ema1", ("srpo.ema_rate=1.0", "trainer.total_training_steps=2")),
                                ("live", ("srpo.teacher=live", "trainer.total_training_steps=2")),
                                ("base", ("srpo.teacher=base", "trainer.total_training_steps=2")))}
    runs["ema1"].check([1, 2])
    runs["live"].check([1, 2])
    runs["base"].check([1, 2])
    # step 1: bit for bit; step 2: to fp32 rounding through the trainer (measured: the top-K mass 1.2e-7 relative
    # apart, every other key equal); the bit-for-bit check of the swap itself is tests/unit/test_lora_teacher.py
    assert_same(runs["live"], runs["ema1"], 1, rel=0)
    assert_same(runs["live"], runs["ema1"], 2)
    assert_same(lora_ema, runs["base"], 1)
    assert_same(lora_ema, runs["live"], 1)
    # step 2, the same rollouts (the actors are equal after step 1): the default-rate EMA's adapters (swapped in)
    # and the disabled adapters (base) give other teachers than the live adapters
    entropy = {kind: run.steps[2]["srpo/teacher/entropy_mean"] for kind, run in runs.items()}
    entropy["ema"] = lora_ema.steps[2]["srpo/teacher/entropy_mean"]
    assert lora_ema.samples_by_session(2) == runs["live"].samples_by_session(2) == runs["base"].samples_by_session(2)
    assert len({entropy["live"], entropy["ema"], entropy["base"]}) == 3, entropy


@pytest.mark.slow
def test_lora_ema_on_two_ranks_equals_one_rank(lora_ema, tiny_assets, tmp_path_factory, assert_same_step):
    lora_ema.check([1, 2])
    two = CpuRun(tmp_path_factory.mktemp("lora_two_ranks"), *tiny_assets, *LORA, "trainer.total_training_steps=2",
                 "trainer.save_freq=1", "trainer.n_gpus_per_node=2", "ray_kwargs.ray_init.num_gpus=2",
                 # 16 samples per rank: the micro-batches must divide them (the metrics compared are layout-free)
                 "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16")
    two.check([1, 2])
    assert_same_step(lora_ema, two, 1)
    assert_same_step(lora_ema, two, 2)  # the EMA (rate 0.05) differs from the actor: the swap on sharded adapters
    teacher = two.workdir / "ckpt" / "global_step_2" / "teacher"
    assert sorted(p.name for p in teacher.iterdir()) == [f"model_world_size_2_rank_{r}.pt" for r in (0, 1)]


@pytest.mark.slow
def test_lora_trust_region_mixes_the_adapters_off_and_on_passes(lora_ema, tiny_assets, tmp_path_factory):
    """srpo.teacher=trust_region with LoRA: both halves on the actor engine (the reference with the adapters
    disabled). At step 1 the adapters add 0, so it equals the EMA run's step 1; step 2 runs the mixed teacher."""
    lora_ema.check([1, 2])
    run = CpuRun(tmp_path_factory.mktemp("lora_trust_region"), *tiny_assets, *LORA, "srpo.teacher=trust_region",
                 "srpo.trust_region_rate=0.5", "trainer.total_training_steps=2")
    run.check([1, 2])
    assert_same(lora_ema, run, 1)
    assert run.steps[2]["srpo/teacher/samples"] > 0 and "srpo/teacher/ema_applied" not in run.steps[2]
