"""srpo_verl.main puts verl's config dir on Hydra's search path without breaking Hydra's argument parsing."""

import argparse

import pytest

from srpo_verl.main import VERL_CONFIG_SEARCHPATH, with_verl_searchpath

EXTRA = f"hydra.searchpath=[{VERL_CONFIG_SEARCHPATH}]"


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
