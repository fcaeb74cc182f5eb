"""Entry point that verl loads on `import verl` (the `verl.plugins` group), in the driver and in every Ray worker.

verl swallows plugin import errors at DEBUG level, so every failure here is printed to stderr and re-raised.
Registration of the SRPO names and the opt-in CPU backend hook in here as they land.
"""

import sys
import traceback

try:
    from srpo_verl.cpu import activate_if_enabled

    activate_if_enabled()
except BaseException:
    print("[srpo_verl.plugin] FAILED to load the srpo_verl verl plugin:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    raise
