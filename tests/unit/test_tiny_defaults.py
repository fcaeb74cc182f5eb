"""The quickstart's knobs live in the package (srpo_verl.tiny.defaults); scripts/quickstart.sh reads them there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from srpo_verl.tiny.defaults import QUICKSTART_DEFAULTS, shell_lines

ROOT = Path(__file__).resolve().parents[2]


def _bash_knobs(env: dict) -> dict:
    script = f'eval "$("{sys.executable}" -m srpo_verl.tiny.defaults)"; echo "$STEPS $LR $LEVEL $ALGO $VAL_N"'
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, check=True)
    return dict(zip(("STEPS", "LR", "LEVEL", "ALGO", "VAL_N"), done.stdout.split()))


def test_the_shell_gets_the_defaults_and_keeps_values_from_the_environment():
    env = {k: v for k, v in os.environ.items() if k not in QUICKSTART_DEFAULTS}
    assert _bash_knobs(env) == {"STEPS": "40", "LR": "2e-4", "LEVEL": "quickstart", "ALGO": "srpo", "VAL_N": "4"}
    assert _bash_knobs({**env, "STEPS": "7", "LEVEL": "long"}) == {"STEPS": "7", "LR": "2e-4", "LEVEL": "long",
                                                                   "ALGO": "srpo", "VAL_N": "4"}


def test_shell_lines_refuse_values_that_need_quoting():
    assert shell_lines({"A": "1e-4"}) == ': "${A:=1e-4}"\n'
    with pytest.raises(ValueError, match="plain shell words"):
        shell_lines({"A": "two words"})


def test_quickstart_script_sets_no_default_of_its_own():
    text = (ROOT / "scripts" / "quickstart.sh").read_text()
    assert 'eval "$("$PY" -m srpo_verl.tiny.defaults)"' in text
    for name in QUICKSTART_DEFAULTS:
        assert f"{name}=${{{name}:-" not in text, name
    assert '--level "$LEVEL"' in text
