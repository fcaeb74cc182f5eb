"""route_samples and route_metrics on hand-worked groups (SRPO_SPEC §1.2 Table 7, §7.19, §7.25)."""

import numpy as np
import pytest
import torch

from srpo_verl.core import route_metrics, route_samples

# Groups: a = [wrong, right, right], b = [wrong, wrong], c = [right, right, wrong]
IDS = ["a", "a", "a", "b", "b", "c", "c", "c"]
REWARDS = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])


def test_correct_and_first_other_correct_demo():
    route = route_samples(REWARDS, IDS)
    assert route.correct.tolist() == [False, True, True, False, False, True, True, False]
    # a: first correct is 1, so 0 → 1, 1 → 2 (itself excluded), 2 → 1; b: none; c: 5 → 6, 6 → 5, 7 → 5
    assert route.demo_index.tolist() == [1, 2, 1, -1, -1, 6, 5, 5]


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("srpo", [1, 0, 0, 0, 0, 0, 0, 1]),
        ("sdpo", [1, 1, 1, 0, 0, 1, 1, 1]),
        ("sdpo_incorrect_only", [1, 0, 0, 0, 0, 0, 0, 1]),
        ("sdpo_correct_only", [0, 1, 1, 0, 0, 1, 1, 0]),
        ("grpo", [0, 0, 0, 0, 0, 0, 0, 0]),
    ],
)
def test_modes(mode, expected):
    route = route_samples(REWARDS, IDS, mode=mode)
    assert route.distill.long().tolist() == expected
    assert (route.grpo == ~route.distill).all()


def test_threshold_is_inclusive():
    route = route_samples(torch.tensor([0.5, 0.49, 0.2]), ["g", "g", "g"])
    assert route.correct.tolist() == [True, False, False]
    assert route.distill.tolist() == [False, True, True]
    assert route_samples(torch.tensor([0.5, 0.49]), ["g", "g"], threshold=0.6).distill.tolist() == [False, False]


def test_groups_by_id_not_by_position():
    # interleaved groups: x = positions 0, 2; y = positions 1, 3
    route = route_samples(torch.tensor([0.0, 1.0, 1.0, 0.0]), ["x", "y", "x", "y"])
    assert route.demo_index.tolist() == [2, -1, -1, 1]
    assert route.distill.tolist() == [True, False, False, True]


def test_edge_cases_all_wrong_all_correct_lone_correct():
    ids = ["w"] * 3 + ["r"] * 3 + ["l"] * 3
    rewards = torch.tensor([0.0, 0, 0, 1, 1, 1, 0, 1, 0])
    route = route_samples(rewards, ids)
    # all wrong: no teacher, GRPO fallback; all right: GRPO; lone correct: it goes to GRPO, its siblings to SDPO
    assert route.distill.tolist() == [False] * 6 + [True, False, True]
    assert route.demo_index.tolist() == [-1, -1, -1, 4, 3, 3, 7, -1, 7]
    assert route.teacher_available.tolist() == [False] * 3 + [True] * 3 + [True, False, True]


def test_numpy_object_and_tensor_ids_match_list_ids():
    expected = route_samples(REWARDS, IDS).demo_index
    assert torch.equal(route_samples(REWARDS, np.array(IDS, dtype=object)).demo_index, expected)
    int_ids = torch.tensor([7, 7, 7, 3, 3, 9, 9, 9])
    assert torch.equal(route_samples(REWARDS, int_ids).demo_index, expected)


def test_feedback_counts_as_teacher_information():
    feedback = torch.tensor([False, False, False, True, False, False, False, False])
    route = route_samples(REWARDS, IDS, feedback_available=feedback)
    assert route.distill.tolist() == [True, False, False, True, False, False, False, True]
    assert route.demo_index[3].item() == -1


def test_route_metrics_fractions():
    metrics = route_metrics(route_samples(REWARDS, IDS))
    assert metrics == {"srpo/route/grpo_frac": 6 / 8, "srpo/route/sdpo_frac": 2 / 8, "srpo/route/no_demo_frac": 2 / 8}


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="route mode 'bogus'"):
        route_samples(REWARDS, IDS, mode="bogus")
    with pytest.raises(ValueError, match="8 rewards but 2 group ids"):
        route_samples(REWARDS, ["a", "b"])


def test_empty_batch():
    route = route_samples(torch.zeros(0), [])
    assert route.distill.numel() == 0 and route.demo_index.numel() == 0
