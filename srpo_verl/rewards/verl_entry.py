"""File for verl's `reward.custom_reward_function.path` (name: `compute_score`).

verl loads this file by path as a standalone module, so it holds only an absolute import of the package function.
"""

from srpo_verl.rewards import compute_score

__all__ = ["compute_score"]
