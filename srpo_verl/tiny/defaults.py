"""The CPU quickstart's knobs and their defaults, set here only: ``scripts/quickstart.sh`` reads them
(``python -m srpo_verl.tiny.defaults`` prints ``: "${VAR:=default}"`` lines for it to eval) and the comparison
harness (``srpo_verl.bench.compare``) takes its defaults from ``QUICKSTART_DEFAULTS``.

Values are the strings handed to the script's environment (``LR`` stays ``2e-4`` as written).
"""

from __future__ import annotations

import shlex
import sys

QUICKSTART_DEFAULTS: dict[str, str] = {
    "ALGO": "srpo",        # srpo | sdpo | grpo
    "STEPS": "40",         # training steps
    "SEED": "0",           # model init, data and warm-start seed
    "LEVEL": "quickstart",  # tiny-asset level (srpo_verl.tiny.build.LEVELS)
    "BATCH": "16",         # prompts per step (each sampled N times)
    "N": "4",              # rollouts per prompt (the group size)
    "LR": "2e-4",          # actor lr (5e-4 is unstable on the tiny model, 1e-3 collapses it in one step)
    "TEST_FREQ": "20",     # validate every TEST_FREQ steps (and before training and at the last step)
    "VAL_N": "4",          # validation samples per test prompt (150 prompts x 4: +-2 points), T=1 like the rollout
}


def shell_lines(defaults: dict[str, str] = QUICKSTART_DEFAULTS) -> str:
    """``: "${VAR:=value}"`` per knob: bash keeps a value already in the environment, else sets the default.
    Values must be plain shell words (no quoting needed)."""
    unsafe = {name: value for name, value in defaults.items() if shlex.quote(value) != value}
    if unsafe:
        raise ValueError(f"defaults must be plain shell words, got {unsafe}")
    return "".join(f': "${{{name}:={value}}}"\n' for name, value in defaults.items())


if __name__ == "__main__":
    sys.stdout.write(shell_lines())
