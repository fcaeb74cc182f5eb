"""The driver's SIGTERM handler (srpo_verl.verl_ext.preempt.DriverPreemption) in a real process with a real signal:
with no trainer to reach a step boundary, it exits 143 after srpo.preempt_grace_s naming the last complete
checkpoint. (The step-boundary path through the real trainer: tests/e2e/test_faults_e2e.py, marker slow.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from srpo_verl.verl_ext import preempt

DRIVER = """
import signal, sys, time
from srpo_verl.verl_ext.preempt import DriverPreemption
p = DriverPreemption(sys.argv[1], grace_s=1.5)
signal.signal(signal.SIGTERM, p._handler)  # what install() does right after ray.init
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_without_a_step_boundary_exits_143_after_the_grace_naming_the_checkpoint(tmp_path):
    (tmp_path / "global_step_4").mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("4")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == preempt.PREEMPT_EXIT
    assert time.monotonic() - sent >= 1.5
    assert err.splitlines() == [
        "[srpo] SIGTERM: stopping at the next step boundary (checkpoint first; at most srpo.preempt_grace_s=1.5 s)",
        "[srpo] error: preempted (SIGTERM) and the run did not reach a step boundary within srpo.preempt_grace_s=1.5; "
        f"relaunch the same command to resume from step 4 ({tmp_path / 'global_step_4'}; trainer.resume_mode=auto)"]


def test_resume_hint_without_a_checkpoint(tmp_path):
    assert preempt.last_complete(str(tmp_path)) is None
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("2")  # names a step that is not there
    assert preempt.resume_hint(str(tmp_path), preempt.last_complete(str(tmp_path))) == (
        f"no complete checkpoint in {tmp_path}: a relaunch starts over")
