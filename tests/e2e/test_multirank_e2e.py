"""End-to-end on two ranks: data parallelism, dynamic batching, packed sequences and gradient checkpointing change
nothing.

The paper recipes run several ranks, verl's dynamic batch sizes (several micro-batches per rank and step), packed
sequences (``use_remove_padding``: no attention mask, block-causal attention from the packed position ids) and
gradient checkpointing; the shared fixtures run one rank, one micro-batch, padded. Here the same seed runs on 2 ranks
(2 logical GPUs, FSDP2 over gloo) with token budgets small enough for several micro-batches per rank, and its step 1
must equal the one-rank, one-micro-batch, padded runs of tests/e2e/conftest.py (``srpo``, ``sdpo``): the same
rollouts, then the same routes, teacher tokens, entropy-weight statistics, loss and gradient norm.

The model has one MLP unit more than the shared assets (intermediate size 385, odd): its weights are zero, so the
function, every gradient and the grad norm are unchanged, but FSDP2 now shards those weights unevenly (193 / 192
rows), which the EMA teacher and its checkpoint must survive: a kill-and-resume on 2 ranks reproduces step 3.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

ACTOR_TOKEN_BUDGET = 160
TWO_RANKS = (
    "trainer.n_gpus_per_node=2",
    "ray_kwargs.ray_init.num_gpus=2",
    "actor_rollout_ref.model.enable_gradient_checkpointing=true",
    "actor_rollout_ref.model.use_remove_padding=true",
    # budgets of ~2-3 sequences: each rank runs several micro-batches per pass
    "actor_rollout_ref.actor.use_dynamic_bsz=true",
    f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={ACTOR_TOKEN_BUDGET}",
    "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
    f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={ACTOR_TOKEN_BUDGET}",
    "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true",
    "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=300",
)

def widen_mlp_by_a_zero_unit(model_dir: Path, out_dir: Path) -> int:
    """Copy the model with one more MLP unit per layer whose weights are zero; returns the new intermediate size.

    The new unit's activation is silu(0) * 0 = 0 and its output column is 0, so outputs and all gradients are those
    of the original model (the new weights get zero gradients and stay zero under AdamW)."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(model_dir, out_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    width = model.config.intermediate_size
    with torch.no_grad():
        for layer in model.model.layers:
            mlp = layer.mlp
            for name in ("gate_proj", "up_proj"):
                old = getattr(mlp, name)
                new = torch.nn.Linear(old.in_features, width + 1, bias=False)
                new.weight.zero_()
                new.weight[:width] = old.weight
                setattr(mlp, name, new)
            new = torch.nn.Linear(width + 1, mlp.down_proj.out_features, bias=False)
            new.weight.zero_()
            new.weight[:, :width] = mlp.down_proj.weight
            mlp.down_proj = new
    model.config.intermediate_size = width + 1
    model.save_pretrained(out_dir)
    return width + 1


@pytest.fixture(scope="module")
def uneven_assets(tiny_assets, tmp_path_factory):
    model, train, test = tiny_assets
    out = tmp_path_factory.mktemp("uneven") / "model"
    width = widen_mlp_by_a_zero_unit(Path(model), out)
    assert width % 2 == 1
    return out, train, test


@pytest.fixture(scope="module")
def two_srpo(uneven_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("two_srpo"), *uneven_assets, "srpo.method=srpo",
                  "trainer.total_training_steps=3", "trainer.save_freq=1", *TWO_RANKS)


@pytest.fixture(scope="module")
def two_sdpo(uneven_assets, tmp_path_factory):
    return CpuRun(tmp_path_factory.mktemp("two_sdpo"), *uneven_assets, "srpo.method=sdpo",
                  "trainer.total_training_steps=1", *TWO_RANKS)


def _assert_micro_batches(two: CpuRun, step: int) -> None:
    # verl's global_seqlen/* are tokens per rank: a rank holding over 3 budgets ran at least 4 micro-batches.
    # (Two rollout replicas serve the requests; the session agent loop gives each sample its own request id, so
    # its seed does not depend on the replica or the arrival order: assert_same_step checks that first.)
    assert two.steps[step]["global_seqlen/min"] > 3 * ACTOR_TOKEN_BUDGET, two.steps[step]["global_seqlen/min"]


def test_two_ranks_with_micro_batches_equal_one_rank_srpo(srpo, two_srpo, assert_same_step):
    srpo.check([1, 2, 3])
    two_srpo.check([1, 2, 3])
    assert two_srpo.steps[1]["srpo/route/sdpo_frac"] > 0, "step 1 routed nothing to SDPO: the comparison is empty"
    _assert_micro_batches(two_srpo, 1)
    assert_same_step(srpo, two_srpo, 1)
    # each rank saved its own (uneven) teacher shard
    teacher = two_srpo.workdir / "ckpt" / "global_step_3" / "teacher"
    assert {p.name for p in teacher.glob("model_world_size_2_rank_*.pt")} == {
        "model_world_size_2_rank_0.pt", "model_world_size_2_rank_1.pt"}


def test_two_ranks_with_micro_batches_equal_one_rank_sdpo(sdpo, two_sdpo, assert_same_step):
    sdpo.check([1])
    two_sdpo.check([1])
    _assert_micro_batches(two_sdpo, 1)
    assert_same_step(sdpo, two_sdpo, 1)


def test_kill_and_resume_on_two_ranks_reproduces_the_next_step(two_srpo, uneven_assets, tmp_path_factory,
                                                               assert_same_step):
    two_srpo.check([1, 2, 3])
    workdir = tmp_path_factory.mktemp("two_resumed")
    two_srpo.copy_checkpoints(workdir, 2)
    resumed = CpuRun(workdir, *uneven_assets, "srpo.method=srpo", "trainer.total_training_steps=3",
                     "trainer.save_freq=1", "trainer.resume_mode=auto", *TWO_RANKS)
    resumed.check([3])
    log = resumed.log_path.read_text()
    folder = resumed.workdir / "ckpt" / "global_step_2"
    assert re.search(rf"\[srpo\] resuming from step 2 \({re.escape(str(folder))}\): actor \+ EMA teacher; "
                     r"verified \d+ files", log), "the driver did not verify the checkpoint"
    assert f"[srpo] resumed from step 2 ({folder}): actor + EMA teacher" in log  # the trainer, once loaded
    assert_same_step(two_srpo, resumed, 3)
