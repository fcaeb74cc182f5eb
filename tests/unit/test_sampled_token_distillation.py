"""Token-level distillation (``srpo.distill_mode=sampled_token``): the per-token loss on hand values, its parity
with the official SDPO code's non-full-logit branch, the logits processor's three phases, and the settings.

Parity: ``compute_self_distillation_loss`` and ``agg_loss`` are cut out of a copy of lasgroup/SDPO's
``verl/trainer/ppo/core_algos.py`` at test time (never copied into this repository) when ``SRPO_VERL_SDPO_REPO``
names a checkout or a bare git directory of that repository; otherwise that test skips with the reason.
"""

from __future__ import annotations

import ast
import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from srpo_verl.core import is_clip_weights, routed_policy_loss, sampled_token_distillation_loss
from srpo_verl.core.methods import RoutedLossConfig
from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings

SDPO_REPO_ENV = "SRPO_VERL_SDPO_REPO"
OFFICIAL_FILE = "verl/trainer/ppo/core_algos.py"
SAMPLED = SRPOSettings(method="sdpo", distill_mode="sampled_token", alpha=1.0, topk=4, logits_chunk_size=2)


def test_per_token_loss_on_hand_values_and_its_gradient():
    student = torch.tensor([math.log(0.5), math.log(0.2)], requires_grad=True)
    teacher = torch.tensor([math.log(0.25), math.log(0.4)])
    loss = sampled_token_distillation_loss(student, teacher)
    # (log 0.5 − log 0.25)·log 0.5 = log 2 · log 0.5; (log 0.2 − log 0.4)·log 0.2 = −log 2 · log 0.2
    expected = [math.log(2) * math.log(0.5), -math.log(2) * math.log(0.2)]
    assert loss.tolist() == pytest.approx(expected, rel=1e-6)
    loss.sum().backward()
    # the ratio is detached: d/d log π_S = log π_S − log π_T
    assert student.grad.tolist() == pytest.approx([math.log(2), -math.log(2)], rel=1e-6)
    assert teacher.grad is None


def official_functions(repo: str) -> dict:
    """``compute_self_distillation_loss`` and ``agg_loss`` from lasgroup/SDPO, executed in a namespace with the few
    names they use (torch, F, verl's masked_sum)."""
    path = Path(repo)
    if (path / OFFICIAL_FILE).is_file():
        source = (path / OFFICIAL_FILE).read_text()
    else:
        source = subprocess.run(["git", "--git-dir", str(path), "show", f"HEAD:{OFFICIAL_FILE}"], check=True,
                                capture_output=True, text=True).stdout
    tree = ast.parse(source)
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef)
              and node.name in ("compute_self_distillation_loss", "agg_loss")]
    assert len(wanted) == 2, [n.name for n in wanted]
    masked_sum = SimpleNamespace(masked_sum=lambda values, mask: (values * mask).sum())
    namespace = {"torch": torch, "F": F, "Optional": __import__("typing").Optional, "Any": __import__("typing").Any,
                 "verl_F": masked_sum}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), OFFICIAL_FILE, "exec"), namespace)
    return namespace


@pytest.mark.skipif(not os.environ.get(SDPO_REPO_ENV), reason=f"{SDPO_REPO_ENV} does not name a copy of "
                    "lasgroup/SDPO (the parity check reads the official code at test time)")
@pytest.mark.parametrize("is_clip", [2.0, None])
def test_parity_with_the_official_non_full_logit_branch(is_clip):
    official = official_functions(os.environ[SDPO_REPO_ENV])
    gen = torch.Generator().manual_seed(0)
    b, t = 4, 6
    student = (torch.rand(b, t, generator=gen) * -3 - 0.05).requires_grad_()
    teacher = torch.rand(b, t, generator=gen) * -3 - 0.05
    old = student.detach() + torch.randn(b, t, generator=gen) * 0.8  # ratios on both sides of the clip
    mask = torch.ones(b, t)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    rollout_is = torch.rand(b, t, generator=gen) + 0.5
    config = SimpleNamespace(full_logit_distillation=False, alpha=1.0, is_clip=is_clip)
    theirs, _ = official["compute_self_distillation_loss"](
        student, teacher, mask, config, old_log_probs=old, loss_agg_mode="token-mean", rollout_is_weights=rollout_is)

    ours_student = student.detach().clone().requires_grad_()
    divergence = sampled_token_distillation_loss(ours_student, teacher)
    ours = routed_policy_loss(
        RoutedLossConfig(method="sdpo", alpha=1.0, is_clip=is_clip), ours_student, old, torch.zeros(b), mask.bool(),
        torch.ones(b, dtype=torch.bool), rollout_is_weights=rollout_is, divergence=divergence).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    theirs.backward()
    ours.backward()
    torch.testing.assert_close(ours_student.grad, student.grad, rtol=1e-6, atol=1e-8)
    if is_clip is not None:  # the clip bites somewhere, so the comparison covers it
        assert bool((is_clip_weights(student, old, is_clip) < (student - old).exp()).any())


# ---------------------------------------------------------------------------------------------- the processor
PROMPT_LENS, RESPONSE_LENS, DISTILL, V = [3, 2, 4], [2, 3, 1], [True, False, True], 11


def micro_batch(phase: str, extra: dict | None = None):
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    gen = torch.Generator().manual_seed(0)
    nested = lambda rows: torch.nested.as_nested_tensor(rows, layout=torch.jagged)  # noqa: E731
    prompts = [torch.randint(0, V, (p,), generator=gen) for p in PROMPT_LENS]
    responses = [torch.randint(0, V, (r,), generator=gen) for r in RESPONSE_LENS]
    fields = {
        "prompts": nested(prompts), "responses": nested(responses),
        "input_ids": nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]),
        "response_mask": nested([torch.ones(r, dtype=torch.long) for r in RESPONSE_LENS]),
        L.DISTILL_MASK: nested([torch.full((r,), float(d)) for r, d in zip(RESPONSE_LENS, DISTILL)]),
    }
    fields.update({key: nested(rows) for key, rows in (extra or {}).items()})
    data = TensorDict(fields, batch_size=len(PROMPT_LENS))
    tu.assign_non_tensor(data, srpo_phase=phase)
    return data, responses


def response_rows(logits: torch.Tensor, i: int) -> torch.Tensor:
    """Row i's logits that predict its response tokens (one-token shift in the packed sequence)."""
    start = sum(p + r for p, r in zip(PROMPT_LENS[:i], RESPONSE_LENS[:i])) + PROMPT_LENS[i] - 1
    return logits[0, start:start + RESPONSE_LENS[i]]


def packed_logits(seed: int = 1) -> torch.Tensor:
    total = sum(PROMPT_LENS) + sum(RESPONSE_LENS)
    return torch.randn(1, total, V, generator=torch.Generator().manual_seed(seed))


def test_old_phase_returns_the_sampled_token_log_probs_and_no_top_k_ids():
    data, _ = micro_batch("old")
    out = L.srpo_loss(SAMPLED, None, data=data, student_logits=packed_logits())
    assert sorted(out) == [L.LOG_PROBS]


def test_teacher_phase_scores_the_sampled_token_with_the_full_entropy():
    _, responses = micro_batch("teacher")
    data, _ = micro_batch("teacher", {L.QUERY_IDS: [r.unsqueeze(-1) for r in responses]})
    logits = packed_logits()
    out = L.srpo_loss(SAMPLED, None, data=data, student_logits=logits)
    assert sorted(out) == sorted([L.teacher_output_key(0), L.TEACHER_ENTROPY_OUTPUT])  # 2 values per token
    for i in range(3):
        rows = torch.log_softmax(response_rows(logits, i), -1)
        start = sum(p + r for p, r in zip(PROMPT_LENS[:i], RESPONSE_LENS[:i])) + PROMPT_LENS[i] - 1
        got = out[L.teacher_output_key(0)][0, start:start + RESPONSE_LENS[i]]
        torch.testing.assert_close(got, rows.gather(-1, responses[i].unsqueeze(-1)).squeeze(-1), atol=1e-6, rtol=0)
        entropy = out[L.TEACHER_ENTROPY_OUTPUT][0, start:start + RESPONSE_LENS[i]]
        torch.testing.assert_close(entropy, -(rows.exp() * rows).sum(-1), atol=1e-6, rtol=0)


def test_update_phase_divergence_is_the_token_level_loss_with_its_gradient():
    from srpo_verl.verl_ext.layout import pack_response_field

    gen = torch.Generator().manual_seed(3)
    teacher = [torch.rand(r, 1, generator=gen) * -2 - 0.1 for r in RESPONSE_LENS]
    packed = pack_response_field(torch.cat([teacher[i] for i in range(3) if DISTILL[i]]),
                                 torch.tensor(RESPONSE_LENS), torch.tensor(DISTILL)).unbind()
    data, responses = micro_batch("update", {L.TEACHER_LOGP: list(packed)})
    logits = packed_logits().requires_grad_()
    out = L.srpo_loss(SAMPLED, None, data=data, student_logits=logits)
    reference = logits.detach().clone().requires_grad_()
    expected_total = 0
    for i in range(3):
        start = sum(p + r for p, r in zip(PROMPT_LENS[:i], RESPONSE_LENS[:i])) + PROMPT_LENS[i] - 1
        got = out[L.DIVERGENCE][0, start:start + RESPONSE_LENS[i]]
        student = torch.log_softmax(response_rows(reference, i), -1).gather(-1, responses[i].unsqueeze(-1))[:, 0]
        if DISTILL[i]:
            expected = (student - teacher[i][:, 0]).detach() * student
            torch.testing.assert_close(got, expected.detach(), atol=1e-6, rtol=1e-6)
            expected_total = expected_total + expected.sum()
        else:
            assert torch.equal(got, torch.zeros_like(got))
    assert torch.equal(out[L.MASS_GAP], torch.zeros_like(out[L.MASS_GAP]))
    out[L.DIVERGENCE].sum().backward()
    expected_total.backward()
    torch.testing.assert_close(logits.grad, reference.grad, atol=1e-6, rtol=0)
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("values, message", [
    (dict(distill_mode="sampled_token"), "srpo.alpha=0.5 is not supported with srpo.distill_mode=sampled_token: "
                                         "the token-level loss is reverse KL only"),
    (dict(distill_mode="logits"), "srpo.distill_mode='logits' is not one of topk, sampled_token"),
    (dict(method="grpo", distill_mode="sampled_token", alpha=1.0),
     "srpo.distill_mode=sampled_token has no effect with srpo.method=grpo"),
])
def test_settings_refuse_what_the_token_level_loss_cannot_honour(values, message):
    with pytest.raises(RunConfigError) as refused:
        SRPOSettings(**values)
    assert str(refused.value).startswith(message)
    assert SRPOSettings(method="srpo", distill_mode="sampled_token", alpha=1.0).sampled_token
    assert not SRPOSettings().sampled_token
