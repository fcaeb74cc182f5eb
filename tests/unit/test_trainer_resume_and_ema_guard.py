"""SRPOTrainer without Ray: the EMA's non-finite guard (_update_actor / _ema_update) and what _load_checkpoint says.

The trainer is built with object.__new__ and given a stand-in worker group; verl's own _update_actor and
_load_checkpoint are replaced by stand-ins that produce what they would (metrics; global_steps from the folder).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import verl.trainer.ppo.v1.trainer_sync  # noqa: F401  (the SRPO trainer module is imported after verl's, as at run time)
from omegaconf import OmegaConf
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from srpo_verl.preflight import checkpoint as ckpt
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.trainer import SRPOTrainer, nonfinite_update_metrics


class WorkerGroup:
    """Records calls; ema_update_teacher answers like SRPOWorker.ema_update_teacher (one dict per rank)."""

    def __init__(self, per_rank=None):
        self.per_rank = per_rank or [{"applied": True, "actor_finite": True, "max_abs_delta": 0.01}]
        self.calls = []

    def ema_update_teacher(self, rate):
        self.calls.append(("ema", rate))
        return self.per_rank

    def load_teacher(self, path):
        self.calls.append(("load_teacher", path))


def trainer(method="srpo", per_rank=None, root: Path | None = None, teacher="ema", **trainer_config) -> SRPOTrainer:
    t = object.__new__(SRPOTrainer)
    t.srpo = SRPOSettings(method=method, teacher=teacher)
    t._init_run_state()
    t.global_steps = 7
    t.timing_raw = {}  # verl's fit loop sets it each step
    t.actor_rollout_wg = WorkerGroup(per_rank)
    t.config = OmegaConf.create({
        "trainer": {"default_local_dir": str(root or "/nowhere"), "resume_mode": "auto", "resume_from_path": None,
                    "nnodes": 1, "n_gpus_per_node": 1, **trainer_config},
        "actor_rollout_ref": {"actor": {"strategy": "fsdp2", "checkpoint": {"load_contents": ["model"]}}},
    })
    return t


FINITE = {"actor/grad_norm": 0.3, "actor/loss": -0.1, "actor/pg_loss": -0.1, "srpo/loss/grpo": -0.12,
          "srpo/loss/distill": 0.02}


@pytest.mark.parametrize("key", sorted(FINITE))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_or_grad_norm_skips_the_ema(key, value, capsys):
    t = trainer()
    metrics = {**FINITE, key: value}
    assert nonfinite_update_metrics(metrics) == [f"{key}={value}"]
    assert t._ema_update(metrics) is False
    assert t.actor_rollout_wg.calls == []  # the worker is not asked: the teacher is left as it was
    assert capsys.readouterr().out == f"[srpo] step 7: {key}={value}: EMA teacher update skipped\n"


def test_a_finite_update_moves_the_teacher():
    t = trainer(per_rank=[{"applied": True, "actor_finite": True, "max_abs_delta": 0.01},
                          {"applied": True, "actor_finite": True, "max_abs_delta": 0.03}])
    metrics = dict(FINITE)
    assert nonfinite_update_metrics(metrics) == [] and nonfinite_update_metrics({}) == []
    assert t._ema_update(metrics) is True
    assert t.actor_rollout_wg.calls == [("ema", 0.05)] and metrics["srpo/teacher/ema_max_abs_delta"] == 0.03


def test_non_finite_actor_weights_stop_the_run_before_a_checkpoint():
    t = trainer(per_rank=[{"applied": False, "actor_finite": True, "max_abs_delta": 0.0},
                          {"applied": False, "actor_finite": False, "max_abs_delta": 0.0}])
    with pytest.raises(RuntimeError, match=r"^step 7: the actor's weights are not finite after the update on rank\(s\) "
                                           r"\[1\] \(loss and grad norm were finite\); the EMA teacher was left"):
        t._ema_update(dict(FINITE))


def test_update_actor_renames_the_loss_parts_and_records_whether_the_ema_ran(monkeypatch):
    def verls_update(self, batch, metrics):
        metrics.update({"actor/grad_norm": 0.3, "actor/loss": -0.1, "actor/srpo/loss/grpo": math.nan})
        return batch

    monkeypatch.setattr(PPOTrainerSync, "_update_actor", verls_update)
    metrics = {}
    assert trainer()._update_actor("batch", metrics) == "batch"
    assert "srpo/loss/grpo" in metrics and metrics["srpo/teacher/ema_applied"] == 0.0
    metrics = {}
    grpo = trainer(method="grpo")
    grpo._update_actor("batch", metrics)
    assert "srpo/teacher/ema_applied" not in metrics and grpo.actor_rollout_wg.calls == []


def write_step(root: Path, step: int, teacher: bool = True) -> Path:
    folder = root / f"global_step_{step}"
    (folder / "actor").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, folder / "actor" / "model_world_size_1_rank_0.pt")
    if teacher:
        (folder / "teacher").mkdir()
        torch.save({"w": torch.ones(2)}, folder / "teacher" / "model_world_size_1_rank_0.pt")
    torch.save({}, folder / "data.pt")
    (root / ckpt.TRACKER_FILE).write_text(str(step))
    return folder


@pytest.fixture
def verls_load(monkeypatch):
    """verl's _load_checkpoint stand-in: global_steps from the tracker (what verl resumes in auto mode)."""
    def load(self):
        tracker = Path(self.config.trainer.default_local_dir) / ckpt.TRACKER_FILE
        self.global_steps = int(tracker.read_text()) if tracker.exists() else 0

    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", load)


def test_resume_prints_the_step_and_that_the_teacher_came_back(tmp_path, verls_load, capsys):
    folder = write_step(tmp_path, 3)
    t = trainer(root=tmp_path)
    t._load_checkpoint()
    assert t.actor_rollout_wg.calls == [("load_teacher", str(folder / "teacher"))]
    assert capsys.readouterr().out == (
        f"[srpo] collapse warnings restart their baselines at step 3 ({folder} has no {ckpt.WATCHES_FILE})\n"
        f"[srpo] resumed from step 3 ({folder}): actor + EMA teacher\n")
    grpo = trainer(method="grpo", root=tmp_path)
    grpo._load_checkpoint()
    assert grpo.actor_rollout_wg.calls == [] and capsys.readouterr().out.endswith(f"({folder}): actor\n")


def test_resume_restores_the_collapse_watches(tmp_path, verls_load, capsys):
    folder = write_step(tmp_path, 3)
    saved = trainer(root=tmp_path)
    saved._format_watch.observe("synthetic", 2, 0.9)
    for step, entropy in enumerate([0.1, 0.2], 1):
        saved._entropy_watch.update(step, {"srpo/teacher/entropy_mean": entropy, "srpo/teacher/tokens": 5})
    ckpt.write_watches(folder, {"format_drop": saved._format_watch.state_dict(),
                                "teacher_entropy": saved._entropy_watch.state_dict()})
    t = trainer(root=tmp_path)
    t._load_checkpoint()
    assert capsys.readouterr().out == f"[srpo] resumed from step 3 ({folder}): actor + EMA teacher\n"
    assert t._format_watch.best == {"synthetic": (0.9, 2)}
    assert t._entropy_watch.state_dict() == saved._entropy_watch.state_dict()
    assert list(t._entropy_watch.recent) == [0.1, 0.2]


def test_a_lost_teacher_is_named_and_the_step_before_offered(tmp_path, verls_load):
    write_step(tmp_path, 2)
    folder = write_step(tmp_path, 3, teacher=False)
    with pytest.raises(FileNotFoundError) as error:
        trainer(root=tmp_path)._load_checkpoint()
    assert str(error.value) == (
        f"resuming srpo.method=srpo from {folder}, which has no teacher/ (the EMA teacher's state): it was deleted or "
        "lost, or the step was written by a run without a teacher (srpo.method=grpo or verl's own trainer). The "
        f"newest complete checkpoint before it is global_step_2: resume from it with trainer.resume_mode=resume_path "
        f"trainer.resume_from_path={tmp_path / 'global_step_2'}")


def test_an_empty_tracker_is_named_before_verl_parses_it(tmp_path, monkeypatch):
    write_step(tmp_path, 1)
    (tmp_path / ckpt.TRACKER_FILE).write_text("")
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", lambda self: pytest.fail("verl's loader was reached"))
    with pytest.raises(ckpt.CheckpointError, match=r"latest_checkpointed_iteration\.txt is empty .* \(echo 1 > "):
        trainer(root=tmp_path)._load_checkpoint()


def test_a_fresh_start_prints_nothing(tmp_path, verls_load, capsys):
    t = trainer(root=tmp_path / "new")
    t._load_checkpoint()
    assert t.global_steps == 0 and t.actor_rollout_wg.calls == [] and capsys.readouterr().out == ""
