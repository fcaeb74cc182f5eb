"""The EMA teacher's checkpoints rotate with the actor's (trainer.max_actor_ckpt_to_keep), and trainer.default_hdfs_dir
is refused for the teacher methods (verl 0.9.1's FSDP checkpoint manager never uploads)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import verl.trainer.ppo.v1.trainer_sync  # noqa: F401  (the SRPO trainer module is imported after verl's, as at run time)
from omegaconf import OmegaConf
from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

from srpo_verl.preflight.config import validate_run_config
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.trainer import SRPOTrainer, actor_checkpoints_to_keep


class RotatingManager(BaseCheckpointManager):
    """verl's rotation (ensure_checkpoint_capacity before, register_checkpoint after), in the order
    FSDPCheckpointManager.save_checkpoint runs them on rank 0; writes one file instead of the shards."""

    def __init__(self):  # no model, no process group
        self.previous_saved_paths = []

    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        self.ensure_checkpoint_capacity(max_ckpt_to_keep)
        os.makedirs(local_path, exist_ok=True)
        Path(local_path, "model_world_size_1_rank_0.pt").write_text(str(global_step))
        self.register_checkpoint(local_path, max_ckpt_to_keep)


def test_the_stand_in_runs_verls_rotation_calls_in_verls_order():
    source = inspect.getsource(FSDPCheckpointManager.save_checkpoint)
    assert source.index("ensure_checkpoint_capacity(max_ckpt_to_keep)") < source.index(
        "register_checkpoint(local_path, max_ckpt_to_keep)")


def _trainer(tmp_path: Path, trainer_overrides: dict, monkeypatch) -> tuple[SRPOTrainer, RotatingManager]:
    """An SRPOTrainer with only what _save_checkpoint reads; verl's own save writes actor/ through a manager too."""
    teacher_manager, actor_manager = RotatingManager(), RotatingManager()
    trainer = SRPOTrainer.__new__(SRPOTrainer)
    trainer.srpo = SRPOSettings(method="srpo")
    trainer._init_run_state()
    trainer.config = OmegaConf.create({"trainer": {"default_local_dir": str(tmp_path), **trainer_overrides}})
    trainer.actor_rollout_wg = SimpleNamespace(
        save_teacher=lambda path, step, max_ckpt_to_keep=None: teacher_manager.save_checkpoint(
            path, None, step, max_ckpt_to_keep))

    def verl_save(self):  # PPOTrainer._save_checkpoint's actor part
        folder = tmp_path / f"global_step_{self.global_steps}"
        actor_manager.save_checkpoint(str(folder / "actor"), None, self.global_steps,
                                      actor_checkpoints_to_keep(self.config.trainer))

    monkeypatch.setattr(verl.trainer.ppo.v1.trainer_sync.PPOTrainerSync, "_save_checkpoint", verl_save)
    return trainer, teacher_manager


@pytest.mark.parametrize(
    "overrides, kept",
    [
        ({"max_actor_ckpt_to_keep": 1}, [3]),
        ({"max_actor_ckpt_to_keep": 2}, [2, 3]),
        ({"remove_previous_ckpt_in_save": True}, [3]),  # verl's deprecated spelling of keep-1
        ({}, [1, 2, 3]),  # verl's default: keep all
    ],
)
def test_teacher_folders_rotate_with_the_actors(tmp_path, monkeypatch, overrides, kept):
    trainer, _ = _trainer(tmp_path, overrides, monkeypatch)
    for step in (1, 2, 3):
        trainer.global_steps = step
        trainer._save_checkpoint()
    teachers = sorted(int(p.parent.name.split("_")[-1]) for p in tmp_path.glob("global_step_*/teacher"))
    actors = sorted(int(p.parent.name.split("_")[-1]) for p in tmp_path.glob("global_step_*/actor"))
    assert teachers == kept and actors == kept
    assert (tmp_path / f"global_step_3" / "teacher" / "model_world_size_1_rank_0.pt").read_text() == "3"


def test_checkpoints_to_keep_follows_verl():
    assert actor_checkpoints_to_keep(OmegaConf.create({})) is None
    assert actor_checkpoints_to_keep(OmegaConf.create({"max_actor_ckpt_to_keep": 4})) == 4
    assert actor_checkpoints_to_keep(OmegaConf.create({"max_actor_ckpt_to_keep": 4,
                                                       "remove_previous_ckpt_in_save": True})) == 1


def test_verls_fsdp_checkpoint_manager_ignores_hdfs_path():
    """What the refusal below relies on: verl 0.9.1's FSDP manager documents hdfs_path as unused and never reads it."""
    for method in (FSDPCheckpointManager.save_checkpoint, FSDPCheckpointManager.load_checkpoint):
        source = inspect.getsource(method)
        assert "hdfs_path: Unused" in source
        body = source.split('"""')[-1]  # the code after the docstring
        assert "hdfs" not in body


def _run_config(**trainer):
    return {
        "srpo": {"method": "srpo"},
        "algorithm": {"adv_estimator": "grpo", "use_kl_in_reward": False},
        "data": {"train_batch_size": 32},
        "actor_rollout_ref": {"actor": {"strategy": "fsdp2", "ppo_mini_batch_size": 32, "ppo_epochs": 1, "use_kl_loss": False,
                                        "entropy_coeff": 0},
                              "model": {}, "rollout": {"name": "vllm", "n": 8, "temperature": 1.0}},
        "trainer": {"v1": {"trainer_mode": "srpo"}, **trainer},
    }


def test_default_hdfs_dir_is_refused_for_teacher_methods():
    validate_run_config(_run_config(default_hdfs_dir=None))
    with pytest.raises(ValueError, match=r"trainer\.default_hdfs_dir='hdfs://x/ckpt' is not supported with "
                                         r"srpo\.method=srpo: verl 0\.9\.1's FSDP checkpoint manager never uploads"):
        validate_run_config(_run_config(default_hdfs_dir="hdfs://x/ckpt"))
