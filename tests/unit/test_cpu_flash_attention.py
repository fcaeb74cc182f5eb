"""The CPU backend's flash stand-in (srpo_verl/cpu/attention.py): the varlen maths, and the module attributes verl's
Ulysses SP goes through (the e2e SP run checks the all-to-all itself, on 2 ranks)."""

import pytest
import torch

from srpo_verl.cpu import attention as A


def reference(q, k, v, lengths, scale):
    """Eager attention with a block-causal mask: [1, S, h, d] in and out; k/v heads repeated for GQA."""
    rep = q.shape[2] // k.shape[2]
    k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    seg = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    causal = torch.ones(len(seg), len(seg), dtype=torch.bool).tril()
    mask = causal & (seg[:, None] == seg[None, :])
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v)


@pytest.mark.parametrize("lengths", [[5, 1, 7], [13]])
def test_varlen_attention_is_block_causal_attention_of_the_packed_sequences(lengths):
    gen = torch.Generator().manual_seed(0)
    total = sum(lengths)
    q = torch.randn(1, total, 4, 8, generator=gen)
    k, v = torch.randn(1, total, 2, 8, generator=gen), torch.randn(1, total, 2, 8, generator=gen)
    position_ids = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    out = A.varlen_attention_forward(q, k, v, None, total, is_causal=True, position_ids=position_ids,
                                     softmax_scale=0.3)
    torch.testing.assert_close(out, reference(q, k, v, lengths, 0.3), rtol=0, atol=1e-6)
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist())
    torch.testing.assert_close(A.varlen_attention_forward(q, k, v, None, total, cu_seq_lens_q=cu, softmax_scale=0.3),
                               out, rtol=0, atol=0)


def test_a_mask_or_dropout_is_refused_in_one_line():
    q = torch.zeros(1, 3, 2, 4)
    with pytest.raises(ValueError, match=r"got \['attention_mask', 'dropout'\]; set "
                                         r"actor_rollout_ref.model.use_remove_padding=true$"):
        A.varlen_attention_forward(q, q, q, torch.ones(1, 3), 3, dropout=0.1)


def test_the_cpu_backend_routes_flash_attention_to_the_stand_in_and_counts_all_to_alls():
    """What activate() arms: the registered name, both module attributes verl's SP path reads, the counter."""
    from transformers import AttentionInterface
    from transformers.integrations import flash_attention
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    import verl.models.transformers.monkey_patch as verl_patch
    import verl.utils.ulysses as ulysses

    A.register_cpu_flash_attention()
    A.replace_flash_kernel(flash_attention)
    A.replace_flash_kernel(verl_patch)
    A.count_all_to_all(ulysses)
    assert AttentionInterface._global_mapping[A.CPU_VARLEN_ATTENTION] is flash_attention.flash_attention_forward
    assert A.CPU_VARLEN_ATTENTION in ALL_MASK_ATTENTION_FUNCTIONS
    assert flash_attention._flash_attention_forward is A.varlen_attention_forward
    assert verl_patch._flash_attention_forward is A.varlen_attention_forward
    # verl's Ulysses wrapper in the transformers attribute is kept: it calls verl's module-level kernel
    flash_attention._flash_attention_forward = verl_patch._ulysses_flash_attention_forward
    try:
        A.replace_flash_kernel(flash_attention)
        assert flash_attention._flash_attention_forward is verl_patch._ulysses_flash_attention_forward
    finally:
        flash_attention._flash_attention_forward = A.varlen_attention_forward
    assert ulysses.all_to_all_tensor._srpo_counted
