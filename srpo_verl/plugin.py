"""Entry point that verl loads on `import verl` (the `verl.plugins` group), in the driver and in every Ray worker.

verl swallows plugin import errors at DEBUG level, so every failure here is printed to stderr and re-raised.
It activates the opt-in CPU backend (only with SRPO_VERL_CPU=1), registers the `hf` rollout
(srpo_verl.rollout.hf, on any platform) and the SRPO trainer name (srpo_verl.verl_ext.registration), and makes
verl's replay buffer honour `trainer.v1.sampler.poll_interval_s` (srpo_verl.verl_ext.replay_poll) and its
validation bootstrap vectorised, bit for bit (srpo_verl.verl_ext.val_metrics). This is the
only module that reaches the CPU backend.
"""

import sys
import traceback

try:
    from srpo_verl.cpu import activate_if_enabled
    from srpo_verl.rollout import hf as hf_rollout
    from srpo_verl.verl_ext import registration, replay_poll, reward_guard, val_metrics

    # CPU backend first: its patches must be in place before verl's workers module is imported.
    activate_if_enabled()
    hf_rollout.register()
    registration.install()
    replay_poll.install()
    val_metrics.install()
    reward_guard.install()
except BaseException:
    print("[srpo_verl.plugin] FAILED to load the srpo_verl verl plugin:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    raise
