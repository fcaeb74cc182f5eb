"""Chunked top-k / gather log-probs with full-vocabulary entropy vs the naive log_softmax reference (SRPO_SPEC §7.22)."""

import pytest
import torch

from srpo_verl.core import gather_logprobs_with_entropy, topk_logprobs_with_entropy, topk_token_ids


def naive(logits, temperature):
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp, entropy


def make_logits(shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen) * 3).to(dtype)


def test_hand_worked_two_token_vocab():
    logits = torch.log(torch.tensor([[3.0, 1.0]]))  # softmax = [0.75, 0.25]
    logp, ids, entropy = topk_logprobs_with_entropy(logits, k=1)
    assert ids.tolist() == [[0]]
    assert logp.item() == pytest.approx(torch.log(torch.tensor(0.75)).item(), abs=1e-7)
    h = -(0.75 * torch.log(torch.tensor(0.75)) + 0.25 * torch.log(torch.tensor(0.25))).item()
    assert entropy.item() == pytest.approx(h, abs=1e-7)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 4096])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_topk_matches_naive_values_and_gradients(chunk_size, temperature):
    logits = make_logits((2, 5, 97)).requires_grad_()
    logp, ids, entropy = topk_logprobs_with_entropy(logits, k=10, temperature=temperature, chunk_size=chunk_size)
    ref_logits = logits.detach().clone().requires_grad_()
    ref_logp_full, ref_entropy = naive(ref_logits, temperature)
    ref_logp, ref_ids = ref_logp_full.topk(10, dim=-1)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(logp, ref_logp, atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-6, rtol=0)

    gen = torch.Generator().manual_seed(1)
    g_logp, g_ent = torch.randn(logp.shape, generator=gen), torch.randn(entropy.shape, generator=gen)
    ((logp * g_logp).sum() + (entropy * g_ent).sum()).backward()
    ((ref_logp * g_logp).sum() + (ref_entropy * g_ent).sum()).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_gather_matches_naive_with_repeated_ids_and_single_id(chunk_size):
    logits = make_logits((3, 4, 50), seed=2).requires_grad_()
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 50, (3, 4, 6), generator=gen)
    ids[..., 1] = ids[..., 0]  # a repeated id must receive both gradients
    logp, entropy = gather_logprobs_with_entropy(logits, ids, chunk_size=chunk_size)
    ref_logits = logits.detach().clone().requires_grad_()
    ref_full, ref_entropy = naive(ref_logits, 1.0)
    ref = ref_full.gather(-1, ids)
    torch.testing.assert_close(logp, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-6, rtol=0)
    (logp.sum() * 0.5 + logp[..., 1].sum()).backward()
    (ref.sum() * 0.5 + ref[..., 1].sum()).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, atol=1e-6, rtol=1e-6)

    sampled = ids[..., 0]
    one, _ = gather_logprobs_with_entropy(logits.detach(), sampled, chunk_size=chunk_size)
    assert one.shape == (3, 4)
    torch.testing.assert_close(one, ref_full.gather(-1, sampled.unsqueeze(-1)).squeeze(-1), atol=1e-6, rtol=0)


def test_entropy_only_gradient():
    logits = make_logits((6, 33), seed=4).requires_grad_()
    _, entropy = gather_logprobs_with_entropy(logits, torch.zeros(6, 1, dtype=torch.long), chunk_size=4)
    entropy.sum().backward()
    ref_logits = logits.detach().clone().requires_grad_()
    naive(ref_logits, 1.0)[1].sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, atol=1e-6, rtol=1e-6)


def test_bf16_logits_computed_in_fp32_and_gradient_in_input_dtype():
    logits = make_logits((4, 64), dtype=torch.bfloat16, seed=5).requires_grad_()
    logp, ids, entropy = topk_logprobs_with_entropy(logits, k=5, chunk_size=3)
    assert logp.dtype == torch.float32 and entropy.dtype == torch.float32
    ref_full, ref_entropy = naive(logits.detach(), 1.0)  # the same bf16 values, upcast
    torch.testing.assert_close(logp, ref_full.gather(-1, ids), atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-5, rtol=0)
    logp.sum().backward()
    assert logits.grad.dtype == torch.bfloat16


def test_no_grad_path_and_large_negative_logits():
    logits = torch.tensor([[0.0, -1e4, -1e4, 5.0]])
    logp, ids, entropy = topk_logprobs_with_entropy(logits, k=4)
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    assert ids[0, 0].item() == 3 and entropy.item() >= 0


def test_argument_errors():
    logits = torch.zeros(2, 8)
    with pytest.raises(ValueError, match="k must be"):
        topk_logprobs_with_entropy(logits, k=9)
    with pytest.raises(ValueError, match="temperature"):
        topk_logprobs_with_entropy(logits, k=1, temperature=0.0)
    with pytest.raises(ValueError, match="does not match"):
        gather_logprobs_with_entropy(logits, torch.zeros(3, 1, dtype=torch.long))


@pytest.mark.parametrize("chunk_size", [1, 2, 64])
def test_row_selection_matches_indexing_first_and_zero_grad_elsewhere(chunk_size):
    logits = make_logits((9, 40), seed=6).requires_grad_()
    rows = torch.tensor([7, 2, 3, 8])
    ids = torch.randint(0, 40, (4, 5), generator=torch.Generator().manual_seed(7))
    logp, entropy = gather_logprobs_with_entropy(logits, ids, chunk_size=chunk_size, rows=rows)
    top, top_ids, top_entropy = topk_logprobs_with_entropy(logits, k=3, chunk_size=chunk_size, rows=rows)
    ref_logits = logits.detach().clone().requires_grad_()
    ref_full, ref_entropy = naive(ref_logits[rows], 1.0)
    torch.testing.assert_close(logp, ref_full.gather(-1, ids), atol=1e-6, rtol=0)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-6, rtol=0)
    torch.testing.assert_close(top, ref_full.topk(3, -1).values, atol=1e-6, rtol=0)
    (logp.sum() + entropy.sum() + top.sum()).backward()
    (ref_full.gather(-1, ids).sum() + ref_entropy.sum() + ref_full.topk(3, -1).values.sum()).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, atol=1e-6, rtol=1e-6)
    assert logits.grad[[0, 1, 4, 5, 6]].abs().sum() == 0


def test_empty_row_selection():
    logits = make_logits((5, 12), seed=8).requires_grad_()
    empty = torch.zeros(0, dtype=torch.long)
    logp, entropy = gather_logprobs_with_entropy(logits, torch.zeros(0, 3, dtype=torch.long), rows=empty)
    assert logp.shape == (0, 3) and entropy.shape == (0,)
    top, ids, _ = topk_logprobs_with_entropy(logits, k=2, rows=empty)
    assert top.shape == (0, 2) and ids.shape == (0, 2)


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_topk_token_ids_rank_raw_logits_of_selected_rows(chunk_size):
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, -2.0, 1.0, 2.5], [0.0, 0.2, 0.4, -0.1]])
    assert topk_token_ids(logits, 2, chunk_size=chunk_size).tolist() == [[1, 3], [0, 3], [2, 1]]
    rows = torch.tensor([2, 0])
    assert topk_token_ids(logits, 3, chunk_size=chunk_size, rows=rows).tolist() == [[2, 1, 0], [1, 3, 0]]
    batched = make_logits((2, 5, 40), seed=9)
    _, expected, _ = topk_logprobs_with_entropy(batched, k=7, temperature=0.6, chunk_size=chunk_size)
    assert torch.equal(topk_token_ids(batched, 7, chunk_size=chunk_size), expected)
    assert topk_token_ids(logits, 2, rows=torch.zeros(0, dtype=torch.long)).shape == (0, 2)
    with pytest.raises(ValueError, match="k must be"):
        topk_token_ids(logits, 5)
