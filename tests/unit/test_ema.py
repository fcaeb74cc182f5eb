"""srpo_verl.core.ema: the EMA teacher update on plain tensors (no Ray, no DTensor), against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from srpo_verl.core.ema import EMAResult, all_finite, ema_update_


def _pair():
    # every value and every step below is exact in fp32 (rate 0.25 = 2^-2)
    teacher = [torch.tensor([0.0, 1.0, 2.0, 4.0]), torch.tensor([[8.0, 8.0], [0.0, -4.0]])]
    actor = [torch.tensor([4.0, 1.0, -2.0, 0.0]), torch.tensor([[0.0, 8.0], [4.0, 4.0]])]
    return teacher, actor


EXPECTED = [torch.tensor([1.0, 1.0, 1.0, 3.0]), torch.tensor([[6.0, 8.0], [1.0, -2.0]])]


@pytest.mark.parametrize("chunk_numel", [None, 1, 3, 1 << 20])
def test_update_is_exact_on_representable_values_whatever_the_chunk(chunk_numel):
    teacher, actor = _pair()
    actor_before = [a.clone() for a in actor]
    result = ema_update_(teacher, actor, 0.25, chunk_numel=chunk_numel)
    assert result == EMAResult(applied=True, actor_finite=True, max_abs_delta=2.0)  # |Δ| = 0.25·|8 − 0|
    for got, want in zip(teacher, EXPECTED):
        assert torch.equal(got, want)
    for a, b in zip(actor, actor_before):
        assert torch.equal(a, b)  # the actor is only read


def test_bf16_actor_takes_the_chunked_path_and_gives_the_same_values():
    teacher, actor = _pair()
    result = ema_update_(teacher, [a.bfloat16() for a in actor], 0.25, chunk_numel=3)
    assert result.applied and result.max_abs_delta == 2.0
    for got, want in zip(teacher, EXPECTED):
        assert got.dtype == torch.float32 and torch.equal(got, want)


def test_random_update_matches_the_formula_and_the_old_max_abs_delta():
    gen = torch.Generator().manual_seed(0)
    teacher = [torch.randn(1000, 7, generator=gen), torch.randn(3, generator=gen), torch.zeros(0)]
    actor = [t + torch.randn(t.shape, generator=gen) for t in teacher]
    rate = 0.05
    want = [t + rate * (a - t) for t, a in zip(teacher, actor)]
    old_max = max(float(((a - t) * rate).abs().max()) for t, a in zip(teacher, actor) if t.numel())
    result = ema_update_(teacher, actor, rate, chunk_numel=4096)
    assert result.applied and result.max_abs_delta == old_max
    for got, w in zip(teacher, want):
        torch.testing.assert_close(got, w, rtol=2e-7, atol=2e-7)  # lerp may fuse the multiply-add: ≤ 1 ulp


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("actor_dtype", [torch.float32, torch.bfloat16])
def test_non_finite_actor_value_writes_nothing(bad, actor_dtype):
    teacher, actor = _pair()
    actor = [a.to(actor_dtype) for a in actor]
    actor[1][1, 0] = bad
    before = [t.clone() for t in teacher]
    result = ema_update_(teacher, actor, 0.25)
    assert result == EMAResult(applied=False, actor_finite=False, max_abs_delta=0.0)
    for got, want in zip(teacher, before):
        assert torch.equal(got, want)


def test_agree_sees_the_local_flag_and_can_veto_the_update():
    seen = []

    def veto(local_ok: bool) -> bool:
        seen.append(local_ok)
        return False  # another rank had a non-finite value

    teacher, actor = _pair()
    before = [t.clone() for t in teacher]
    result = ema_update_(teacher, actor, 0.25, agree=veto)
    assert seen == [True] and result == EMAResult(applied=False, actor_finite=True, max_abs_delta=0.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher, before))


def test_non_finite_teacher_value_is_updated_and_shows_in_the_metric():
    teacher, actor = _pair()
    teacher[0][0] = math.inf
    result = ema_update_(teacher, actor, 0.25)
    assert result.applied and result.actor_finite and math.isinf(result.max_abs_delta)


def test_refusals_name_the_tensor():
    teacher, actor = _pair()
    with pytest.raises(ValueError, match=r"w: teacher shard \(4,\) != actor shard \(2, 2\)"):
        ema_update_(teacher[:1], actor[1:], 0.25, names=["w"])
    with pytest.raises(ValueError, match="w: teacher dtype torch.bfloat16; the EMA accumulates in fp32"):
        ema_update_([teacher[0].bfloat16()], actor[:1], 0.25, names=["w"])
    with pytest.raises(ValueError, match="teacher w is not contiguous"):
        ema_update_([teacher[1].t()], [actor[1]], 0.25, names=["w"])
    with pytest.raises(ValueError, match="2 teacher tensors for 1 actor tensors"):
        ema_update_(teacher, actor[:1], 0.25)


def test_all_finite():
    assert all_finite([torch.ones(3), torch.zeros(0)]) and all_finite([])
    assert not all_finite([torch.ones(3), torch.tensor([1.0, math.nan])])
    assert not all_finite([torch.tensor([-math.inf], dtype=torch.bfloat16)])
