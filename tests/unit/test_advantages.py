"""group_advantages: hand values and parity with verl's compute_grpo_outcome_advantage (SRPO_SPEC §1.3)."""

import math

import numpy as np
import pytest
import torch

from srpo_verl.core import group_advantages

IDS = ["a", "a", "a", "a", "b", "b", "c"]
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])


def test_centred_by_whole_group_mean():
    adv = group_advantages(REWARDS, IDS)
    # a: mean 0.5; b: mean 1 (all correct → 0); c: a lone sample has mean 0 (verl's convention)
    assert adv.tolist() == [0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 1.0]


def test_std_normalised_uses_unbiased_std_and_eps():
    adv = group_advantages(REWARDS, IDS, norm_by_std=True, eps=1e-6)
    std_a = math.sqrt((4 * 0.25) / 3)
    expected = [0.5 / (std_a + 1e-6), -0.5 / (std_a + 1e-6), -0.5 / (std_a + 1e-6), 0.5 / (std_a + 1e-6),
                0.0, 0.0, 1.0 / (1.0 + 1e-6)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)


def test_all_wrong_group_gives_zero_advantage():
    assert group_advantages(torch.zeros(4), ["g"] * 4, norm_by_std=True).tolist() == [0.0] * 4


@pytest.mark.parametrize("norm_by_std", [False, True])
def test_matches_verl(norm_by_std):
    from verl.trainer.ppo import core_algos

    gen = torch.Generator().manual_seed(0)
    groups = torch.randint(0, 12, (96,), generator=gen)
    rewards = (torch.rand(96, generator=gen) > 0.5).float() * torch.rand(96, generator=gen).round(decimals=1)
    index = np.array([f"uid-{int(g)}" for g in groups], dtype=object)
    response_mask = torch.ones(96, 5)
    token_rewards = torch.zeros(96, 5)
    token_rewards[:, -1] = rewards
    verl_adv, _ = core_algos.compute_grpo_outcome_advantage(
        token_rewards, response_mask, index, epsilon=1e-6, norm_adv_by_std_in_grpo=norm_by_std
    )
    ours = group_advantages(rewards, index, norm_by_std=norm_by_std)
    torch.testing.assert_close(ours, verl_adv[:, 0], atol=1e-6, rtol=0)
