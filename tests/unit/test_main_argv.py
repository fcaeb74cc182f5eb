"""srpo_verl.main: verl's config dir on Hydra's search path without breaking Hydra's argument parsing (and without
importing verl), and a refused config is one line on stderr with exit code 2, before Ray starts."""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srpo_verl.main import CONFIG_ERROR_EXIT, SEARCHPATH_OVERRIDE, VERL_CONFIG_SEARCHPATH, with_verl_searchpath

EXTRA = SEARCHPATH_OVERRIDE
#: CPU seconds (user + system) a refused run may take: ~6 s measured (Hydra, torch, the checks; verl is not imported
#: before the checks, Ray never starts); CPU time, not wall time, so that a loaded CI machine cannot fail it
MAX_CPU_SECONDS_TO_FAIL = 30


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--config-name", "cpu_srpo", "a=1", "b=2"], ["--config-name", "cpu_srpo", EXTRA, "a=1", "b=2"]),
        (["a=1", "--cfg", "job", "--resolve"], [EXTRA, "a=1", "--cfg", "job", "--resolve"]),
        (["--cfg", "job", "--resolve", "a=1"], ["--cfg", "job", "--resolve", EXTRA, "a=1"]),
        (["--info", "searchpath", "a=1"], ["--info", "searchpath", EXTRA, "a=1"]),
        (["-cn", "srpo_trainer"], ["-cn", "srpo_trainer", EXTRA]),
        (["hydra.searchpath=[file:///x]", "a=1"], ["hydra.searchpath=[file:///x]", "a=1"]),
    ],
)
def test_searchpath_joins_the_overrides(args, expected):
    assert with_verl_searchpath(["main.py", *args]) == ["main.py", *expected]


def test_result_parses_like_hydra():
    # the subset of Hydra's parser that matters: flags with values, and one run of positional overrides
    parser = argparse.ArgumentParser()
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--cfg", "-c")
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--config-name", "-cn")
    args = parser.parse_args(with_verl_searchpath(["main.py", "--config-name", "x", "a=1", "--cfg", "job"])[1:])
    assert args.overrides == [EXTRA, "a=1"] and args.cfg == "job"


def test_searchpath_is_verls_config_dir():
    folder = Path(VERL_CONFIG_SEARCHPATH.removeprefix("file://"))
    assert (folder / "ppo_trainer.yaml").is_file() and folder.parts[-3:] == ("verl", "trainer", "config")


ALGORITHMS = "grpo, sdpo, srpo, srpo_no_dw, adv_mix, sdpo_incorrect_only, sdpo_correct_only"


@pytest.fixture(scope="module")
def refused_runs(tmp_path_factory):
    """Start every refused command at once, then reap each with its own rusage:
    {case: (rc, stdout, stderr, wall seconds, CPU seconds)}."""
    tmp = tmp_path_factory.mktemp("main")
    data = tmp / "train.parquet"
    data.touch()
    cases = {
        "bad_value": ({}, ["srpo.method=bogus"]),
        "bad_value_full_error": ({"HYDRA_FULL_ERROR": "1"}, ["srpo.method=bogus"]),
        "srpo_key_on_verls_trainer": ({}, ["--config-name", "cpu_grpo", "+srpo.method=srpo"]),
        "missing_data_file": ({}, ["--config-name", "cpu_srpo", "data.train_files=/nowhere/train.parquet"]),
        "missing_model": ({}, ["--config-name", "cpu_srpo", f"data.train_files={data}", f"data.val_files={data}",
                               "actor_rollout_ref.model.path=/nowhere/model"]),
    }
    base_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    started = {}
    for case, (env, args) in cases.items():
        command = [sys.executable, "-m", "srpo_verl.main", *args, f"hydra.run.dir={tmp / case}"]
        out, err = open(tmp / f"{case}.out", "w"), open(tmp / f"{case}.err", "w")
        process = subprocess.Popen(command, env={**base_env, **env}, stdout=out, stderr=err)
        started[case] = (time.perf_counter(), process, out, err)
    results = {}
    for case, (t0, process, out, err) in started.items():
        _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU time (runs overlap)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.close()
        err.close()
        results[case] = (process.returncode, (tmp / f"{case}.out").read_text(), (tmp / f"{case}.err").read_text(),
                         time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)
    return results


@pytest.mark.parametrize("case, line", [
    ("bad_value", f"error: srpo.method='bogus' is not one of {ALGORITHMS}"),
    ("srpo_key_on_verls_trainer", "error: trainer.v1.trainer_mode='sync' runs verl's own trainer, which ignores the "
                                  "srpo: group"),
    ("missing_data_file", "error: data.train_files='/nowhere/train.parquet' does not exist"),
    ("missing_model", "error: actor_rollout_ref.model.path='/nowhere/model' does not exist"),
])
def test_a_refused_config_is_one_line_and_exit_2(refused_runs, case, line):
    rc, stdout, stderr, wall_s, cpu_s = refused_runs[case]
    print(f"{case}: exit {rc}, {wall_s:.1f} s wall, {cpu_s:.1f} s CPU: {stderr.strip()}")
    assert rc == CONFIG_ERROR_EXIT, stderr[-3000:]
    assert len(stderr.splitlines()) == 1 and stderr.startswith(line), stderr[-3000:]
    assert stdout == "" and "Traceback" not in stderr
    assert cpu_s < MAX_CPU_SECONDS_TO_FAIL, f"{case} took {cpu_s:.1f} s of CPU to fail"


def test_hydra_full_error_shows_the_traceback(refused_runs):
    rc, _, stderr, _, _ = refused_runs["bad_value_full_error"]
    assert rc == 1 and "Traceback (most recent call last)" in stderr
    assert f"srpo.method='bogus' is not one of {ALGORITHMS}" in stderr.splitlines()[-1]
