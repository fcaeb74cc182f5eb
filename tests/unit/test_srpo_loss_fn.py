"""The verl loss callable / logits processor on hand-built micro-batches (no engine, no Ray).

The engine hands the processor [1, nnz, V] logits of whole packed sequences, with or without remove-padding (both
paths concatenate the rows' valid tokens), and dynamic batching only changes which rows share a micro-batch and
their order; so a micro-batch built here, in two row orders, covers those paths.
"""

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu

from srpo_verl.core import distillation_token_loss, routed_policy_loss
from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.layout import pack_response_field, unpack_token_ids

PROMPT_LENS = [3, 2, 4]
RESPONSE_LENS = [2, 3, 1]
DISTILL = [True, False, True]
V, K = 11, 4
SETTINGS = SRPOSettings(topk=K, logits_chunk_size=2)


def nested(rows):
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def micro_batch(order, phase, extra=None):
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, V, (p,), generator=gen) for p in PROMPT_LENS]
    responses = [torch.randint(0, V, (r,), generator=gen) for r in RESPONSE_LENS]
    fields = {
        "prompts": nested([prompts[i] for i in order]),
        "responses": nested([responses[i] for i in order]),
        "input_ids": nested([torch.cat([prompts[i], responses[i]]) for i in order]),
        "response_mask": nested([torch.ones(RESPONSE_LENS[i], dtype=torch.long) for i in order]),
        L.DISTILL_MASK: nested([torch.full((RESPONSE_LENS[i],), float(DISTILL[i])) for i in order]),
    }
    for key, rows in (extra or {}).items():
        fields[key] = nested([rows[i] for i in order])
    td = TensorDict(fields, batch_size=len(order))
    tu.assign_non_tensor(td, srpo_phase=phase)
    return td


def packed_logits(order, seed=1):
    gen = torch.Generator().manual_seed(seed)
    per_row = [torch.randn(PROMPT_LENS[i] + RESPONSE_LENS[i], V, generator=gen) for i in range(3)]
    return torch.cat([per_row[i] for i in order]).unsqueeze(0), per_row


def response_logits(per_row, i):
    """The logits that predict row i's response tokens (one-token shift)."""
    return per_row[i][PROMPT_LENS[i] - 1 : PROMPT_LENS[i] - 1 + RESPONSE_LENS[i]]


def sampled_logprobs_reference(logits, order, data):
    """[nnz]: log_softmax(logits) at each response token (the next input id), 0 on prompt positions and at each
    row's last position; computed with autograd through log_softmax."""
    flat = logits[0]
    out = torch.zeros(flat.shape[0], dtype=flat.dtype)
    offset = 0
    for j, i in enumerate(order):
        response = data["responses"].unbind()[j]
        start = offset + PROMPT_LENS[i] - 1
        rows = torch.log_softmax(flat[start : start + RESPONSE_LENS[i]], -1)
        out = out.index_put((torch.arange(start, start + RESPONSE_LENS[i]),),
                            rows.gather(-1, response.unsqueeze(-1)).squeeze(-1))
        offset += PROMPT_LENS[i] + RESPONSE_LENS[i]
    return out


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1]])
def test_old_phase_returns_topk_ids_of_distilled_rows_only(order):
    logits, per_row = packed_logits(order)
    data = micro_batch(order, "old")
    out = L.srpo_loss(SETTINGS, None, data=data, student_logits=logits)
    # three ids per int64 value: K = 4 ids in two values per token
    assert sorted(out) == sorted([L.topk_output_key(k) for k in range(2)] + [L.LOG_PROBS])
    # π_old's sampled-token log-probs come from the processor too, for every row (GRPO rows included)
    torch.testing.assert_close(out[L.LOG_PROBS][0], sampled_logprobs_reference(logits, order, data), atol=1e-6,
                               rtol=0)
    packed = torch.stack([out[L.topk_output_key(k)][0] for k in range(2)], -1)  # [nnz, 2]
    assert packed.dtype == torch.int64
    ids = unpack_token_ids(packed, K)  # [nnz, K]
    offset = 0
    for i in order:
        row = ids[offset : offset + PROMPT_LENS[i] + RESPONSE_LENS[i]]
        expected = torch.zeros_like(row)
        if DISTILL[i]:
            start = PROMPT_LENS[i] - 1
            expected[start : start + RESPONSE_LENS[i]] = response_logits(per_row, i).topk(K, -1).indices
        assert torch.equal(row, expected)
        offset += len(row)


def stored_fields(seed=2):
    gen = torch.Generator().manual_seed(seed)
    ids = [torch.randint(0, V, (r, K), generator=gen) for r in RESPONSE_LENS]
    teacher = [torch.log_softmax(torch.randn(r, V, generator=gen), -1)[:, :K] for r in RESPONSE_LENS]
    rows = torch.tensor(DISTILL)
    lens = torch.tensor(RESPONSE_LENS)
    packed_ids = pack_response_field(torch.cat([ids[i] for i in range(3) if DISTILL[i]]), lens, rows).unbind()
    packed_teacher = pack_response_field(torch.cat([teacher[i] for i in range(3) if DISTILL[i]]), lens, rows).unbind()
    return ids, teacher, {L.TOPK_IDS: list(packed_ids), L.TEACHER_LOGP: list(packed_teacher)}


@pytest.mark.parametrize("order", [[0, 1, 2], [1, 2, 0]])
def test_update_phase_divergence_matches_naive_and_backpropagates(order):
    ids, teacher, extra = stored_fields()
    logits, per_row = packed_logits(order)
    logits.requires_grad_()
    data = micro_batch(order, "update", extra)
    out = L.srpo_loss(SETTINGS, None, data=data, student_logits=logits)
    assert sorted(out) == sorted([L.DIVERGENCE, L.LOG_PROBS, L.MASS_GAP])
    divergence, gap = out[L.DIVERGENCE][0], out[L.MASS_GAP][0]
    assert not gap.requires_grad
    offset = 0
    for i in order:
        row = divergence[offset : offset + PROMPT_LENS[i] + RESPONSE_LENS[i]]
        gap_row = gap[offset : offset + PROMPT_LENS[i] + RESPONSE_LENS[i]]
        expected = torch.zeros_like(row)
        expected_gap = torch.zeros_like(row)
        if DISTILL[i]:
            student = torch.log_softmax(response_logits(per_row, i), -1).gather(-1, ids[i])
            start = PROMPT_LENS[i] - 1
            expected[start : start + RESPONSE_LENS[i]] = distillation_token_loss(student, teacher[i], 0.5, True)
            # student minus teacher probability mass on the stored top-K ids
            expected_gap[start : start + RESPONSE_LENS[i]] = student.exp().sum(-1) - teacher[i].exp().sum(-1)
        torch.testing.assert_close(row, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(gap_row, expected_gap.detach(), atol=1e-6, rtol=0)
        offset += len(row)
    assert gap.abs().sum() > 0
    # the sampled-token log-probs of every row, and the gradient of a loss of both outputs, equal autograd through
    # log_softmax (the reference builds its own graph on a copy of the logits)
    reference_logits = logits.detach().clone().requires_grad_()
    reference_logp = sampled_logprobs_reference(reference_logits, order, data)
    torch.testing.assert_close(out[L.LOG_PROBS][0], reference_logp, atol=1e-6, rtol=0)
    reference_div = torch.zeros_like(reference_logp)
    offset = 0
    for i in order:
        if DISTILL[i]:
            start = offset + PROMPT_LENS[i] - 1
            rows = reference_logits[0, start : start + RESPONSE_LENS[i]]
            student = torch.log_softmax(rows, -1).gather(-1, ids[i])
            reference_div = reference_div.index_put(
                (torch.arange(start, start + RESPONSE_LENS[i]),), distillation_token_loss(student, teacher[i], 0.5, True))
        offset += PROMPT_LENS[i] + RESPONSE_LENS[i]
    weights = torch.linspace(-1.0, 2.0, logits.shape[1])
    (out[L.LOG_PROBS][0] * weights).sum().add((out[L.DIVERGENCE][0] * weights.flip(0)).sum()).backward()
    (reference_logp * weights).sum().add((reference_div * weights.flip(0)).sum()).backward()
    torch.testing.assert_close(logits.grad, reference_logits.grad, atol=1e-6, rtol=0)
    assert logits.grad.abs().sum() > 0


def test_teacher_phase_gathers_at_query_ids_with_full_vocabulary_entropy():
    order = [0, 1, 2]
    ids, _, _ = stored_fields()
    logits, per_row = packed_logits(order, seed=3)
    out = L.srpo_loss(SETTINGS, None, data=micro_batch(order, "teacher", {L.QUERY_IDS: ids}), student_logits=logits)
    logp = torch.stack([out[L.teacher_output_key(k)][0] for k in range(K)], -1)
    entropy = out[L.TEACHER_ENTROPY_OUTPUT][0]
    offset = 0
    for i in order:
        start = offset + PROMPT_LENS[i] - 1
        full = torch.log_softmax(response_logits(per_row, i), -1)
        torch.testing.assert_close(logp[start : start + RESPONSE_LENS[i]], full.gather(-1, ids[i]), atol=1e-6, rtol=0)
        torch.testing.assert_close(entropy[start : start + RESPONSE_LENS[i]], -(full.exp() * full).sum(-1),
                                   atol=1e-6, rtol=0)
        offset += PROMPT_LENS[i] + RESPONSE_LENS[i]


def test_loss_mode_is_the_core_routed_loss_with_global_counts():
    order = [0, 1, 2]
    gen = torch.Generator().manual_seed(4)
    full_len = [PROMPT_LENS[i] + RESPONSE_LENS[i] for i in order]
    log_probs = nested([torch.randn(n, generator=gen) - 2 for n in full_len])
    divergence = nested([torch.rand(n, generator=gen) for n in full_len])
    old = [torch.randn(r, generator=gen) - 2 for r in RESPONSE_LENS]
    adv = [torch.full((r,), a) for r, a in zip(RESPONSE_LENS, (1.0, -0.5, 0.25))]
    dw = [torch.rand(r, generator=gen) + 0.5 for r in RESPONSE_LENS]
    data = micro_batch(order, "update", {"old_log_probs": old, "advantages": adv, L.DW_WEIGHT: dw})
    tu.assign_non_tensor(data, dp_size=2, batch_num_tokens=13, global_batch_size=5)

    from verl.workers.config.actor import ActorConfig

    actor = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size=2, clip_ratio=0.2, clip_ratio_low=0.2,
                        clip_ratio_high=0.28, loss_agg_mode="token-mean")
    # verl's own "log_probs" is absent under distillation_only; a stale one must be ignored, not read
    stale = nested([torch.full((n,), 7.0) for n in full_len])
    loss, metrics = L.srpo_loss(SETTINGS, actor, data=data,
                                model_output={L.LOG_PROBS: log_probs, L.DIVERGENCE: divergence, "log_probs": stale})

    def padded(rows, shift):
        out = torch.zeros(3, max(RESPONSE_LENS))
        for j, i in enumerate(order):
            out[j, : RESPONSE_LENS[i]] = rows[j][PROMPT_LENS[i] - 1 : PROMPT_LENS[i] - 1 + RESPONSE_LENS[i]] if shift \
                else rows[j]
        return out

    mask = padded([torch.ones(r) for r in RESPONSE_LENS], False)
    expected = routed_policy_loss(
        SETTINGS.loss_config(actor), padded(log_probs.unbind(), True), padded(old, False), padded(adv, False),
        mask, torch.tensor(DISTILL), entropy_weights=padded(dw, False), loss_agg_mode="token-mean",
        global_token_count=13, global_seq_count=5, dp_size=2, divergence=padded(divergence.unbind(), True),
    )
    assert loss.item() == pytest.approx(expected.loss.item(), abs=1e-6)
    assert set(metrics) == {"srpo/loss/grpo", "srpo/loss/distill", "pg_loss"}

    # with the processor's mass gap: its sum over the SDPO tokens (distilled rows 0 and 2, response positions only)
    # and their count, so that the step's mean is their ratio
    gap = nested([torch.arange(n, dtype=torch.float32) / 10 for n in full_len])
    _, metrics = L.srpo_loss(SETTINGS, actor, data=data, model_output={L.LOG_PROBS: log_probs,
                                                                        L.DIVERGENCE: divergence, L.MASS_GAP: gap})
    # row 0: prompt 3, response 2 -> positions 2, 3; row 2: prompt 4, response 1 -> position 3
    assert metrics[L.MASS_GAP_SUM_METRIC].aggregate() == pytest.approx(0.2 + 0.3 + 0.3)
    assert metrics[L.SDPO_TOKENS_METRIC].aggregate() == 3.0
    summed = {L.MASS_GAP_SUM_METRIC: 0.8, L.SDPO_TOKENS_METRIC: 3.0, "other": 1.0}
    assert L.mass_gap_mean(summed) == {L.MASS_GAP_METRIC: pytest.approx(0.8 / 3)}
    assert summed == {"other": 1.0}  # the parts are removed
    assert L.mass_gap_mean({L.MASS_GAP_SUM_METRIC: 0.0, L.SDPO_TOKENS_METRIC: 0.0}) == {}  # no SDPO token


def test_unknown_phase_is_an_error():
    with pytest.raises(ValueError, match="srpo_phase=None"):
        L.srpo_loss(SETTINGS, None, model_output={}, data=TensorDict({}, batch_size=0))


@pytest.mark.parametrize("phase", ["old", "teacher", "update"])
def test_bf16_logits_give_fp32_outputs_equal_to_fp32_maths_on_the_same_values(phase):
    """Mixed precision hands the processor bf16 logits: every phase computes in fp32 on those values (the same
    outputs as fp32 logits holding the bf16-rounded values), and the update's backward returns a bf16 gradient."""
    order = [0, 1, 2]
    ids, teacher, extra = stored_fields()
    extra = {**extra, L.QUERY_IDS: ids} if phase == "teacher" else (extra if phase == "update" else None)
    logits, _ = packed_logits(order)
    bf16 = logits.to(torch.bfloat16).requires_grad_(phase == "update")
    rounded = bf16.detach().float().requires_grad_(phase == "update")
    out_bf16 = L.srpo_loss(SETTINGS, None, data=micro_batch(order, phase, extra), student_logits=bf16)
    out_fp32 = L.srpo_loss(SETTINGS, None, data=micro_batch(order, phase, extra), student_logits=rounded)
    assert sorted(out_bf16) == sorted(out_fp32)
    for key, value in out_bf16.items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
        torch.testing.assert_close(value, out_fp32[key], atol=1e-6, rtol=0)
    if phase == "update":
        assert out_bf16[L.DIVERGENCE][0].abs().sum() > 0
        out_bf16[L.DIVERGENCE][0].sum().add(out_bf16[L.LOG_PROBS][0].sum()).backward()
        out_fp32[L.DIVERGENCE][0].sum().add(out_fp32[L.LOG_PROBS][0].sum()).backward()
        assert bf16.grad.dtype == torch.bfloat16
        torch.testing.assert_close(bf16.grad.float(), rounded.grad.to(torch.bfloat16).float(), atol=1e-2, rtol=0)
        assert bf16.grad.abs().sum() > 0


def test_the_divergence_refuses_log_probs_that_are_not_fp32(monkeypatch):
    ids, teacher, extra = stored_fields()
    extra[L.TEACHER_LOGP] = [row.to(torch.bfloat16) for row in extra[L.TEACHER_LOGP]]
    logits, _ = packed_logits([0, 1, 2])
    with pytest.raises(TypeError, match="the divergence needs fp32 log-probs, got student torch.float32 and "
                                        "teacher torch.bfloat16"):
        L.srpo_loss(SETTINGS, None, data=micro_batch([0, 1, 2], "update", extra), student_logits=logits)
