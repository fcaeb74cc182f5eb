"""Layout helpers between verl's packed sequences and the response frame, and batch routing by sample key."""

import pytest
import torch

from srpo_verl.verl_ext.layout import (
    pack_response_field,
    parse_rollout_key,
    response_positions,
    route_batch,
    rollout_order,
    select_rows,
)


def test_response_positions_follow_the_one_token_shift():
    # row 0: prompt 3 + response 2 (packed 0..4), row 1: prompt 1 + response 3 (packed 5..8)
    pos = response_positions(torch.tensor([3, 1]), torch.tensor([2, 3]))
    assert pos.tolist() == [2, 3, 5, 6, 7]


def test_select_rows_and_pack_with_placeholders():
    lengths = torch.tensor([2, 3, 1])
    assert select_rows(lengths, torch.tensor([True, False, True])).tolist() == [0, 1, 5]
    packed = pack_response_field(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([3, 4]), torch.tensor([True, False]))
    assert [t.shape[0] for t in packed.unbind()] == [3, 1]
    assert packed.values().squeeze(-1).tolist() == [1.0, 2.0, 3.0, 0.0]


def test_keys_with_underscores_in_the_uid():
    assert parse_rollout_key("ab_cd-ef_3_0") == ("ab_cd-ef", 3, 0)


def test_rollout_order_sorts_sessions_within_groups():
    keys = ["u2_1_0", "u1_1_0", "u2_0_0", "u1_0_0"]
    assert rollout_order(keys) == [2, 0, 3, 1]


def test_route_batch_uses_rollout_index_not_balanced_order_and_skips_padding():
    # group u: session 0 wrong, session 1 right, session 2 right; the batch was reordered by balancing
    keys = ["u_2_0", "u_0_0", "u_1_0", "pad_0_0"]
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    route, metrics = route_batch(keys, rewards, torch.tensor([False, False, False, True]), 0.5, "srpo")
    # the first correct sibling of session 0 is session 1 (batch position 2), not the first in batch order (0)
    assert route.demo_index.tolist() == [2, 2, 0, -1]
    assert route.distill.tolist() == [False, True, False, False]
    assert metrics["srpo/route/sdpo_frac"] == 1 / 3


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 100])
def test_token_ids_pack_three_per_int64_and_unpack_exactly(k):
    from srpo_verl.verl_ext.layout import packed_id_width, pack_token_ids, unpack_token_ids

    gen = torch.Generator().manual_seed(k)
    ids = torch.randint(0, 1 << 21, (7, k), generator=gen)
    ids[0] = (1 << 21) - 1  # the largest id, in every column
    ids[1] = 0
    packed = pack_token_ids(ids)
    assert packed.shape == (7, packed_id_width(k)) == (7, -(-k // 3))
    assert packed.dtype == torch.int64 and bool((packed >= 0).all())
    assert torch.equal(unpack_token_ids(packed, k), ids)
    # by hand: ids (1, 2, 3) -> 1 + 2·2^21 + 3·2^42
    assert pack_token_ids(torch.tensor([[1, 2, 3]])).item() == 1 + (2 << 21) + (3 << 42)
