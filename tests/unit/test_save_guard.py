"""A checkpoint save that fails for a real OS error (writes to /dev/full fail with ENOSPC) through SRPOTrainer's
_save_checkpoint and verl's own PPOTrainer._save_checkpoint (worker group and dataloader stood in): one line naming
the directory, its free space and the step to resume from; the half-written step folder gone."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import verl.trainer.ppo.v1.trainer_sync  # noqa: F401  (imported before the SRPO trainer module, as at run time)
from omegaconf import OmegaConf

from srpo_verl.verl_ext import save_guard
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.trainer import SRPOTrainer


class WorkerGroup:
    """Writes a real actor shard where verl's worker would."""

    def save_checkpoint(self, local_path, remote_path, step, max_ckpt_to_keep=None):
        os.makedirs(local_path, exist_ok=True)
        torch.save({"w": torch.ones(4)}, os.path.join(local_path, "model_world_size_1_rank_0.pt"))


class Loader:
    def state_dict(self):
        return {"epoch": 0, "samples": list(range(1000))}


class Callback:
    def __init__(self):
        self.saved = []

    def on_save(self, trainer, global_step, checkpoint_dir, async_save):
        self.saved.append(global_step)


def trainer(root: Path, step: int) -> SRPOTrainer:
    t = object.__new__(SRPOTrainer)
    t.srpo = SRPOSettings(method="grpo")
    t._init_run_state()
    t.global_steps = step
    t.actor_rollout_wg = WorkerGroup()
    t.train_dataloader = Loader()
    t.use_critic = False
    t.trainer_mode = "sync"
    t.checkpoint_callback = Callback()
    t.config = OmegaConf.create({
        "trainer": {"default_local_dir": str(root), "default_hdfs_dir": None, "max_actor_ckpt_to_keep": None},
        "actor_rollout_ref": {"actor": {"checkpoint": {}}},
    })
    return t


def test_a_save_that_fails_writing_names_the_directory_space_and_resume_step(tmp_path, capsys):
    root = tmp_path / "ckpt"
    t = trainer(root, 1)
    t._save_checkpoint()  # a good save: verl's folder and tracker
    assert (root / "global_step_1" / "data.pt").is_file()
    assert (root / "latest_checkpointed_iteration.txt").read_text() == "1"

    t.global_steps = 2
    (root / "global_step_2").mkdir()
    os.symlink("/dev/full", root / "global_step_2" / "data.pt")  # every write there fails with ENOSPC
    with pytest.raises(save_guard.CheckpointSaveError) as failed:
        t._save_checkpoint()
    message = str(failed.value)
    assert message.startswith(f"saving the step 2 checkpoint into {root} failed (")
    assert re.search(r" failed \(\d+\.\d+ [MG]iB free of \d+\.\d+ [MG]iB\): ", message)
    assert "RuntimeError: [enforce fail at inline_container.cc" in message  # torch's writer: no word of the disk
    assert message.endswith(f"the half-written global_step_2/ was removed; free space (or fix the OS error) and "
                            f"relaunch the same command to resume from step 1 ({root / 'global_step_1'})")
    assert "\n" not in message
    assert capsys.readouterr().err.strip() == f"[srpo] error: {message}"
    assert sorted(p.name for p in root.iterdir()) == ["global_step_1", "latest_checkpointed_iteration.txt"]
    assert (root / "latest_checkpointed_iteration.txt").read_text() == "1" and t.checkpoint_callback.saved == [1]


def test_without_an_earlier_checkpoint_the_line_says_a_relaunch_starts_over(tmp_path):
    root = tmp_path / "ckpt"
    (root / "global_step_1").mkdir(parents=True)
    os.symlink("/dev/full", root / "global_step_1" / "data.pt")
    with pytest.raises(save_guard.CheckpointSaveError, match="no earlier complete checkpoint: a relaunch starts over$"):
        trainer(root, 1)._save_checkpoint()
    assert not (root / "global_step_1").exists()


def test_a_folder_that_cannot_be_removed_is_renamed_so_nothing_reads_it(tmp_path, monkeypatch):
    folder = tmp_path / "global_step_3"
    (folder / "actor").mkdir(parents=True)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(save_guard.shutil, "rmtree", refuse)
    assert save_guard.remove_partial(folder) == ("the half-written global_step_3/ could not be removed and was "
                                                 "renamed global_step_3.incomplete/")
    assert (tmp_path / "global_step_3.incomplete" / "actor").is_dir() and not folder.exists()
