"""Entry point that verl loads on `import verl` (the `verl.plugins` group), in the driver and in every Ray worker.

verl swallows plugin import errors at DEBUG level, so every failure here is printed to stderr and re-raised.
Registration of the SRPO names and the opt-in CPU backend hook in here as they land.
"""
