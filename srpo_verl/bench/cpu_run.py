"""Launch `python -m srpo_verl.main` on CPU in a subprocess and read what it wrote (for e2e tests and benchmarks).

A run gets its own directory: `run.log` (console), `ckpt/`, `hydra/`, `rollouts/<step>.jsonl` (verl's rollout dump)
and `routes/step_<N>.jsonl` (srpo.route_dump_dir, SRPO trainer only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from srpo_verl.jsonl import load_jsonl
from srpo_verl.report.logs import read_console

CPU_ENV = {"SRPO_VERL_CPU": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1",
           "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"}


class CpuRun:
    """One trainer subprocess: exit code, wall time, per-step console metrics, rollout and route dumps."""

    def __init__(self, workdir: Path, model: Path, train: Path, test: Path, *overrides: str,
                 config_name: str = "cpu_srpo", timeout_s: int = 900, dumps: bool = True):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        model, train, test = (Path(p).resolve() for p in (model, train, test))  # the run's cwd is its workdir
        cmd = [sys.executable, "-m", "srpo_verl.main", "--config-name", config_name,
               f"data.train_files={train}", f"data.val_files={test}", f"actor_rollout_ref.model.path={model}",
               f"trainer.default_local_dir={self.workdir / 'ckpt'}", f"hydra.run.dir={self.workdir / 'hydra'}"]
        if dumps:
            cmd.append(f"trainer.rollout_data_dir={self.workdir / 'rollouts'}")
            if config_name != "cpu_grpo":
                cmd.append(f"srpo.route_dump_dir={self.workdir / 'routes'}")
        cmd.extend(overrides)
        self.log_path = self.workdir / "run.log"
        started = time.perf_counter()
        with open(self.log_path, "w") as log:
            try:
                self.rc = subprocess.run(cmd, cwd=self.workdir, env={**os.environ, **CPU_ENV}, stdout=log,
                                         stderr=subprocess.STDOUT, timeout=timeout_s).returncode
            except subprocess.TimeoutExpired:
                self.rc = -1
        self.wall_s = time.perf_counter() - started
        self.steps = read_console(self.log_path)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check(self, steps: list[int]) -> None:
        """Assert a clean exit that logged exactly ``steps`` (with the log tail in the message)."""
        assert self.rc == 0, f"trainer exited {self.rc}; log tail:\n{self.tail()}"
        assert sorted(self.steps) == steps, f"logged steps {sorted(self.steps)}; log tail:\n{self.tail(20)}"

    def rollouts(self, step: int) -> list[dict]:
        return load_jsonl(self.workdir / "rollouts" / f"{step}.jsonl")

    def routes(self, step: int) -> list[dict]:
        return load_jsonl(self.workdir / "routes" / f"step_{step}.jsonl")

    def samples_by_session(self, step: int) -> dict[tuple[str, str], tuple[str, float]]:
        """{(prompt, session index): (response, score)} of a step's rollouts: what two runs of the same seed must
        share whatever the order the rollouts were dumped in (verl keys a sample `{uid}_{session}_{index}`, with a
        random uid per prompt and run; the session agent loop seeds each session on its own)."""
        return {(row["input"], row["uid"].rsplit("_", 2)[1]): (row["output"], row["score"])
                for row in self.rollouts(step)}

    def copy_checkpoints(self, workdir: Path, *steps: int) -> Path:
        """Copy this run's ``global_step_<k>`` folders into ``workdir/ckpt`` with a tracker naming the last of
        ``steps``, as a run killed after that step leaves them; returns the new checkpoint root."""
        root = Path(workdir) / "ckpt"
        for step in steps:
            shutil.copytree(self.workdir / "ckpt" / f"global_step_{step}", root / f"global_step_{step}")
        (root / "latest_checkpointed_iteration.txt").write_text(str(steps[-1]))
        return root
