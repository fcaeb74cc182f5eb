"""scripts/eval/eval_checkpoint.sh and scripts/launch/*: what they run, checked with a recorder standing in for
python and ray (no GPU, no cluster). Shell syntax and shellcheck of these files are covered by test_recipes.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "scripts" / "eval" / "eval_checkpoint.sh"
RAY_CLUSTER = REPO / "scripts" / "launch" / "ray_cluster.sh"


@pytest.fixture
def recorder(tmp_path) -> tuple[Path, Path]:
    """An executable that appends its argv as one JSON line to calls.jsonl."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "bin" / "record"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    script.chmod(0o755)
    return script, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def test_eval_runs_validation_only_per_task_then_scores(recorder, tmp_path):
    record, log = recorder
    data = tmp_path / "data"
    for task in ("chemistry", "tooluse"):
        (data / task).mkdir(parents=True)
        for split in ("train", "test"):
            (data / task / f"{split}.parquet").write_bytes(b"")
    ckpt = tmp_path / "ckpt" / "srpo" / "global_step_450"
    (ckpt / "actor").mkdir(parents=True)
    result = run(EVAL, "actor_rollout_ref.rollout.val_kwargs.n=4", CKPT=str(ckpt), PYTHON=str(record),
                 TASKS="chemistry tooluse", DATA_DIR=str(data), EVAL_ROOT=str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    merge, chemistry, tooluse, score = calls(log)
    merged = f"{ckpt}/actor/huggingface_merged"
    assert merge == ["-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir", f"{ckpt}/actor",
                     "--target_dir", merged]
    eval_dir = tmp_path / "eval" / "srpo-global_step_450"
    for argv, task in ((chemistry, "chemistry"), (tooluse, "tooluse")):
        assert argv[:2] == ["-m", "srpo_verl.main"] and "--cfg" not in argv
        assert f"actor_rollout_ref.model.path={merged}" in argv
        assert f"data.val_files={data}/{task}/test.parquet" in argv
        assert f"trainer.validation_data_dir={eval_dir}/{task}/val_generations" in argv
        assert "srpo.method=grpo" in argv and "trainer.save_freq=-1" in argv
        # the eval overrides come after the recipe's, and the user's last
        assert argv[-5:] == ["trainer.val_only=True", "trainer.val_before_train=True", "trainer.resume_mode=disable",
                             f"trainer.experiment_name=eval-srpo-global_step_450-{task}",
                             "actor_rollout_ref.rollout.val_kwargs.n=4"]
        assert argv.index(f"trainer.validation_data_dir={eval_dir}/{task}/val_generations") < argv.index(
            "trainer.val_only=True")
    assert score == [str(REPO / "scripts" / "eval" / "score_generations.py"),
                     f"{eval_dir}/chemistry/val_generations", f"{eval_dir}/tooluse/val_generations",
                     "--k", "1,4,8,16", "--last"]


def test_eval_dry_run_merges_nothing_and_scores_nothing(recorder, tmp_path):
    record, log = recorder
    result = run(EVAL, MODEL_PATH="/models/Qwen3-4B", MODEL_TAG="qwen3_4b", DRY_RUN="1", PYTHON=str(record),
                 TASKS="physics", EVAL_ROOT=str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr[-2000:]
    (only,) = calls(log)
    assert {"--cfg", "job", "--resolve"} <= set(only) and "actor_rollout_ref.model.path=/models/Qwen3-4B" in only
    assert f"trainer.validation_data_dir={tmp_path}/eval/Qwen3-4B/physics/val_generations" in only


def test_eval_rejects_a_folder_that_is_not_a_checkpoint(tmp_path):
    result = run(EVAL, CKPT=str(tmp_path))
    assert result.returncode == 2 and f"{tmp_path}/actor not found" in result.stderr


def test_ray_submit_ships_the_repo_and_passes_knobs(recorder, tmp_path):
    record, log = recorder
    (tmp_path / "bin" / "ray").symlink_to(record)
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "HEAD_IP": "10.1.2.3", "NNODES": "2",
           "TASK": "biology", "DATA_DIR": "/shared/data", "RUNS_DIR": "/shared/runs", "CKPT_DIR": "/shared/ckpt",
           "MODEL_PATH": "/shared/models/Qwen3-8B"}
    result = run(RAY_CLUSTER, "submit", "recipes/qwen3_8b/run_srpo.sh", "trainer.total_training_steps=450", **env)
    assert result.returncode == 0, result.stderr[-2000:]
    (argv,) = calls(log)
    assert argv[:2] == ["job", "submit"] and "--address=http://10.1.2.3:8265" in argv
    runtime_env = json.loads(next(a for a in argv if a.startswith("--runtime-env-json=")).split("=", 1)[1])
    assert runtime_env["working_dir"] == str(REPO)
    assert runtime_env["env_vars"]["VERL_USE_EXTERNAL_MODULES"] == "srpo_verl.plugin"
    assert "/.git/" in runtime_env["excludes"] and "/data/" in runtime_env["excludes"]
    entry = argv[argv.index("--") + 1:]
    assert entry[0] == "env" and entry[-3:] == ["bash", "recipes/qwen3_8b/run_srpo.sh",
                                                "trainer.total_training_steps=450"]
    assert {"NNODES=2", "GPUS_PER_NODE=8", "TASK=biology", "DATA_DIR=/shared/data", "RUNS_DIR=/shared/runs",
            "CKPT_DIR=/shared/ckpt", "MODEL_PATH=/shared/models/Qwen3-8B", "ROLLOUT_ENGINE=vllm"} <= set(entry)
    # the head advertises NODE_IP (else an interface's address, never 127.x: see test_launcher.py)
    result = run(RAY_CLUSTER, "head", **{**env, "BLOCK": "1", "NODE_IP": "10.1.2.3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert calls(log)[-1] == ["start", "--head", "--node-ip-address=10.1.2.3", "--port=6379", "--dashboard-host=0.0.0.0",
                              "--dashboard-port=8265", "--num-gpus=8", "--block"]
    result = run(RAY_CLUSTER, "worker", **env)
    assert calls(log)[-1] == ["start", "--address=10.1.2.3:6379", "--num-gpus=8"]
    bad = run(RAY_CLUSTER, "submit", "recipes/nope.sh", **env)
    assert bad.returncode == 2 and "recipe recipes/nope.sh not found" in bad.stderr
