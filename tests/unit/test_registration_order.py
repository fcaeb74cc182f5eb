"""The SRPO trainer registers whichever module a process imports first: verl's trainer or ours."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "import sys; {first}; tb = sys.modules['verl.trainer.ppo.v1.trainer_base']; " \
        "from srpo_verl.verl_ext.trainer import SRPOTrainer; print(tb.TRAINER_REGISTRY['srpo'] is SRPOTrainer)"


@pytest.mark.parametrize("first", ["import srpo_verl.verl_ext.trainer", "import verl.trainer.ppo.v1.trainer_base"])
def test_the_trainer_is_registered_in_either_import_order(first):
    out = subprocess.run([sys.executable, "-c", CHECK.format(first=first)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
