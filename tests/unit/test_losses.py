"""Routed per-token losses and their exact aggregation (SRPO_SPEC §1.3–§1.7, §5.3, §7.21–§7.26)."""

import math

import pytest
import torch

from srpo_verl.core import (
    RoutedLossConfig,
    aggregate_token_loss,
    entropy_weight_stats,
    entropy_weights,
    group_advantages,
    grpo_clipped_surrogate,
    is_clip_weights,
    route_samples,
    routed_policy_loss,
)

JSD_HAND = 0.1017492  # JSD_0.5([.5, .5], [.9, .1]), worked in test_divergence.py


def two_row_batch():
    """Row 0 → GRPO with A = 1; row 1 → distilled; on-policy (ratio 1); T = 2 valid tokens each."""
    log_prob = torch.log(torch.full((2, 2), 0.3)).requires_grad_()
    old_log_prob = log_prob.detach().clone()
    advantages = torch.tensor([1.0, -0.5])
    student = torch.log(torch.tensor([0.25, 0.25])).expand(2, 2, 2).clone().requires_grad_()
    teacher = torch.log(torch.tensor([0.45, 0.05])).expand(2, 2, 2).clone()
    return log_prob, old_log_prob, advantages, student, teacher


@pytest.mark.parametrize(
    "method, weights, expected, expected_grpo",
    [
        ("srpo", torch.tensor([[1.0, 1.0], [2.0, 0.5]]), (-2 + 2.5 * JSD_HAND) / 4, -0.5),
        ("srpo_no_dw", None, (-2 + 2 * JSD_HAND) / 4, -0.5),
        ("sdpo", None, 2 * JSD_HAND / 4, 0.0),
        ("grpo", None, (-1 - 1 + 0.5 + 0.5) / 4, -0.25),
        ("adv_mix", None, (0.9 * (-2 + 1) + 0.1 * 2 * JSD_HAND) / 4, 0.9 * (-2 + 1) / 4),
    ],
)
def test_hand_worked_methods(method, weights, expected, expected_grpo):
    log_prob, old, adv, student, teacher = two_row_batch()
    config = RoutedLossConfig(method=method, add_tail=False)  # renormalised top-2: [.5, .5] vs [.9, .1]
    distill = torch.tensor([False, True])
    out = routed_policy_loss(config, log_prob, old, adv, torch.ones(2, 2), distill, student, teacher, weights)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.grpo.item() == pytest.approx(expected_grpo, abs=1e-6)
    assert (out.grpo + out.distill).item() == pytest.approx(out.loss.item(), abs=1e-7)
    out.loss.backward()
    assert torch.isfinite(log_prob.grad).all()
    assert (student.grad is None) == (method == "grpo")
    if student.grad is not None:
        assert torch.isfinite(student.grad).all() and student.grad[0].abs().sum() == 0  # GRPO row: no distillation


def test_grpo_surrogate_clips_and_dual_clips():
    log_prob = torch.log(torch.tensor([[1.5, 0.5, 1.5, 5.0]]))
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    loss = grpo_clipped_surrogate(log_prob, torch.zeros(1, 4), adv, 0.2, 0.28, 3.0)
    # ρ=1.5,A=1 → −1.28 (clip high); ρ=.5,A=1 → −.5 (pessimistic keeps unclipped); ρ=1.5,A=−1 → 1.5;
    # ρ=5,A=−1 → min(3, 5) = 3 (dual clip)
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -0.5, 1.5, 3.0]]))


def test_is_clip_weights_are_detached_and_capped():
    log_prob = torch.log(torch.tensor([3.0, 1.5, 0.5])).requires_grad_()
    w = is_clip_weights(log_prob, torch.zeros(3), 2.0)
    torch.testing.assert_close(w, torch.tensor([2.0, 1.5, 0.5]))
    assert not w.requires_grad
    assert is_clip_weights(log_prob, torch.zeros(3), None).tolist() == [1.0, 1.0, 1.0]


def test_is_clip_multiplies_distillation_tokens_only():
    log_prob, old, adv, student, teacher = two_row_batch()
    shifted = old - math.log(3.0)  # ratio 3 on every token → IS weight 2 on distilled tokens
    config = RoutedLossConfig(method="srpo_no_dw", add_tail=False, is_clip=2.0)
    out = routed_policy_loss(config, log_prob, shifted, adv, torch.ones(2, 2), torch.tensor([False, True]),
                             student, teacher)
    assert out.distill.item() == pytest.approx(2 * 2 * JSD_HAND / 4, abs=1e-6)
    assert out.grpo.item() == pytest.approx(-2 * 1.28 / 4, abs=1e-6)  # ratio 3, A=1 → clipped at 1.28


def test_rollout_is_weights_multiply_both_branches():
    log_prob, old, adv, student, teacher = two_row_batch()
    config = RoutedLossConfig(method="srpo_no_dw", add_tail=False)
    tis = torch.tensor([[0.5, 0.5], [2.0, 2.0]])
    out = routed_policy_loss(config, log_prob, old, adv, torch.ones(2, 2), torch.tensor([False, True]),
                             student, teacher, rollout_is_weights=tis)
    assert out.grpo.item() == pytest.approx(-0.5 * 2 / 4, abs=1e-6)
    assert out.distill.item() == pytest.approx(2.0 * 2 * JSD_HAND / 4, abs=1e-6)


def test_masked_tokens_do_not_count():
    log_prob, old, adv, student, teacher = two_row_batch()
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    out = routed_policy_loss(RoutedLossConfig(method="srpo_no_dw", add_tail=False), log_prob, old, adv, mask,
                             torch.tensor([False, True]), student, teacher)
    assert out.loss.item() == pytest.approx((-1 + 2 * JSD_HAND) / 3, abs=1e-6)


def test_empty_sdpo_set_is_finite_and_backpropagates():
    # all-wrong group and all-correct group: all GRPO with A = 0 and no distilled row
    rewards = torch.tensor([0.0, 0.0, 1.0, 1.0])
    ids = ["w", "w", "r", "r"]
    route = route_samples(rewards, ids)
    assert not route.distill.any()
    adv = group_advantages(rewards, ids)
    log_prob = torch.randn(4, 3).requires_grad_()
    student = torch.log_softmax(torch.randn(4, 3, 5), -1).requires_grad_()
    teacher = torch.full((4, 3, 5), float("nan"))  # never computed for unrouted rows: must not leak
    weights = entropy_weights(torch.rand(4, 3), route.distill.unsqueeze(-1).expand(4, 3))
    out = routed_policy_loss(RoutedLossConfig(), log_prob, log_prob.detach(), adv, torch.ones(4, 3),
                             route.distill, student, teacher, weights)
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    assert torch.isfinite(log_prob.grad).all() and torch.isfinite(student.grad).all()
    assert weights.tolist() == torch.ones(4, 3).tolist()


def test_missing_teacher_inputs_and_bad_config_are_named():
    log_prob, old, adv, _, _ = two_row_batch()
    with pytest.raises(ValueError, match="needs student and teacher"):
        routed_policy_loss(RoutedLossConfig(method="srpo"), log_prob, old, adv, torch.ones(2, 2),
                           torch.tensor([False, True]))
    with pytest.raises(ValueError, match="srpo.method='ppo'"):
        RoutedLossConfig(method="ppo")
    with pytest.raises(ValueError, match="srpo.is_clip"):
        RoutedLossConfig(is_clip=0.0)
    with pytest.raises(ValueError, match="loss_agg_mode"):
        aggregate_token_loss(torch.zeros(1, 1), torch.ones(1, 1), mode="sum")


def random_batch(seed=0, batch=8, length=6, k=4, vocab=11):
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, length, generator=gen) > 0.25).float()
    mask[:, 0] = 1
    rewards = torch.tensor([0.0, 1.0, 1.0, 0.0] + [0.0] * (batch - 4))  # a mixed group, then all-wrong groups
    ids = [f"g{i // 4}" for i in range(batch)]
    logits = torch.randn(batch, length, vocab, generator=gen)
    return dict(
        log_prob=torch.randn(batch, length, generator=gen) * 0.1 - 1.0,
        old_log_prob=torch.randn(batch, length, generator=gen) * 0.1 - 1.0,
        rewards=rewards,
        ids=ids,
        mask=mask,
        student=torch.log_softmax(logits, -1)[..., :k].contiguous(),
        teacher=torch.log_softmax(logits + torch.randn(logits.shape, generator=gen), -1)[..., :k].contiguous(),
        entropy=torch.rand(batch, length, generator=gen) * 3,
        tis=torch.rand(batch, length, generator=gen) + 0.5,
    )


@pytest.mark.parametrize("loss_agg_mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("method", ["srpo", "sdpo", "adv_mix"])
def test_micro_batch_sums_equal_the_full_batch(method, loss_agg_mode):
    b = random_batch()
    route = route_samples(b["rewards"], b["ids"], mode={"srpo": "srpo", "sdpo": "sdpo", "adv_mix": "sdpo"}[method])
    assert route.distill.any() and (~route.distill).any()
    adv = group_advantages(b["rewards"], b["ids"])
    sdpo_tokens = route.distill.unsqueeze(-1) & b["mask"].bool()
    w_sum, w_count = entropy_weight_stats(b["entropy"], sdpo_tokens)
    tokens, seqs = b["mask"].sum(), (b["mask"].sum(-1) > 0).sum()
    config = RoutedLossConfig(method=method)

    def run(splits):
        log_prob = b["log_prob"].clone().requires_grad_()
        student = b["student"].clone().requires_grad_()
        total = 0.0
        for rows in torch.arange(8).chunk(splits):
            weights = entropy_weights(b["entropy"][rows], sdpo_tokens[rows], weight_sum=w_sum, weight_count=w_count)
            out = routed_policy_loss(
                config, log_prob[rows], b["old_log_prob"][rows], adv[rows], b["mask"][rows], route.distill[rows],
                student[rows], b["teacher"][rows], weights if method == "srpo" else None, b["tis"][rows],
                loss_agg_mode, tokens, seqs,
            )
            out.loss.backward()
            total = total + out.loss.detach()
        return total, log_prob.grad, student.grad

    full = run(1)
    for splits in (2, 4):
        loss, g_logp, g_student = run(splits)
        assert loss.item() == pytest.approx(full[0].item(), abs=1e-6)
        torch.testing.assert_close(g_logp, full[1], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(g_student, full[2], atol=1e-6, rtol=1e-6)


def test_grpo_method_matches_verl_vanilla_policy_loss():
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla
    from verl.workers.config.actor import ActorConfig

    b = random_batch(seed=3)
    adv = group_advantages(b["rewards"], b["ids"]) * 2 - 0.3  # some negative advantages for the dual clip
    log_prob = b["log_prob"] + torch.linspace(-0.6, 0.6, 6)  # ratios outside the clip range
    config = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size=2, clip_ratio=0.2,
                         clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0)
    for agg in ("token-mean", "seq-mean-token-mean"):
        verl_loss, _ = compute_policy_loss_vanilla(
            b["old_log_prob"], log_prob, adv.unsqueeze(-1).expand(8, 6), b["mask"], agg, config, b["tis"]
        )
        ours = routed_policy_loss(RoutedLossConfig(method="grpo"), log_prob, b["old_log_prob"], adv, b["mask"],
                                  torch.zeros(8, dtype=torch.bool), rollout_is_weights=b["tis"], loss_agg_mode=agg)
        assert ours.loss.item() == pytest.approx(verl_loss.item(), abs=1e-6)


@pytest.mark.parametrize("mode", ["token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_aggregation_matches_verl_agg_loss_with_global_counts(mode):
    from verl.trainer.ppo.core_algos import agg_loss

    b = random_batch(seed=5)
    b["mask"][3] = 0  # a fully masked sequence
    loss_mat = torch.randn(8, 6)
    ours = aggregate_token_loss(loss_mat, b["mask"], mode, global_token_count=40.0, global_seq_count=13, dp_size=2)
    theirs = agg_loss(loss_mat, b["mask"], mode, dp_size=2, batch_num_tokens=40.0, global_batch_size=13)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    local_ours = aggregate_token_loss(loss_mat, b["mask"], mode)
    assert local_ours.item() == pytest.approx(agg_loss(loss_mat, b["mask"], mode).item(), abs=1e-6)


def test_precomputed_divergence_equals_topk_inputs():
    log_prob, old, adv, student, teacher = two_row_batch()
    config = RoutedLossConfig(method="srpo_no_dw", add_tail=False)
    distill = torch.tensor([False, True])
    from srpo_verl.core import distillation_token_loss

    divergence = distillation_token_loss(student, teacher, 0.5, add_tail=False)
    divergence[0] = float("nan")  # rows that are not distilled are ignored, NaN included
    a = routed_policy_loss(config, log_prob, old, adv, torch.ones(2, 2), distill, student, teacher)
    b = routed_policy_loss(config, log_prob, old, adv, torch.ones(2, 2), distill, divergence=divergence)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-7)
