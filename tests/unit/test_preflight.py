"""Data rows checked where they are loaded (srpo_verl.preflight.rows) and one run per checkpoint directory
(srpo_verl.preflight.lock): on real parquet files, a real tokenizer, verl's RLHFDataset and real second processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srpo_verl.data.parquet import write_verl_parquet
from srpo_verl.preflight import lock, rows
from srpo_verl.tiny import task

VOCAB = 300


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, write_tokenizer_model_dir) -> Path:
    return write_tokenizer_model_dir(tmp_path_factory.mktemp("model"), VOCAB)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def good_rows(n: int = 6) -> list[dict]:
    train, _ = task.make_splits(seed=0, num_train=n, num_test=1)
    return task.verl_rows(train, "train")


def config(train: Path, val: Path, **data) -> dict:
    return {"data": {"train_files": str(train), "val_files": [str(val)], "max_prompt_length": 64,
                     "truncation": "error", "filter_overlong_prompts": False, **data}}


def long_prompt(row: dict) -> dict:
    row = json.loads(json.dumps(row))
    row["prompt"][1]["content"] = " ".join(["1 2 3 4 5 6 7 8 9"] * 30)
    return row


@pytest.fixture()
def files(tmp_path):
    train = write_verl_parquet(good_rows(), tmp_path / "train.parquet")
    val = write_verl_parquet(good_rows(2), tmp_path / "val.parquet")
    return train, val


def test_good_rows_pass_with_no_notes(files, tokenizer):
    reports, notes = rows.check_data_files(config(*files), tokenizer)
    assert [(r.name, r.rows, dict(r.overlong)) for r in reports] == [("data.train_files", 6, {}),
                                                                      ("data.val_files[0]", 2, {})]
    assert notes == []


def _with(row_edit, index=3):
    data = good_rows()
    row_edit(data[index])
    return data


def _drop_gt(row):
    row["reward_model"] = {"style": "rule", "ground_truth": None}


BAD = [
    (lambda r: r.update(prompt=[]), "prompt is [] (verl would train on the chat template alone)"),
    (_drop_gt, "reward_model.ground_truth is missing or null (verl would score every rollout of this prompt 0)"),
    (lambda r: r["prompt"][1].update(content=None), "prompt[1] is \"{'role': 'user', 'content': None}\", not a "
                                                    "message with string 'content'"),
]


@pytest.mark.parametrize("edit, problem", BAD)
def test_a_bad_row_is_named_by_file_row_and_field(tmp_path, files, tokenizer, edit, problem):
    bad = write_verl_parquet(_with(edit), tmp_path / "bad.parquet")
    with pytest.raises(rows.DataRowError) as refused:
        rows.check_data_files(config(bad, files[1]), tokenizer)
    assert str(refused.value) == f"data.train_files={bad} row 3: {problem}; fix or drop the row"


def test_a_prompt_that_is_not_a_list_and_more_bad_rows_are_counted(tmp_path):
    path = tmp_path / "rows.jsonl"
    data = good_rows()
    data[1]["prompt"] = "What is 2+2?"
    data[4]["reward_model"] = {"style": "rule"}
    path.write_text("\n".join(json.dumps(r) for r in data))
    with pytest.raises(rows.DataRowError) as refused:
        rows.check_data_files(config(path, path))
    assert str(refused.value) == (f"data.train_files={path} row 1: prompt is str 'What is 2+2?', not a list of chat "
                                  "messages (1 more bad row(s) in this file); fix or drop the row")


def test_overlong_prompt_with_truncation_error_is_refused(tmp_path, files, tokenizer):
    data = good_rows()
    data[2], data[5] = long_prompt(data[2]), long_prompt(data[5])
    bad = write_verl_parquet(data, tmp_path / "long.parquet")
    text = tokenizer.apply_chat_template(data[2]["prompt"], add_generation_prompt=True, tokenize=False)
    length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert length > 64
    with pytest.raises(rows.DataRowError) as refused:
        rows.check_data_files(config(files[0], bad), tokenizer)
    assert str(refused.value).startswith(
        f"data.val_files[0]={bad} row 2: prompt is {length} tokens with the chat template, over "
        "data.max_prompt_length=64, and data.truncation=error (1 more in this file); raise data.max_prompt_length")

    reports, notes = rows.check_data_files(config(files[0], bad, truncation="left"), tokenizer)
    assert dict(reports[1].overlong) == {"truncated (data.truncation=left; verl 0.9.1's agent loop keeps the last 64 "
                                         "tokens whatever the side)": 2}
    assert notes == [f"data.val_files[0]={bad}: 2 of 6 prompts over data.max_prompt_length: 2 truncated "
                     "(data.truncation=left; verl 0.9.1's agent loop keeps the last 64 tokens whatever the side)"]
    _, notes = rows.check_data_files(config(files[0], bad, filter_overlong_prompts=True), tokenizer)
    assert notes == [f"data.val_files[0]={bad}: 2 of 6 prompts over data.max_prompt_length: 2 filtered "
                     "(data.filter_overlong_prompts)"]
    # without a tokenizer the lengths are left to the dataset load, and said so
    _, notes = rows.check_data_files(config(files[0], bad))
    assert notes == ["no local tokenizer: prompt lengths are checked when the trainer loads the data"]


def test_the_dataset_load_check_on_verls_rlhf_dataset(tmp_path, tokenizer):
    """What the SRPO trainer runs when the driver could not check the files: verl's own dataset, after its filter."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    data = good_rows()
    data[4] = long_prompt(data[4])
    path = write_verl_parquet(data, tmp_path / "train.parquet")
    cfg = OmegaConf.create(config(path, path))
    dataset = RLHFDataset(str(path), tokenizer, cfg.data)
    assert len(dataset) == 6  # verl keeps the row whatever data.truncation says
    with pytest.raises(rows.DataRowError, match=r"data.train_files=.*train.parquet row 4: prompt is \d+ tokens"):
        rows.check_dataset(dataset, "data.train_files", cfg, tokenizer)
    cfg.data.filter_overlong_prompts = True
    filtered = RLHFDataset(str(path), tokenizer, cfg.data)
    assert len(filtered) == 5
    assert rows.check_dataset(filtered, "data.train_files", cfg, tokenizer).rows == 5


# ------------------------------------------------------------------------------------------------- the lock
HOLD = ("import sys, time; from srpo_verl.preflight.lock import acquire_run_lock; acquire_run_lock(sys.argv[1]); "
        "print('held', flush=True); time.sleep(600)")


def _holder(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_naming_the_live_holder(tmp_path):
    holder = _holder(tmp_path / "ckpt")
    try:
        with pytest.raises(lock.RunLockError) as refused:
            lock.acquire_run_lock(str(tmp_path / "ckpt"))
        message = str(refused.value)
        assert message.startswith(f"trainer.default_local_dir={tmp_path / 'ckpt'} is in use by another run: "
                                  f"pid {holder.pid} on ")
        assert message.endswith(f"holds {tmp_path / 'ckpt' / lock.LOCK_NAME}; wait for it to end, stop it, or give "
                                "this run another trainer.default_local_dir")
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_runs_lock_is_stale_and_taken_over_by_name(tmp_path):
    holder = _holder(tmp_path / "ckpt")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "ckpt" / lock.LOCK_NAME).exists()  # a SIGKILLed run leaves its file
    taken = lock.acquire_run_lock(str(tmp_path / "ckpt"))
    try:
        assert taken.stale.startswith(f"took over the lock of a run that is no longer running: pid {holder.pid} on ")
        assert json.loads((tmp_path / "ckpt" / lock.LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        taken.release()
    assert not (tmp_path / "ckpt" / lock.LOCK_NAME).exists()
    again = lock.acquire_run_lock(str(tmp_path / "ckpt"))  # released cleanly: no stale note
    again.release()
    assert again.stale is None


def test_the_srpo_trainer_checks_rows_at_load_when_the_driver_could_not(tmp_path, tokenizer, monkeypatch):
    """SRPOTrainer._init_dataloader after verl's own (stood in: it builds verl's RLHFDataset from the same files)."""
    import verl.trainer.ppo.v1.trainer_sync  # noqa: F401  (imported before the SRPO trainer module, as at run time)
    from omegaconf import OmegaConf
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from srpo_verl.verl_ext.trainer import SRPOTrainer

    data = good_rows()
    data[1]["prompt"] = []
    bad = write_verl_parquet(data, tmp_path / "train.parquet")
    good = write_verl_parquet(good_rows(2), tmp_path / "val.parquet")
    t = object.__new__(SRPOTrainer)
    t.tokenizer = tokenizer
    t.config = OmegaConf.create({**config(bad, good), "actor_rollout_ref": {"model": {"path": "org/remote-model"}}})

    def verls(self):
        self.train_dataset = RLHFDataset(str(bad), tokenizer, self.config.data)
        self.val_dataset = RLHFDataset(str(good), tokenizer, self.config.data)

    monkeypatch.setattr(PPOTrainerSync, "_init_dataloader", verls)
    assert not rows.checked_before_ray(t.config)  # a hub model: no tokenizer for the driver
    with pytest.raises(rows.DataRowError, match=r"^data.train_files=.*train.parquet row 1: prompt is \[\] "):
        t._init_dataloader()
