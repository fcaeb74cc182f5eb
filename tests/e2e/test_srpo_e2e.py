"""End-to-end: GRPO, SDPO and SRPO through the SRPO trainer (`python -m srpo_verl.main --config-name cpu_srpo`) on
the tiny Qwen3 task on CPU.

Runs (each a real verl V1 trainer with Ray, TransferQueue, the hf rollout and the EMA teacher):
  srpo       3 steps, a checkpoint every step, routing dumps;
  resumed    from srpo's step-2 checkpoint, step 3 only: must reproduce srpo's step 3 (the EMA teacher included);
  corrupted  srpo's steps 2-3 with one float of step 3's actor shard flipped: refused in the driver, naming it;
  sdpo       1 step on the same seed (the same step-1 batch as srpo);
  grpo       srpo.method=grpo, 2 steps, against verl's own trainer (trainer_mode=sync) on the same config.
The srpo and sdpo runs are session fixtures (tests/e2e/conftest.py), shared with the other e2e modules.
Set SRPO_VERL_E2E_ASSETS=DIR to reuse prebuilt tiny assets (DIR/model, DIR/data/{train,test}.parquet).
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from srpo_verl.bench import cpu_run
from srpo_verl.bench.cpu_run import CpuRun
from srpo_verl.verl_ext.layout import route_batch

pytestmark = pytest.mark.e2e


def test_srpo_trains_with_routing_teacher_and_ema(srpo):
    srpo.check([1, 2, 3])
    for step, m in srpo.steps.items():
        assert m["training/rollout_probs_diff_mean"] < 1e-6
        assert m["srpo/route/grpo_frac"] + m["srpo/route/sdpo_frac"] == pytest.approx(1.0)
        assert m["srpo/loss/grpo"] + m["srpo/loss/distill"] == pytest.approx(m["actor/pg_loss"], abs=1e-6)
        assert m["srpo/teacher/ema_applied"] == 1.0 and m["srpo/teacher/ema_max_abs_delta"] > 0
        if m["srpo/route/sdpo_frac"] > 0:
            assert m["srpo/dw/weight_mean"] == pytest.approx(1.0, abs=1e-5)
            assert m["srpo/teacher/entropy_mean"] > 0 and 0 < m["srpo/teacher/topk_mass"] <= 1
    assert any(m["srpo/route/sdpo_frac"] > 0 for m in srpo.steps.values()), "no step routed a sample to SDPO"
    teacher = srpo.workdir / "ckpt" / "global_step_3" / "teacher"
    assert (teacher / "model_world_size_1_rank_0.pt").exists(), sorted(p.name for p in teacher.parent.iterdir())


def test_logged_routes_equal_a_recomputation_from_the_rollouts(srpo):
    srpo.check([1, 2, 3])
    for step, m in srpo.steps.items():
        rows = srpo.rollouts(step)
        keys = [row["uid"] for row in rows]
        route, metrics = route_batch(keys, torch.tensor([row["score"] for row in rows]),
                                     torch.zeros(len(rows), dtype=torch.bool), 0.5, "srpo")
        for name, value in metrics.items():
            assert m[name] == pytest.approx(value, abs=1e-9), (step, name)
        dumped = {row["key"]: row for row in srpo.routes(step) if not row["is_padding"]}
        assert {k for k, r in dumped.items() if r["distill"]} == {k for k, d in zip(keys, route.distill) if d}
        # teacher tokens: exactly the routed samples' teacher prompts + responses
        expected_tokens = sum(r["teacher_prompt_len"] + r["response_len"] for r in dumped.values() if r["distill"])
        assert m["srpo/teacher/tokens"] == expected_tokens
        assert m["srpo/teacher/samples"] == sum(r["distill"] for r in dumped.values())


def test_srpo_teacher_samples_are_a_subset_of_sdpos_on_the_same_batch(srpo, sdpo):
    srpo.check([1, 2, 3])
    sdpo.check([1])
    # The same seed replays the same step-1 batch, up to the order of a prompt's n samples (verl names the
    # requests per prompt, so the hf server seeds the k-th arriving one): compare multisets. Routing decisions
    # depend only on whether a sample has a correct sibling, not on that order.
    def sample(row):
        return row["input"], row["output"], row["score"]

    srpo_rows, sdpo_rows = srpo.rollouts(1), sdpo.rollouts(1)
    assert Counter(map(sample, srpo_rows)) == Counter(map(sample, sdpo_rows))
    srpo_by_key, sdpo_by_key = {r["uid"]: sample(r) for r in srpo_rows}, {r["uid"]: sample(r) for r in sdpo_rows}
    srpo_teacher = Counter(srpo_by_key[r["key"]] for r in srpo.routes(1) if r["distill"])
    sdpo_teacher = Counter(sdpo_by_key[r["key"]] for r in sdpo.routes(1) if r["distill"])
    assert srpo_teacher and srpo_teacher <= sdpo_teacher
    # SDPO also distils correct samples that have another correct sibling; SRPO never does
    correct_with_sibling = Counter(sdpo_by_key[r["key"]] for r in sdpo.routes(1) if r["distill"] and r["correct"])
    assert sdpo_teacher - srpo_teacher == correct_with_sibling
    assert sdpo.steps[1]["srpo/teacher/tokens"] >= srpo.steps[1]["srpo/teacher/tokens"]


def test_teacher_checkpoints_rotate_with_the_actors(srpo):
    srpo.check([1, 2, 3])
    ckpt = srpo.workdir / "ckpt"  # trainer.max_actor_ckpt_to_keep=2 (conftest.py)
    teachers = sorted(p.parent.name for p in ckpt.glob("global_step_*/teacher"))
    actors = sorted(p.parent.name for p in ckpt.glob("global_step_*/actor"))
    assert teachers == actors == ["global_step_2", "global_step_3"], sorted(p.name for p in ckpt.glob("*/*"))


@pytest.mark.slow  # its own verl launch; the default suite resumes on 2 ranks (tests/e2e/test_multirank_e2e.py)
def test_resume_reproduces_the_next_step_with_the_ema_teacher(srpo, tiny_assets, tmp_path_factory):
    srpo.check([1, 2, 3])
    workdir = tmp_path_factory.mktemp("resumed")
    ckpt = srpo.copy_checkpoints(workdir, 2)
    resumed = CpuRun(workdir, *tiny_assets, "srpo.method=srpo", "trainer.total_training_steps=3", "trainer.save_freq=1",
                  "trainer.resume_mode=auto")
    resumed.check([3])
    log = resumed.log_path.read_text()
    folder = ckpt / "global_step_2"
    assert f"[srpo] resuming from step 2 ({folder}): actor + EMA teacher; verified 5 files" in log  # the driver
    assert f"[srpo] resumed from step 2 ({folder}): actor + EMA teacher" in log  # the trainer, once loaded
    fresh, again = srpo.steps[3], resumed.steps[3]
    for key in ("critic/score/mean", "actor/pg_loss", "srpo/loss/distill", "srpo/loss/grpo", "actor/grad_norm",
                "srpo/teacher/tokens", "srpo/teacher/entropy_mean", "srpo/teacher/ema_max_abs_delta"):
        assert again[key] == pytest.approx(fresh[key], rel=1e-5, abs=1e-7), key


def test_a_corrupted_latest_checkpoint_is_refused_before_ray_naming_the_file_and_the_step_before(
        srpo, tiny_assets, tmp_path_factory, flip_first_float, monkeypatch):
    srpo.check([1, 2, 3])
    workdir = tmp_path_factory.mktemp("corrupted")
    ckpt = srpo.copy_checkpoints(workdir, 2, 3)
    shard = ckpt / "global_step_3" / "actor" / "model_world_size_1_rank_0.pt"
    entry = flip_first_float(shard)  # one float to 1e30: torch.load would read it without complaint
    monkeypatch.setitem(cpu_run.CPU_ENV, "HYDRA_FULL_ERROR", "0")  # the user's console: one line, exit 2
    refused = CpuRun(workdir, *tiny_assets, "srpo.method=srpo", "trainer.total_training_steps=4",
                     "trainer.save_freq=1")
    log = refused.log_path.read_text()
    assert refused.rc == 2 and not refused.steps, refused.tail()
    assert [line for line in log.splitlines() if line.startswith("error:")] == [
        f"error: cannot resume {ckpt / 'global_step_3'}: {shard} fails its zip CRC check in entry {entry} (the bytes "
        "changed after torch wrote them). The newest complete checkpoint before it is global_step_2: resume from "
        f"it with trainer.resume_mode=resume_path trainer.resume_from_path={ckpt / 'global_step_2'}"], refused.tail()
    assert "ray init kwargs" not in log and not (workdir / "rollouts").exists()  # refused before Ray starts


def test_grpo_method_is_verls_own_grpo_step_for_step(tiny_assets, tmp_path_factory):
    ours = CpuRun(tmp_path_factory.mktemp("grpo"), *tiny_assets, "srpo.method=grpo", "trainer.total_training_steps=2")
    # ~srpo: verl's own trainer on the same config; with the srpo: group it would be refused at start-up
    verl = CpuRun(tmp_path_factory.mktemp("verl_grpo"), *tiny_assets, "~srpo", "trainer.v1.trainer_mode=sync",
               "trainer.total_training_steps=2")
    ours.check([1, 2])
    verl.check([1, 2])
    for step in (1, 2):
        for key in ("critic/score/mean", "actor/pg_loss", "actor/grad_norm", "response_length/mean",
                    "critic/advantages/mean", "actor/entropy"):
            assert ours.steps[step][key] == pytest.approx(verl.steps[step][key], rel=1e-5, abs=1e-6), (step, key)
        assert not any(k.startswith("srpo/teacher") for k in ours.steps[step])
