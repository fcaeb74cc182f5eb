"""srpo_verl.preflight.checkpoint on small fabricated checkpoints laid out like verl 0.9.1's FSDP ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from srpo_verl.preflight import checkpoint as C

SHAPES = {"embed.weight": (8, 4), "layer.weight": (4, 4), "layer.bias": (4,)}
LAYOUT = C.CheckpointLayout(world_size=1, teacher=True)


def model_state(scale: float = 1.0) -> dict[str, torch.Tensor]:
    return {name: torch.full(shape, float(scale)) for name, shape in SHAPES.items()}


def write_step(root: Path, step: int, world_size: int = 1, teacher: bool = True) -> Path:
    """global_step_<step>/{actor,teacher}/ shards, data.pt, and the tracker naming the step."""
    folder = root / f"global_step_{step}"
    (folder / "actor").mkdir(parents=True)
    for rank in range(world_size):
        torch.save(model_state(step), folder / "actor" / C.shard_name("model", world_size, rank))
        torch.save({"state": {0: {"exp_avg": torch.zeros(4)}}}, folder / "actor" / C.shard_name("optim", world_size, rank))
        torch.save({"lr_scheduler": None, "rng": {"cpu": torch.zeros(3, dtype=torch.uint8)}},
                   folder / "actor" / C.shard_name("extra_state", world_size, rank))
        if teacher:
            (folder / "teacher").mkdir(exist_ok=True)
            torch.save(model_state(step), folder / "teacher" / C.shard_name("model", world_size, rank))
    torch.save({"epoch": 0}, folder / "data.pt")
    (root / C.TRACKER_FILE).write_text(str(step))
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    write_step(tmp_path, 1)
    write_step(tmp_path, 2)
    return tmp_path


def test_an_intact_checkpoint_verifies_and_counts_what_it_read(root):
    verified = C.verify_step(root / "global_step_2", LAYOUT, SHAPES)
    assert verified.step == 2 and verified.files == 5  # model, optim, extra_state, teacher model, data.pt
    assert verified.bytes == sum(p.stat().st_size for p in LAYOUT.required_files(root / "global_step_2"))
    assert C.resume_folder("auto", root, None, LAYOUT, SHAPES) == root / "global_step_2"


def test_a_flipped_float_fails_the_zip_crc_that_torch_load_skips(root, flip_first_float):
    shard = root / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt"
    flip_first_float(shard)
    assert torch.load(shard, weights_only=True)["embed.weight"].flatten()[0] == pytest.approx(1e30)  # torch loads it
    problem = C.zip_problem(shard)
    assert problem.startswith("fails its zip CRC check in entry ") and "/data/" in problem
    with pytest.raises(C.CheckpointError) as error:
        C.verify_step(root / "global_step_2", LAYOUT, SHAPES)
    message = str(error.value)
    assert "\n" not in message
    assert f"cannot resume {root / 'global_step_2'}: {shard} fails its zip CRC check" in message
    assert message.endswith("The newest complete checkpoint before it is global_step_1: resume from it with "
                            f"trainer.resume_mode=resume_path trainer.resume_from_path={root / 'global_step_1'}")


def test_a_truncated_shard_is_named(root):
    shard = root / "global_step_2" / "teacher" / "model_world_size_1_rank_0.pt"
    shard.write_bytes(shard.read_bytes()[:-100])
    assert C.step_problem(root / "global_step_2", LAYOUT, SHAPES) == (
        shard, "is truncated or not a torch zip file (File is not a zip file)")
    empty = root / "global_step_1" / "data.pt"
    empty.write_bytes(b"")
    assert C.step_problem(root / "global_step_1", LAYOUT, SHAPES)[0] == empty


def test_non_finite_weights_with_a_valid_crc_are_refused(root):
    state = model_state()
    state["layer.weight"][2, 3] = float("nan")
    torch.save(state, root / "global_step_2" / "teacher" / "model_world_size_1_rank_0.pt")
    path, why = C.step_problem(root / "global_step_2", LAYOUT, SHAPES)
    assert (path.parent.name, why) == ("teacher", "has non-finite values in layer.weight")
    state["layer.weight"][2, 3] = float("-inf")
    torch.save(state, root / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt")
    assert C.step_problem(root / "global_step_2", LAYOUT, SHAPES)[1] == "has non-finite values in layer.weight"
    assert C.previous_complete(root, 2, LAYOUT, SHAPES) == root / "global_step_1"


def test_wrong_shapes_and_keys_are_refused(root):
    actor = root / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt"
    state = model_state()
    state["layer.weight"] = torch.zeros(4, 5)
    torch.save(state, actor)
    assert C.step_problem(root / "global_step_2", LAYOUT, SHAPES) == (
        actor, "has layer.weight of shape [4, 5], the model's is [4, 4]")
    del state["layer.bias"]
    state["layer.weight"] = torch.zeros(4, 4)
    state["head.weight"] = torch.zeros(2)
    torch.save(state, actor)
    assert C.step_problem(root / "global_step_2", LAYOUT, SHAPES)[1] == (
        "does not match the model's parameters: missing 1 key(s), e.g. layer.bias; 1 unexpected key(s), e.g. "
        "head.weight")
    assert C.step_problem(root / "global_step_2", LAYOUT, None) is None  # no expected shapes: only CRC + finite


def test_missing_files_teacher_and_world_size(root):
    (root / "global_step_2" / "actor" / "optim_world_size_1_rank_0.pt").unlink()
    assert C.step_problem(root / "global_step_2", LAYOUT, SHAPES) == (
        root / "global_step_2" / "actor" / "optim_world_size_1_rank_0.pt", "is missing")
    no_optimizer = C.CheckpointLayout(world_size=1, actor_contents=("model", "extra"), teacher=True)
    assert C.step_problem(root / "global_step_2", no_optimizer, SHAPES) is None
    for f in (root / "global_step_1" / "teacher").iterdir():
        f.unlink()
    (root / "global_step_1" / "teacher").rmdir()
    path, why = C.step_problem(root / "global_step_1", LAYOUT, SHAPES)
    assert path.name == "teacher" and why.startswith("is missing (the EMA teacher's state: deleted or lost")
    assert C.step_problem(root / "global_step_1", C.CheckpointLayout(world_size=1), SHAPES) is None
    two = write_step(root, 3, world_size=2)
    assert C.step_problem(two, C.CheckpointLayout(world_size=2, teacher=True), SHAPES) is None
    assert C.step_problem(two, LAYOUT, SHAPES) == (two / "actor", (
        "was saved by 2 rank(s) and this run has 1: resume with the same trainer.nnodes × trainer.n_gpus_per_node"))


@pytest.mark.parametrize("content, what", [("", "is empty"), ("  \n", "is empty"), ("2x", "holds '2x', not a step number")])
def test_an_unreadable_tracker_names_the_file_and_the_fix(root, content, what):
    tracker = root / C.TRACKER_FILE
    tracker.write_text(content)
    with pytest.raises(C.CheckpointError) as error:
        C.resume_folder("auto", root, None, LAYOUT, SHAPES)
    assert str(error.value) == (
        f"{tracker} {what} (verl writes it non-atomically: the run stopped while writing it). The newest complete "
        f"checkpoint is global_step_2: write its step into the file (echo 2 > {tracker}) or pass "
        f"trainer.resume_mode=resume_path trainer.resume_from_path={root / 'global_step_2'}")


def test_a_tracker_naming_a_missing_folder_is_refused_not_a_fresh_start(root):
    (root / C.TRACKER_FILE).write_text("7")
    with pytest.raises(C.CheckpointError, match=r"names step 7 but .*global_step_7 does not exist \(verl would start "
                                                r"over\)\. The newest complete checkpoint before it is global_step_2"):
        C.resume_folder("auto", root, None, LAYOUT, SHAPES)


def test_checkpoints_without_a_tracker_are_not_overwritten_silently(root, tmp_path_factory):
    (root / C.TRACKER_FILE).unlink()
    with pytest.raises(C.CheckpointError, match="holds checkpoints up to global_step_2 but no latest_checkpointed"):
        C.resume_folder("auto", root, None, LAYOUT, SHAPES)
    # only a half-written first checkpoint (a crash in the first save): a fresh start, as verl does
    partial = tmp_path_factory.mktemp("partial")
    write_step(partial, 1)
    (partial / C.TRACKER_FILE).unlink()
    (partial / "global_step_1" / "data.pt").unlink()
    assert C.resume_folder("auto", partial, None, LAYOUT, SHAPES) is None
    assert C.resume_folder("auto", tmp_path_factory.mktemp("empty"), None, LAYOUT, SHAPES) is None


def test_resume_path_and_disable(root):
    assert C.resume_folder("resume_path", root, str(root / "global_step_1"), LAYOUT, SHAPES) == root / "global_step_1"
    assert C.resume_folder("disable", root, None, LAYOUT, SHAPES) is None
    with pytest.raises(C.CheckpointError, match="must name a global_step_<N> folder"):
        C.resume_folder("resume_path", root, str(root), LAYOUT, SHAPES)
    with pytest.raises(C.CheckpointError, match="global_step_9 does not exist. The newest complete checkpoint before"
                                                " it is global_step_2"):
        C.resume_folder("resume_path", root, str(root / "global_step_9"), LAYOUT, SHAPES)
    with pytest.raises(C.CheckpointError, match="trainer.resume_mode='latest' is not one of auto, resume_path, disable"):
        C.resume_folder("latest", root, None, LAYOUT, SHAPES)


def run_config(root: Path, **trainer) -> OmegaConf:
    return OmegaConf.create({
        "trainer": {"default_local_dir": str(root), "resume_mode": "auto", "resume_from_path": None, "nnodes": 1,
                    "n_gpus_per_node": 1, "save_freq": 1, **trainer},
        "actor_rollout_ref": {"actor": {"checkpoint": {"load_contents": ["model", "optimizer", "extra"]}},
                              "model": {"path": "unused"}},
    })


def test_verify_resume_prints_one_line_saying_what_resumes(root, overwrite_entry):
    lines = []
    verified = C.verify_resume(run_config(root), uses_teacher=True, shapes=lambda: SHAPES, echo=lines.append)
    assert verified.folder == root / "global_step_2" and len(lines) == 1
    assert lines[0].startswith(f"[srpo] resuming from step 2 ({root / 'global_step_2'}): actor + EMA teacher; "
                               "verified 5 files, 0.00 GiB (zip CRCs, finite and shaped weights) in ")
    lines.clear()
    assert C.verify_resume(run_config(root, resume_mode="disable"), uses_teacher=True, shapes=lambda: SHAPES,
                           echo=lines.append) is None
    assert lines == [f"[srpo] trainer.resume_mode=disable: starting from step 0; the checkpoints in {root} "
                     "(global_step_1, global_step_2) will be overwritten as the run reaches them"]
    lines.clear()
    for no_saves in ({"save_freq": -1}, {"val_only": True}):  # e.g. scripts/eval/eval_checkpoint.sh
        C.verify_resume(run_config(root, resume_mode="disable", **no_saves), uses_teacher=True, shapes=lambda: SHAPES,
                        echo=lines.append)
    assert lines == []
    overwrite_entry(root / "global_step_2" / "data.pt", b"\x00", entry="data.pkl")
    with pytest.raises(C.CheckpointError, match=r"data\.pt fails its zip CRC check"):
        C.verify_resume(run_config(root), uses_teacher=False, shapes=lambda: SHAPES, echo=lines.append)


def test_layout_of_reads_world_size_and_load_contents(root):
    config = run_config(root, nnodes=2, n_gpus_per_node=4)
    assert C.layout_of(config, True) == C.CheckpointLayout(8, ("model", "optimizer", "extra"), True)
    config.actor_rollout_ref.actor.checkpoint.load_contents = ["model", "hf_model"]
    assert C.layout_of(config, False) == C.CheckpointLayout(8, ("model",), False)
    config.actor_rollout_ref.actor.checkpoint.load_contents = ["weights"]
    with pytest.raises(C.CheckpointError, match=r"load_contents has \['weights'\]"):
        C.layout_of(config, False)
