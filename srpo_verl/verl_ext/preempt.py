"""Preemption: SIGTERM to the driver stops the run at a step boundary, checkpointed, exit 143.

verl 0.9.1's driver dies by SIGABRT ~3 s after SIGTERM (Ray's own handler exits while ``ray.get`` waits), losing
everything since the last ``save_freq`` checkpoint. Here the driver's SIGTERM handler (installed right after
``ray.init``, replacing Ray's) asks the trainer, through a named Ray actor, to stop; the SRPO trainer checks at the
start of every step (``on_step_begin``: the previous step is complete, its metrics logged, nothing of the next
fetched), saves that step unless the tracker already names it, reports the outcome and raises ``Preempted``; the
driver prints the outcome (where to resume) and exits 143. If the trainer does not get there within
``srpo.preempt_grace_s`` the driver exits 143 anyway, naming the last complete checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

CONTROL_NAME = "srpo_run_control"
PREEMPT_EXIT = 143  # 128 + SIGTERM: what a shell and SLURM report for a run ended by SIGTERM


class Preempted(RuntimeError):
    """The trainer stopped at a step boundary on request (the message says where to resume)."""


class RunControl:
    """The Ray actor (``CONTROL_NAME``): the driver's stop request and the trainer's outcome."""

    def __init__(self):
        self.stop = False
        self.outcome: str | None = None

    def request_stop(self) -> None:
        self.stop = True

    def stop_requested(self) -> bool:
        return self.stop

    def report(self, outcome: str) -> None:
        self.outcome = outcome

    def get_outcome(self) -> str | None:
        return self.outcome


def resume_hint(root: str, step: int | None) -> str:
    if step is None:
        return f"no complete checkpoint in {root}: a relaunch starts over"
    return (f"relaunch the same command to resume from step {step} ({os.path.join(root, f'global_step_{step}')}; "
            "trainer.resume_mode=auto)")


def last_complete(root: str) -> int | None:
    try:
        with open(os.path.join(root, "latest_checkpointed_iteration.txt")) as handle:
            step = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return step if os.path.isdir(os.path.join(root, f"global_step_{step}")) else None


class DriverPreemption:
    """The driver's side: the SIGTERM handler and the grace timer."""

    def __init__(self, root: str, grace_s: float):
        self.root = os.path.abspath(root)
        self.grace_s = grace_s
        self.requested_at: float | None = None
        self._done = threading.Event()

    def install(self) -> None:
        """Install the handler right after ray.init (Ray installs its own in ray.init)."""
        import ray

        original = ray.init

        def init(*args, **kwargs):
            ray.init = original
            result = original(*args, **kwargs)
            signal.signal(signal.SIGTERM, self._handler)
            return result

        ray.init = init

    def _handler(self, signum, frame) -> None:
        if self.requested_at is not None:
            return
        self.requested_at = time.monotonic()
        print(f"[srpo] SIGTERM: stopping at the next step boundary (checkpoint first; at most srpo.preempt_grace_s="
              f"{self.grace_s:g} s)", file=sys.stderr, flush=True)
        threading.Thread(target=self._ask_and_wait, daemon=True).start()

    def _ask_and_wait(self) -> None:
        import ray

        deadline = self.requested_at + self.grace_s
        while time.monotonic() < deadline and not self._done.is_set():
            try:
                if ray.is_initialized():  # get_actor would start a cluster otherwise
                    ray.get(ray.get_actor(CONTROL_NAME).request_stop.remote())
                    break
                self._done.wait(1.0)
            except Exception:  # the trainer is not up yet (or verl's own trainer: no control actor)
                self._done.wait(1.0)
        if not self._done.wait(max(deadline - time.monotonic(), 0)):
            print(f"[srpo] error: preempted (SIGTERM) and the run did not reach a step boundary within "
                  f"srpo.preempt_grace_s={self.grace_s:g}; {resume_hint(self.root, last_complete(self.root))}",
                  file=sys.stderr, flush=True)
            os._exit(PREEMPT_EXIT)

    def finish(self) -> None:
        """After the run returned or raised: when SIGTERM came, print the outcome and exit 143."""
        if self.requested_at is None:
            return
        self._done.set()
        outcome = None
        try:
            import ray

            outcome = ray.get(ray.get_actor(CONTROL_NAME).get_outcome.remote(), timeout=30)
        except Exception:
            pass
        print(f"[srpo] {outcome or 'preempted (SIGTERM): ' + resume_hint(self.root, last_complete(self.root))}",
              file=sys.stderr, flush=True)
        sys.exit(PREEMPT_EXIT)
