"""srpo_verl: SRPO (Sample-Routed Policy Optimization) on verl 0.9.1.

`srpo_verl.core` holds the pure algorithm (torch only, no verl/ray import).
"""

__version__ = "0.1.0"
