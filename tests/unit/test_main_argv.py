"""srpo_verl.main: verl's config dir on Hydra's search path without breaking Hydra's argument parsing (and without
importing verl), and a refused config is one line on stderr with exit code 2, before Ray starts."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srpo_verl.main import CONFIG_ERROR_EXIT, SEARCHPATH_OVERRIDE, VERL_CONFIG_SEARCHPATH, with_verl_searchpath

EXTRA = SEARCHPATH_OVERRIDE
#: what makes a refused run fail in seconds: the checks run before verl is imported, and Ray never starts
NOT_IMPORTED_BEFORE_A_REFUSAL = ("verl", "ray")
#: a `sitecustomize` that, at interpreter exit, writes the top-level names of the imported modules to the file
#: $SRPO_TEST_IMPORTS_OUT names; on PYTHONPATH, the command under test runs unchanged
REPORT_IMPORTS = """
import atexit, json, os, sys

def _report():
    with open(os.environ["SRPO_TEST_IMPORTS_OUT"], "w") as out:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), out)

atexit.register(_report)
"""


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
    """Start every refused command at once, then wait for each: {case: (rc, stdout, stderr, top-level modules the
    process imported)}."""
    tmp = tmp_path_factory.mktemp("main")
    data = tmp / "train.parquet"
    data.touch()
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(REPORT_IMPORTS)
    cases = {
        "bad_value": ({}, ["srpo.method=bogus"]),
        "bad_value_full_error": ({"HYDRA_FULL_ERROR": "1"}, ["srpo.method=bogus"]),
        "srpo_key_on_verls_trainer": ({}, ["--config-name", "cpu_grpo", "+srpo.method=srpo"]),
        "missing_data_file": ({}, ["--config-name", "cpu_srpo", "data.train_files=/nowhere/train.parquet"]),
        "missing_model": ({}, ["--config-name", "cpu_srpo", f"data.train_files={data}", f"data.val_files={data}",
                               "actor_rollout_ref.model.path=/nowhere/model"]),
    }
    base_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    base_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp / "site"), os.environ.get("PYTHONPATH")]))
    started = {}
    for case, (env, args) in cases.items():
        command = [sys.executable, "-m", "srpo_verl.main", *args, f"hydra.run.dir={tmp / case}"]
        out, err = open(tmp / f"{case}.out", "w"), open(tmp / f"{case}.err", "w")
        env = {**base_env, **env, "SRPO_TEST_IMPORTS_OUT": str(tmp / f"{case}.imports.json")}
        started[case] = (subprocess.Popen(command, env=env, stdout=out, stderr=err), out, err)
    results = {}
    for case, (process, out, err) in started.items():
        process.wait(timeout=600)
        out.close()
        err.close()
        imports = json.loads((tmp / f"{case}.imports.json").read_text())
        results[case] = (process.returncode, (tmp / f"{case}.out").read_text(), (tmp / f"{case}.err").read_text(),
                         set(imports))
    return results


@pytest.mark.parametrize("case, line", [
    ("bad_value", f"error: srpo.method='bogus' is not one of {ALGORITHMS}"),
    ("srpo_key_on_verls_trainer", "error: trainer.v1.trainer_mode='sync' runs verl's own trainer, which ignores the "
                                  "srpo: group"),
    ("missing_data_file", "error: data.train_files='/nowhere/train.parquet' does not exist"),
    ("missing_model", "error: actor_rollout_ref.model.path='/nowhere/model' does not exist"),
])
def test_a_refused_config_is_one_line_and_exit_2(refused_runs, case, line):
    rc, stdout, stderr, imports = refused_runs[case]
    assert rc == CONFIG_ERROR_EXIT, stderr[-3000:]
    assert len(stderr.splitlines()) == 1 and stderr.startswith(line), stderr[-3000:]
    assert stdout == "" and "Traceback" not in stderr
    assert "hydra" in imports and not imports & set(NOT_IMPORTED_BEFORE_A_REFUSAL), sorted(imports)


def test_hydra_full_error_shows_the_traceback(refused_runs):
    rc, _, stderr, _ = refused_runs["bad_value_full_error"]
    assert rc == 1 and "Traceback (most recent call last)" in stderr
    assert f"srpo.method='bogus' is not one of {ALGORITHMS}" in stderr.splitlines()[-1]
