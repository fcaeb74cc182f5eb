"""The distillation gradient cannot depend on which cross-entropy verl picks (issue 11 §1).

verl 0.9.1 computes sampled-token log-probs with flash-attn's Triton cross-entropy whenever flash-attn imports; its
backward writes d loss / d logits into the logits buffer, which our autograd Functions also saved. The worker now
sets ``distillation_only`` (``loss.PROCESSOR_FLAGS``) and the logits processor returns the log-probs itself, so
verl's cross-entropy never runs. Checked here through verl's own ``prepare_model_outputs`` (both branches) with the
pure-torch in-place stand-in of tests/fixtures/inplace_flash_attn, chunked backend; the Triton backend runs the
same checks under the interpreter (triton_interpreter_checks.py, collected by test_logprobs_triton.py).
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from srpo_verl.verl_ext import loss as L

_spec = importlib.util.spec_from_file_location("inplace_ce_engine", Path(__file__).with_name("inplace_ce_engine.py"))
engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine)

LEGACY_FLAGS = {"distillation_use_topk": True, "distillation_only": False}
BRANCHES = [(False, 1.0), (False, 0.7), (True, 1.0), (True, 0.7)]
BRANCH_IDS = [f"{'remove_padding' if rp else 'padded'}-T{t}" for rp, t in BRANCHES]


@pytest.fixture(scope="module")
def standin():
    return engine.load_standin()


def test_the_stand_in_is_flash_attn_compatible_and_writes_its_gradient_into_the_logits(standin):
    logits = torch.randn(5, 9, generator=torch.Generator().manual_seed(0)).requires_grad_()
    labels = torch.tensor([0, 3, 8, -100, 2])
    work = logits * 1.0
    losses, z_losses = standin.cross_entropy_loss(work, labels, inplace_backward=True)
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(losses, expected, atol=1e-6, rtol=0)
    assert torch.equal(z_losses, torch.zeros(5))
    before = work.detach().clone()
    losses.sum().backward()
    grad = torch.softmax(before, -1) - torch.nn.functional.one_hot(labels.clamp(min=0), 9)
    grad[3] = 0.0
    torch.testing.assert_close(logits.grad, grad, atol=1e-6, rtol=0)
    # the logits buffer now holds the gradient, and autograd's version counter never saw the write
    torch.testing.assert_close(work.detach(), grad, atol=1e-6, rtol=0)
    assert work._version == 0


def test_the_hazard_is_real_for_the_chunked_function(standin):
    """Our Function and verl's in-place cross-entropy on the same logits: the gradient is wrong (the old design)."""
    correct, corrupted = engine.hazard_gradient("chunked", None), engine.hazard_gradient("chunked", standin)
    assert (correct - corrupted).norm() > 0.1 * correct.norm()


@pytest.mark.parametrize("remove_padding, temperature", BRANCHES, ids=BRANCH_IDS)
def test_update_gradient_is_the_same_with_the_in_place_cross_entropy(standin, remove_padding, temperature):
    reference = engine.update_gradient("chunked", None, L.PROCESSOR_FLAGS, remove_padding, temperature)
    calls = dict(standin.CALLS)
    fixed = engine.update_gradient("chunked", standin, L.PROCESSOR_FLAGS, remove_padding, temperature)
    assert standin.CALLS == calls, "verl's cross-entropy ran although the worker's flags set distillation_only"
    torch.testing.assert_close(fixed[1], reference[1], atol=0, rtol=1e-6)
    assert fixed[0].item() == pytest.approx(reference[0].item(), rel=1e-6)
    # before the fix (the loss took verl's log-probs, verl's cross-entropy ran in place): a different gradient
    legacy_torch = engine.update_gradient("chunked", None, LEGACY_FLAGS, remove_padding, temperature, legacy=True)
    legacy_inplace = engine.update_gradient("chunked", standin, LEGACY_FLAGS, remove_padding, temperature,
                                            legacy=True)
    assert standin.CALLS["backward"] > calls["backward"]
    torch.testing.assert_close(legacy_torch[1], reference[1], atol=1e-6, rtol=1e-5)
    assert (legacy_inplace[1] - reference[1]).norm() > 0.03 * reference[1].norm()


@pytest.mark.parametrize("remove_padding", [False, True], ids=["padded", "remove_padding"])
def test_processor_log_probs_equal_verls_torch_log_probs(remove_padding):
    """π_θ's sampled-token log-probs from the processor equal what verl's torch path computes (the rolled input ids)."""
    ours = engine.update_gradient("chunked", None, L.PROCESSOR_FLAGS, remove_padding, 0.7)[2]
    data = engine.micro_batch(LEGACY_FLAGS, remove_padding, 0.7)
    from srpo_verl.verl_ext.layout import response_positions

    positions = response_positions(data["prompts"].offsets().diff(), data["responses"].offsets().diff())
    legacy = engine.update_gradient("chunked", None, LEGACY_FLAGS, remove_padding, 0.7, legacy=True)[2]
    torch.testing.assert_close(ours[positions], legacy[positions], atol=1e-6, rtol=0)
    others = torch.ones_like(ours, dtype=torch.bool)
    others[positions] = False
    assert torch.equal(ours[others], torch.zeros(int(others.sum())))
