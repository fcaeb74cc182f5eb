"""entropy_weights: exp(−β·H) normalised to mean 1 over the SDPO tokens (SRPO_SPEC §1.4, §7.22)."""

import math

import pytest
import torch

from srpo_verl.core import entropy_weight_stats, entropy_weights

H = torch.tensor([0.0, math.log(2.0), math.log(4.0)])  # exp(−H) = 1, 1/2, 1/4


def test_hand_values_mean_one():
    w = entropy_weights(H, torch.ones(3, dtype=torch.bool))
    mean = (1 + 0.5 + 0.25) / 3
    torch.testing.assert_close(w, torch.tensor([1 / mean, 0.5 / mean, 0.25 / mean]))
    assert w.mean().item() == pytest.approx(1.0, abs=1e-6)


def test_mask_restricts_the_mean_and_leaves_others_at_one():
    w = entropy_weights(H, torch.tensor([True, True, False]))
    torch.testing.assert_close(w, torch.tensor([4 / 3, 2 / 3, 1.0]))


def test_beta_sharpens():
    w = entropy_weights(H, torch.ones(3, dtype=torch.bool), beta=2.0)
    mean = (1 + 0.25 + 0.0625) / 3
    torch.testing.assert_close(w, torch.tensor([1 / mean, 0.25 / mean, 0.0625 / mean]))


def test_empty_mask_gives_ones_not_nan():
    w = entropy_weights(H, torch.zeros(3, dtype=torch.bool))
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_global_stats_from_parts_equal_whole_batch():
    gen = torch.Generator().manual_seed(0)
    entropy = torch.rand(6, 9, generator=gen) * 5
    mask = torch.rand(6, 9, generator=gen) > 0.3
    whole = entropy_weights(entropy, mask)
    parts = [entropy_weight_stats(entropy[i : i + 2], mask[i : i + 2]) for i in (0, 2, 4)]
    total, count = sum(p[0] for p in parts), sum(p[1] for p in parts)
    pieces = torch.cat([entropy_weights(entropy[i : i + 2], mask[i : i + 2], weight_sum=total, weight_count=count)
                        for i in (0, 2, 4)])
    torch.testing.assert_close(pieces, whole)
    assert whole[mask].mean().item() == pytest.approx(1.0, abs=1e-6)
    # per-part normalisation would not be the same thing
    assert not torch.allclose(entropy_weights(entropy[:2], mask[:2]), whole[:2])


def test_weights_are_constants():
    entropy = H.clone().requires_grad_()
    assert not entropy_weights(entropy, torch.ones(3, dtype=torch.bool)).requires_grad


def test_bad_beta_and_half_stats():
    with pytest.raises(ValueError, match="dw_beta"):
        entropy_weights(H, torch.ones(3, dtype=torch.bool), beta=0.0)
    with pytest.raises(ValueError, match="both"):
        entropy_weights(H, torch.ones(3, dtype=torch.bool), weight_sum=1.0)
