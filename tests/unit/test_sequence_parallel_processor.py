"""The logits processor under Ulysses sequence parallelism, without an engine: each SP rank sees only its slice.

verl's FSDP engine pads the packed sequence of nnz tokens to a multiple of the SP size S, hands rank r the logits of
positions [r·L, (r+1)·L), all-gathers every [1, L] output and drops the pad (``ulysses_pad_and_slice_inputs``,
``gather_outputs_and_unpad``). Here the SP rank and size are set by hand, the ranks' outputs concatenated and the
pad dropped: every phase must give the SP=1 outputs, and the update's gradient summed over the ranks (what verl's
gather backward and FSDP's reduction add up) must be the SP=1 gradient.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
import verl.utils.ulysses as ulysses

from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.settings import SRPOSettings

# the hand-built micro-batches of test_srpo_loss_fn.py (pytest's importlib mode: loaded by file path)
_spec = importlib.util.spec_from_file_location("srpo_loss_fn_cases", Path(__file__).with_name("test_srpo_loss_fn.py"))
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
SETTINGS, micro_batch, packed_logits, stored_fields = (
    _cases.SETTINGS, _cases.micro_batch, _cases.packed_logits, _cases.stored_fields)

ORDER = [1, 2, 0]
SAMPLED_TOKEN = SRPOSettings(method="sdpo", distill_mode="sampled_token", alpha=1.0, topk=SETTINGS.topk,
                             logits_chunk_size=2)


def set_sp(monkeypatch, size: int, rank: int) -> None:
    monkeypatch.setattr(ulysses, "get_ulysses_sequence_parallel_world_size", lambda group=None: size)
    monkeypatch.setattr(ulysses, "get_ulysses_sequence_parallel_rank", lambda group=None: rank)


def phase_batch(phase: str):
    if phase == "old":
        return micro_batch(ORDER, "old")
    if phase == "teacher":
        ids = [torch.randint(0, 11, (r, SETTINGS.topk), generator=torch.Generator().manual_seed(5))
               for r in (2, 3, 1)]
        return micro_batch(ORDER, "teacher", {L.QUERY_IDS: ids})
    return micro_batch(ORDER, "update", stored_fields()[2])


def sliced_outputs(monkeypatch, settings, logits, data, sp_size):
    """The ranks' outputs concatenated with the pad dropped, as verl's gather leaves them; and the logits leaf of
    each rank (padded to a multiple of ``sp_size`` with random rows, as the pad tokens' logits would be)."""
    nnz = logits.shape[1]
    local = -(-nnz // sp_size)
    pad = torch.randn(1, local * sp_size - nnz, logits.shape[-1], generator=torch.Generator().manual_seed(9))
    padded = torch.cat([logits.detach(), pad], dim=1)
    per_rank, leaves = [], []
    for rank in range(sp_size):
        set_sp(monkeypatch, sp_size, rank)
        leaf = padded[:, rank * local:(rank + 1) * local].clone().requires_grad_()
        leaves.append(leaf)
        per_rank.append(L.srpo_loss(settings, None, data=data, student_logits=leaf))
    keys = per_rank[0].keys()
    for out in per_rank:
        assert all(value.shape == (1, local) for value in out.values())
    return {key: torch.cat([out[key] for out in per_rank], dim=1)[:, :nnz] for key in keys}, leaves


@pytest.mark.parametrize("settings", [SETTINGS, SAMPLED_TOKEN], ids=["topk", "sampled_token"])
@pytest.mark.parametrize("phase", ["old", "teacher", "update"])
@pytest.mark.parametrize("sp_size", [2, 3, 4])
def test_sliced_outputs_equal_the_whole_sequence(monkeypatch, settings, phase, sp_size):
    logits, _ = packed_logits(ORDER)
    data = phase_batch(phase)
    set_sp(monkeypatch, 1, 0)
    whole = L.srpo_loss(settings, None, data=data, student_logits=logits)
    sliced, _ = sliced_outputs(monkeypatch, settings, logits, data, sp_size)
    assert sorted(sliced) == sorted(whole)
    for key, value in whole.items():
        if value.dtype == torch.int64:  # packed top-K ids
            assert torch.equal(sliced[key], value), key
        else:
            torch.testing.assert_close(sliced[key], value, rtol=0, atol=1e-6, msg=key)
    if phase == "old" and settings is SETTINGS:
        assert any(bool((value != 0).any()) for key, value in sliced.items() if key != L.LOG_PROBS)


@pytest.mark.parametrize("settings", [SETTINGS, SAMPLED_TOKEN], ids=["topk", "sampled_token"])
def test_update_gradient_summed_over_ranks_is_the_whole_sequence_gradient(monkeypatch, settings):
    logits, _ = packed_logits(ORDER)
    data = phase_batch("update")
    weights = torch.randn(3, logits.shape[1], generator=torch.Generator().manual_seed(3))

    def objective(out):
        return sum((out[key][0] * weights[i]).sum() for i, key in enumerate((L.LOG_PROBS, L.DIVERGENCE)))

    set_sp(monkeypatch, 1, 0)
    whole_leaf = logits.detach().clone().requires_grad_()
    objective(L.srpo_loss(settings, None, data=data, student_logits=whole_leaf)).backward()
    sliced, leaves = sliced_outputs(monkeypatch, settings, logits, data, 2)
    objective(sliced).backward()
    grad = torch.cat([leaf.grad for leaf in leaves], dim=1)[:, :logits.shape[1]]
    assert bool((whole_leaf.grad != 0).any())
    torch.testing.assert_close(grad, whole_leaf.grad, rtol=0, atol=1e-6)


def test_a_slice_that_does_not_cover_the_sequence_is_an_error(monkeypatch):
    logits, _ = packed_logits(ORDER)
    set_sp(monkeypatch, 2, 0)
    with pytest.raises(ValueError, match="Ulysses SP=2: 3 positions per rank do not cover 15 packed tokens"):
        L.srpo_loss(SETTINGS, None, data=phase_batch("old"), student_logits=logits[:, :3])
