"""The SRPO trainer registers whichever module a process imports first: verl's trainer or ours.

"verl's trainer first" is read from `verl_probe_without_cpu_flag` (tests/unit/conftest.py), a fresh process whose
first import is verl's trainer module (shared with two other files: one fewer `import verl` process); "ours first"
needs a process of its own.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = "import sys; {first}; tb = sys.modules['verl.trainer.ppo.v1.trainer_base']; " \
        "from srpo_verl.verl_ext.trainer import SRPOTrainer; print(tb.TRAINER_REGISTRY['srpo'] is SRPOTrainer)"


def test_the_trainer_is_registered_when_verls_trainer_is_imported_first(verl_probe_without_cpu_flag):
    report = verl_probe_without_cpu_flag
    assert report["loaded_before_first_import"] == {"verl": False, "ours": False}
    assert report["registered_by_the_hook"] is True  # deferred registration, at the end of verl's trainer import
    assert report["srpo_is_our_trainer"] is True


def test_the_trainer_is_registered_when_ours_is_imported_first():
    out = subprocess.run([sys.executable, "-c", CHECK.format(first="import srpo_verl.verl_ext.trainer")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
