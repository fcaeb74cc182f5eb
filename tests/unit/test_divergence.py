"""add_tail_bucket and distill_divergence against hand-computed values (SRPO_SPEC §5.3)."""

import math

import pytest
import torch

from srpo_verl.core import add_tail_bucket, distill_divergence

S = torch.log(torch.tensor([0.5, 0.5]))
T = torch.log(torch.tensor([0.9, 0.1]))


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_tail_bucket_holds_the_remaining_mass():
    out = add_tail_bucket(torch.log(torch.tensor([[0.5, 0.25], [0.1, 0.05]])))
    torch.testing.assert_close(out.exp(), torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.05, 0.85]]))


def test_tail_bucket_is_finite_when_topk_mass_is_one():
    # the top-k holds (numerically) all the mass: the tail is clamped to 1e-7, not log(0)
    full = torch.log_softmax(torch.tensor([[3.0, 1.0, -2.0]]), dim=-1)
    out = add_tail_bucket(full)
    assert torch.isfinite(out).all()
    assert out[0, -1].item() == pytest.approx(math.log(1e-7), abs=1e-3)
    logp = full.clone().requires_grad_()
    add_tail_bucket(logp)[..., -1].sum().backward()
    assert torch.isfinite(logp.grad).all()


def test_tail_bucket_accurate_for_tiny_tail():
    # mass 1 − 1e-5: naive log(1 − exp(x)) in fp32 loses digits; log1mexp keeps them
    logp = torch.log(torch.tensor([1 - 1e-5], dtype=torch.float64)).float()
    assert add_tail_bucket(logp)[-1].item() == pytest.approx(math.log(1e-5), rel=1e-2)


def test_forward_kl_reverse_kl_and_jsd():
    assert distill_divergence(S, T, alpha=0.0).item() == pytest.approx(kl([0.9, 0.1], [0.5, 0.5]), abs=1e-6)
    assert distill_divergence(S, T, alpha=1.0).item() == pytest.approx(kl([0.5, 0.5], [0.9, 0.1]), abs=1e-6)
    m = [0.7, 0.3]
    jsd = 0.5 * kl([0.5, 0.5], m) + 0.5 * kl([0.9, 0.1], m)
    assert distill_divergence(S, T, alpha=0.5).item() == pytest.approx(jsd, abs=1e-6)
    assert jsd == pytest.approx(0.1017492, abs=1e-6)  # worked by hand: 0.5·0.0871767 + 0.5·0.1163218


def test_generalised_jsd_with_asymmetric_alpha():
    alpha = 0.25
    m = [0.75 * 0.5 + 0.25 * 0.9, 0.75 * 0.5 + 0.25 * 0.1]
    expected = 0.75 * kl([0.5, 0.5], m) + 0.25 * kl([0.9, 0.1], m)
    assert distill_divergence(S, T, alpha=alpha).item() == pytest.approx(expected, abs=1e-6)


def test_identical_distributions_give_zero_and_zero_probability_buckets_no_nan():
    p = torch.log(torch.tensor([[0.2, 0.8, 0.0]]))
    for alpha in (0.0, 0.5, 1.0):
        assert distill_divergence(p, p, alpha).item() == pytest.approx(0.0, abs=1e-7)
    student = p.clone().requires_grad_()
    distill_divergence(student, torch.log(torch.tensor([[0.5, 0.5, 0.0]])), 0.5).sum().backward()
    assert torch.isfinite(student.grad).all()


def test_gradient_reaches_student_only_when_teacher_is_detached():
    student = S.clone().requires_grad_()
    teacher = T.clone().requires_grad_()
    distill_divergence(student, teacher.detach(), 0.5).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_bad_alpha_and_shapes():
    with pytest.raises(ValueError, match="alpha"):
        distill_divergence(S, T, alpha=1.5)
    with pytest.raises(ValueError, match="shapes differ"):
        distill_divergence(S, T[:1], alpha=0.5)
