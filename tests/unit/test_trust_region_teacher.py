"""``srpo.teacher=trust_region``: the official SDPO code's trust-region teacher, logits lerp(reference, student, rate).

The logits processor on hand-built micro-batches: hand values, rate 0 = the reference (base) and rate 1 = the student
(live) bit for bit, the stash's guards, the settings and start-up refusals. Parity: the official
``TrustRegionTeacher`` class and ``compute_self_distillation_loss`` are cut out of a copy of lasgroup/SDPO at test
time (never copied into this repository) when ``SRPO_VERL_SDPO_REPO`` names a checkout or a bare git directory of it;
otherwise that test skips with the reason.
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
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu

from srpo_verl.core import distillation_token_loss
from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings

SDPO_REPO_ENV = "SRPO_VERL_SDPO_REPO"
PROMPT_LENS, RESPONSE_LENS, V, K = [3, 2, 4], [2, 3, 1], 11, 4


def nested(rows):
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def micro_batch(phase: str, seed: int = 0, prompt_lens=PROMPT_LENS, response_lens=RESPONSE_LENS, vocab=V, k=K):
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, vocab, (p,), generator=gen) for p in prompt_lens]
    responses = [torch.randint(0, vocab, (r,), generator=gen) for r in response_lens]
    query = [torch.randint(0, vocab, (r, k), generator=gen) for r in response_lens]
    data = TensorDict({
        "prompts": nested(prompts), "responses": nested(responses),
        "input_ids": nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]),
        L.QUERY_IDS: nested(query),
    }, batch_size=len(prompt_lens))
    tu.assign_non_tensor(data, srpo_phase=phase)
    return data


def teacher_pass(settings, reference_logits, student_logits, data_seed=0, **batch):
    """The worker's two calls on one micro-batch: the actor's teacher_student pass, then the reference's teacher
    pass; returns ([nnz, K] log-probs, [nnz] entropy, the stash)."""
    stash = L.StudentLogitsStash()
    out = L.srpo_loss(settings, None, data=micro_batch("teacher_student", data_seed, **batch),
                      student_logits=student_logits, stash=stash)
    assert sorted(out) == [L.STASH_OUTPUT] and len(stash) == 1
    data = micro_batch("teacher", data_seed, **batch)
    out = L.srpo_loss(settings, None, data=data, student_logits=reference_logits, stash=stash)
    k = data[L.QUERY_IDS].values().shape[-1]
    logp = torch.stack([out[L.teacher_output_key(i)][0] for i in range(k)], -1)
    return logp, out[L.TEACHER_ENTROPY_OUTPUT][0], stash


def plain_teacher_pass(settings, logits, data_seed=0):
    out = L.srpo_loss(settings, None, data=micro_batch("teacher", data_seed), student_logits=logits)
    return torch.stack([out[L.teacher_output_key(i)][0] for i in range(K)], -1), out[L.TEACHER_ENTROPY_OUTPUT][0]


def packed_logits(seed: int) -> torch.Tensor:
    total = sum(PROMPT_LENS) + sum(RESPONSE_LENS)
    return torch.randn(1, total, V, generator=torch.Generator().manual_seed(seed))


def test_hand_values_one_token_two_ids():
    # prompt 2 tokens, response 1: position 1 predicts the response. reference [0, 0], student [2, 0], rate 0.25:
    # mixed logits [0.5, 0], p = (σ(0.5), 1 − σ(0.5))
    settings = SRPOSettings(teacher="trust_region", trust_region_rate=0.25, topk=2)
    reference = torch.zeros(1, 3, 2)
    student = torch.zeros(1, 3, 2)
    student[0, 1, 0] = 2.0
    logp, entropy, stash = teacher_pass(settings, reference, student, prompt_lens=[2], response_lens=[1], vocab=2,
                                        k=2)
    ids = micro_batch("teacher", prompt_lens=[2], response_lens=[1], vocab=2, k=2)[L.QUERY_IDS].values()[0]
    log_z = math.log(math.exp(0.5) + 1.0)
    expected = {0: 0.5 - log_z, 1: -log_z}
    assert logp[1].tolist() == pytest.approx([expected[int(i)] for i in ids], rel=1e-6)
    p = 1 / (1 + math.exp(-0.5))
    assert entropy[1].item() == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), rel=1e-6)
    assert logp[0].tolist() == [0.0, 0.0] and entropy[0].item() == 0.0 and entropy[2].item() == 0.0  # prompt / last
    assert len(stash) == 0


@pytest.mark.parametrize("rate, same_as", [(0.0, "reference"), (1.0, "student")])
def test_rate_0_is_base_and_rate_1_is_live_bit_for_bit(rate, same_as):
    reference, student = packed_logits(1), packed_logits(2)
    logp, entropy, _ = teacher_pass(SRPOSettings(teacher="trust_region", trust_region_rate=rate, topk=K),
                                    reference, student)
    plain = SRPOSettings(teacher="base" if same_as == "reference" else "live", topk=K)
    expected_logp, expected_entropy = plain_teacher_pass(plain, reference if same_as == "reference" else student)
    assert torch.equal(logp, expected_logp) and torch.equal(entropy, expected_entropy)


def test_the_mix_is_torch_lerp_of_the_logits():
    reference, student = packed_logits(1), packed_logits(2)
    logp, entropy, _ = teacher_pass(SRPOSettings(teacher="trust_region", trust_region_rate=0.3, topk=K),
                                    reference, student)
    expected_logp, expected_entropy = plain_teacher_pass(SRPOSettings(topk=K), torch.lerp(reference, student, 0.3))
    torch.testing.assert_close(logp, expected_logp, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(entropy, expected_entropy, rtol=1e-6, atol=1e-6)


def test_the_stash_refuses_a_missing_or_foreign_student_pass():
    settings = SRPOSettings(teacher="trust_region", trust_region_rate=0.3, topk=K)
    with pytest.raises(RuntimeError, match="found no student logits"):
        L.srpo_loss(settings, None, data=micro_batch("teacher"), student_logits=packed_logits(1),
                    stash=L.StudentLogitsStash())
    stash = L.StudentLogitsStash()
    L.srpo_loss(settings, None, data=micro_batch("teacher_student", seed=5), student_logits=packed_logits(2),
                stash=stash)
    with pytest.raises(RuntimeError, match="taken on another micro-batch"):
        L.srpo_loss(settings, None, data=micro_batch("teacher", seed=0), student_logits=packed_logits(1), stash=stash)
    with pytest.raises(RuntimeError, match="without a student-logits stash"):
        L.srpo_loss(settings, None, data=micro_batch("teacher_student"), student_logits=packed_logits(2))


def test_settings_and_start_up_refusals(compose_config):
    from srpo_verl.preflight.config import validate_run_config
    from srpo_verl.verl_ext.settings import TEACHER_KINDS

    assert "trust_region" in TEACHER_KINDS
    assert SRPOSettings(teacher="trust_region").teacher_from_model_path
    with pytest.raises(RunConfigError, match=r"srpo.trust_region_rate=0.1 has no effect with srpo.teacher=ema"):
        SRPOSettings(trust_region_rate=0.1)
    with pytest.raises(RunConfigError, match=r"srpo.trust_region_rate=1.5 must be in \[0, 1\]"):
        SRPOSettings(teacher="trust_region", trust_region_rate=1.5)
    ok = validate_run_config(compose_config("cpu_srpo", "srpo.teacher=trust_region", "srpo.trust_region_rate=0.1"))
    assert (ok.teacher, ok.trust_region_rate) == ("trust_region", 0.1)
    with pytest.raises(RunConfigError, match=r"srpo.teacher=trust_region with actor.ppo_mini_batch_size=4, "
                                             r"data.train_batch_size=8, ppo_epochs=1: .*one optimizer step"):
        validate_run_config(compose_config("cpu_srpo", "srpo.teacher=trust_region",
                                           "actor_rollout_ref.actor.ppo_mini_batch_size=4",
                                           "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4"))


# ---------------------------------------------------------------------------------------------- parity
def official_source(repo: str, path: str) -> str:
    root = Path(repo)
    if (root / path).is_file():
        return (root / path).read_text()
    return subprocess.run(["git", "--git-dir", str(root), "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def official_names(repo: str, path: str, names: tuple[str, ...], namespace: dict) -> dict:
    tree = ast.parse(official_source(repo, path))
    wanted = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names]
    assert sorted(n.name for n in wanted) == sorted(names), [n.name for n in wanted]
    exec(compile(ast.Module(body=wanted, type_ignores=[]), path, "exec"), namespace)
    return namespace


class TinyLM(torch.nn.Module):
    """input_ids [b, L] → SimpleNamespace(logits=[b, L, V]) (embedding + linear: position-independent, so the
    packed and the per-row forward agree)."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.embed, self.head = torch.nn.Embedding(V, 8), torch.nn.Linear(8, V)

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.head(torch.tanh(self.embed(input_ids))))


@pytest.mark.skipif(not os.environ.get(SDPO_REPO_ENV), reason=f"{SDPO_REPO_ENV} does not name a copy of "
                    "lasgroup/SDPO (the parity check reads the official code at test time)")
def test_parity_with_the_official_trust_region_teacher_and_its_top_k_loss():
    repo = os.environ[SDPO_REPO_ENV]
    official = official_names(repo, "verl/workers/actor/dp_actor.py", ("TrustRegionTeacher",),
                              {"torch": torch, "nn": torch.nn, "SimpleNamespace": SimpleNamespace})
    masked_sum = SimpleNamespace(masked_sum=lambda values, mask: (values * mask).sum())
    official = official_names(repo, "verl/trainer/ppo/core_algos.py", ("compute_self_distillation_loss", "agg_loss"),
                              {**official, "torch": torch, "F": F, "Optional": __import__("typing").Optional,
                               "Any": __import__("typing").Any, "verl_F": masked_sum})
    rate, temperature = 0.1, 0.7
    reference, student = TinyLM(1), TinyLM(2)
    data = micro_batch("teacher")
    input_ids = data["input_ids"].values().unsqueeze(0)
    with torch.no_grad():
        ours_logp, _, _ = teacher_pass(SRPOSettings(teacher="trust_region", trust_region_rate=rate, topk=K),
                                       reference(input_ids).logits / temperature,
                                       student(input_ids).logits / temperature)
        teacher_module = official["TrustRegionTeacher"](reference, student, rate)
        ids = data[L.QUERY_IDS].values()
        theirs, ours, offset, row = [], [], 0, 0
        for p, r in zip(PROMPT_LENS, RESPONSE_LENS):
            logits = teacher_module(input_ids[:, offset:offset + p + r]).logits[0]
            logits = logits.div_(temperature)  # the official _forward_micro_batch's order: mix, then temperature
            predicting = torch.log_softmax(logits[p - 1:p - 1 + r], -1)
            theirs.append(predicting.gather(-1, ids[row:row + r]))
            ours.append(ours_logp[offset + p - 1:offset + p - 1 + r])
            offset, row = offset + p + r, row + r
    theirs, ours = torch.cat(theirs), torch.cat(ours)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)

    # the per-token top-K + tail loss on those teacher log-probs (student: its own top-K log-probs)
    student_topk = torch.log_softmax(torch.randn(ids.shape[0], V, generator=torch.Generator().manual_seed(3)), -1)
    student_topk = student_topk.gather(-1, ids)
    config = SimpleNamespace(full_logit_distillation=True, distillation_topk=K, distillation_add_tail=True, alpha=0.5,
                             is_clip=None)
    for token in range(ids.shape[0]):
        official_loss, _ = official["compute_self_distillation_loss"](
            student_topk[token, :1].view(1, 1), theirs[token, :1].view(1, 1), torch.ones(1, 1), config,
            student_topk_log_probs=student_topk[token].view(1, 1, K), teacher_topk_log_probs=theirs[token].view(1, 1, K))
        ours_loss = distillation_token_loss(student_topk[token].unsqueeze(0), ours[token].unsqueeze(0), 0.5, True)
        assert ours_loss.item() == pytest.approx(official_loss.item(), rel=1e-5)
