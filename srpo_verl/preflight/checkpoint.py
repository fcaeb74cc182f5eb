"""The checkpoint a run would resume from, verified in the driver before Ray starts.

verl 0.9.1 resumes whatever ``latest_checkpointed_iteration.txt`` names and loads its shards with ``torch.load``,
which does not check the zip CRCs torch itself writes: a flipped float resumes silently and trains garbage, a
truncated shard fails in a worker after start-up with no file named, an empty tracker file (verl writes it
non-atomically) fails with ``invalid literal for int()``, and a tracker naming a missing folder starts from scratch.
Here the same checkpoint is found the way verl's V1 trainer finds it (``trainer.resume_mode``, ``default_local_dir``,
``resume_from_path``) and every file resume will load is checked:

  * present: ``actor/{model,optim,extra_state}_world_size_W_rank_R.pt`` for every rank of this run's world size W
    (per ``actor.checkpoint.load_contents``), ``data.pt``, and for teacher methods ``teacher/model_...pt``;
  * the zip CRC-32 of every entry of every file (one read of the whole checkpoint);
  * model shards (actor and EMA teacher): every tensor finite and of the shape the model's config gives
    (loaded with ``mmap=True, weights_only=True``: a second read, usually from the page cache).

A bad checkpoint raises :class:`CheckpointError`, one line naming the file and offering the newest earlier step
that verifies (``trainer.resume_mode=resume_path trainer.resume_from_path=...``); a run never silently starts over.
Pure Python/torch (no Ray, no verl): the driver (srpo_verl.main), the SRPO trainer and the tests call it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import torch

from srpo_verl.console import PREFIX

TRACKER_FILE = "latest_checkpointed_iteration.txt"
STEP_PREFIX = "global_step_"
#: verl's `checkpoint.load_contents` names → shard file prefixes (verl.utils.checkpoint.fsdp_checkpoint_manager)
SHARD_PREFIX = {"model": "model", "optimizer": "optim", "extra": "extra_state"}
_SHARD_RE = re.compile(r"^(model|optim|extra_state)_world_size_(\d+)_rank_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that must not be resumed; the message is one line naming the file and what to do."""


@dataclass(frozen=True)
class CheckpointLayout:
    """What resuming loads: this run's world size, actor contents and whether an EMA teacher must be there."""

    world_size: int
    actor_contents: tuple[str, ...] = ("model", "optimizer", "extra")
    teacher: bool = False
    #: check model shards' values and shapes (FSDP2's DTensors load without a process group; FSDP1's
    #: ShardedTensors do not, so an FSDP1 checkpoint gets the CRC check only)
    tensors: bool = True

    def required_files(self, folder: Path) -> list[Path]:
        files = [folder / "actor" / shard_name(SHARD_PREFIX[c], self.world_size, r)
                 for c in self.actor_contents for r in range(self.world_size)]
        if self.teacher:
            files += [folder / "teacher" / shard_name("model", self.world_size, r) for r in range(self.world_size)]
        return files + [folder / "data.pt"]


@dataclass(frozen=True)
class Verified:
    """A checkpoint that passed: its folder, step, and what the check read."""

    folder: Path
    step: int
    files: int
    bytes: int
    seconds: float


def shard_name(prefix: str, world_size: int, rank: int) -> str:
    return f"{prefix}_world_size_{world_size}_rank_{rank}.pt"


def step_of(folder: Path) -> int:
    """``.../global_step_12`` → 12 (raises CheckpointError for a folder verl could not resume)."""
    name = Path(folder).name
    if not (name.startswith(STEP_PREFIX) and name[len(STEP_PREFIX):].isdigit()):
        raise CheckpointError(f"trainer.resume_from_path={folder} must name a {STEP_PREFIX}<N> folder")
    return int(name[len(STEP_PREFIX):])


def step_folders(root: Path) -> dict[int, Path]:
    """The ``global_step_N`` folders directly under ``root``, by N."""
    if not Path(root).is_dir():
        return {}
    found = {}
    for entry in Path(root).iterdir():
        suffix = entry.name[len(STEP_PREFIX):]
        if entry.is_dir() and entry.name.startswith(STEP_PREFIX) and suffix.isdigit():
            found[int(suffix)] = entry
    return dict(sorted(found.items()))


def read_tracker(root: Path) -> int | None:
    """The step ``root/latest_checkpointed_iteration.txt`` names, None when the file does not exist.

    Raises CheckpointError when it exists but does not hold one integer (verl then fails with a bare
    ``invalid literal for int()``)."""
    path = Path(root) / TRACKER_FILE
    if not path.exists():
        return None
    text = path.read_bytes().decode(errors="replace").strip()
    if not text.isdigit():
        what = "is empty" if not text else f"holds {text[:40]!r}, not a step number"
        raise CheckpointError(f"{path} {what} (verl writes it non-atomically: the run stopped while writing it)")
    return int(text)


# ---------------------------------------------------------------------------------------------- file checks
def zip_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact torch zip file (None when every entry's CRC-32 matches). Reads the whole file."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        return f"is truncated or not a torch zip file ({error})"
    if bad is not None:
        return f"fails its zip CRC check in entry {bad} (the bytes changed after torch wrote them)"
    return None


def tensor_problem(path: Path, expected_shapes: Mapping[str, tuple[int, ...]] | None) -> str | None:
    """Why the model shard ``path`` must not be loaded: a non-finite value, a shape or a key set that differs from
    ``expected_shapes`` (full parameter shapes; a DTensor is compared by its global shape). None when it passes."""
    import torch.distributed.tensor  # noqa: F401  (registers DTensor with weights_only loads)

    try:
        with _quiet_device_mesh():
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the file cannot be resumed
        return f"cannot be loaded ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    if not isinstance(state, Mapping):
        return f"holds a {type(state).__name__}, not a state dict"
    if expected_shapes is not None:
        missing = sorted(set(expected_shapes) - set(state))
        unexpected = sorted(set(state) - set(expected_shapes))
        if missing or unexpected:
            parts = ([f"missing {len(missing)} key(s), e.g. {missing[0]}"] if missing else []) + (
                [f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}"] if unexpected else [])
            return f"does not match the model's parameters: {'; '.join(parts)}"
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if expected_shapes is not None and tuple(value.shape) != tuple(expected_shapes[name]):
            return f"has {name} of shape {list(value.shape)}, the model's is {list(expected_shapes[name])}"
        local = value.to_local() if hasattr(value, "to_local") else value
        if local.is_floating_point() and not _all_finite(local):
            return f"has non-finite values in {name}"
    return None


@contextlib.contextmanager
def _quiet_device_mesh():
    """Unpickling a DTensor outside a process group logs a torch.compile warning per shard: irrelevant here."""
    mesh_logger = logging.getLogger("torch.distributed.device_mesh")
    level = mesh_logger.level
    mesh_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        mesh_logger.setLevel(level)


def _all_finite(tensor: torch.Tensor) -> bool:
    """One read, no full-size temporary: NaN shows in both extremes, ±inf in one."""
    if not tensor.numel():
        return True
    low, high = torch.aminmax(tensor.reshape(-1))
    return bool(torch.isfinite(low) & torch.isfinite(high))


def file_problem(path: Path, expected_shapes: Mapping[str, tuple[int, ...]] | None, tensors: bool = True) -> str | None:
    if not path.is_file():
        return "is missing"
    problem = zip_problem(path)
    if problem is None and tensors and path.name.startswith("model_"):
        problem = tensor_problem(path, expected_shapes)
    return problem


# ---------------------------------------------------------------------------------------------- a whole step
def step_problem(folder: Path, layout: CheckpointLayout,
                 expected_shapes: Mapping[str, tuple[int, ...]] | None = None,
                 workers: int | None = None) -> tuple[Path, str] | None:
    """The first (file, problem) of the checkpoint ``folder`` for ``layout``, or None when all of it verifies.

    Files are checked in parallel threads, up to 16 (zlib's CRC and torch release the GIL)."""
    folder = Path(folder)
    if not folder.is_dir():
        return folder, "does not exist"
    saved = _saved_world_sizes(folder / "actor")
    if saved and layout.world_size not in saved:
        return folder / "actor", (f"was saved by {sorted(saved)[0]} rank(s) and this run has {layout.world_size}: "
                                  "resume with the same trainer.nnodes × trainer.n_gpus_per_node")
    if layout.teacher and not (folder / "teacher").is_dir():
        return folder / "teacher", ("is missing (the EMA teacher's state: deleted or lost, or the step was written "
                                    "by a run without a teacher, srpo.method=grpo or verl's own trainer)")
    files = layout.required_files(folder)
    workers = workers or min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(files)))) as pool:
        problems = list(pool.map(lambda p: file_problem(p, expected_shapes, layout.tensors), files))
    for path, problem in zip(files, problems):
        if problem is not None:
            return path, problem
    return None


def _saved_world_sizes(actor: Path) -> set[int]:
    if not actor.is_dir():
        return set()
    return {int(m.group(2)) for m in map(_SHARD_RE.match, os.listdir(actor)) if m}


def verify_step(folder: Path, layout: CheckpointLayout,
                expected_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Verified:
    """Verify one checkpoint; raise CheckpointError naming the bad file and the newest earlier step that verifies."""
    folder = Path(folder)
    started = time.perf_counter()
    problem = step_problem(folder, layout, expected_shapes)
    if problem is not None:
        path, why = problem
        raise CheckpointError(f"cannot resume {folder}: {path} {why}. "
                              + offer_previous(folder.parent, step_of(folder), layout, expected_shapes))
    files = layout.required_files(folder)
    return Verified(folder, step_of(folder), len(files), sum(p.stat().st_size for p in files),
                    time.perf_counter() - started)


def previous_complete(root: Path, before: int | None, layout: CheckpointLayout,
                      expected_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Path | None:
    """The newest ``global_step_N`` under ``root`` with N < ``before`` (any N when None) that verifies."""
    for step, folder in reversed(step_folders(root).items()):
        if (before is None or step < before) and step_problem(folder, layout, expected_shapes) is None:
            return folder
    return None


def offer_previous(root: Path, before: int | None, layout: CheckpointLayout,
                   expected_shapes: Mapping[str, tuple[int, ...]] | None = None) -> str:
    """The second half of a refusal: which earlier checkpoint to resume from, or how to start over."""
    folder = previous_complete(root, before, layout, expected_shapes)
    if folder is None:
        return (f"No earlier checkpoint under {root} verifies: start over with a new trainer.default_local_dir "
                "(or trainer.resume_mode=disable, which overwrites these checkpoints)")
    return (f"The newest complete checkpoint before it is {folder.name}: resume from it with "
            f"trainer.resume_mode=resume_path trainer.resume_from_path={folder}")


# ---------------------------------------------------------------------------------------------- what verl resumes
def resume_folder(mode: str, root: Path, resume_from_path: str | None, layout: CheckpointLayout,
                  expected_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Path | None:
    """The folder verl's V1 trainer resumes for ``trainer.resume_mode`` (None: a fresh start), refusing the cases
    verl gets wrong: an unreadable tracker, a tracker naming a missing folder (verl starts over), checkpoints that
    verify but no tracker (verl starts over and overwrites them). Checks presence only, not the files' contents."""
    root = Path(root)
    if mode == "disable":
        return None
    if mode == "resume_path":
        if not resume_from_path:
            raise CheckpointError("trainer.resume_mode=resume_path needs trainer.resume_from_path=<dir>/global_step_<N>")
        folder = Path(resume_from_path)
        step_of(folder)
        if not folder.is_dir():
            raise CheckpointError(f"trainer.resume_from_path={folder} does not exist. "
                                  + offer_previous(folder.parent, None, layout, expected_shapes))
        return folder
    if mode != "auto":
        raise CheckpointError(f"trainer.resume_mode={mode!r} is not one of auto, resume_path, disable")
    tracker = root / TRACKER_FILE
    try:
        step = read_tracker(root)
    except CheckpointError as error:
        raise CheckpointError(f"{error}. " + _offer_tracker(root, tracker, layout, expected_shapes)) from None
    if step is None:
        if step_folders(root):
            complete = previous_complete(root, None, layout, expected_shapes)
            if complete is not None:
                raise CheckpointError(
                    f"{root} holds checkpoints up to {complete.name} but no {TRACKER_FILE}, so verl would start "
                    f"over and overwrite them. " + _offer_tracker(root, tracker, layout, expected_shapes))
        return None
    folder = root / f"{STEP_PREFIX}{step}"
    if not folder.is_dir():
        raise CheckpointError(f"{tracker} names step {step} but {folder} does not exist (verl would start over). "
                              + offer_previous(root, step, layout, expected_shapes))
    return folder


def _offer_tracker(root: Path, tracker: Path, layout: CheckpointLayout,
                   expected_shapes: Mapping[str, tuple[int, ...]] | None) -> str:
    folder = previous_complete(root, None, layout, expected_shapes)
    if folder is None:
        return (f"No checkpoint under {root} verifies: delete {tracker} to start over (or use a new "
                "trainer.default_local_dir)")
    return (f"The newest complete checkpoint is {folder.name}: write its step into the file "
            f"(echo {step_of(folder)} > {tracker}) or pass trainer.resume_mode=resume_path "
            f"trainer.resume_from_path={folder}")


# ---------------------------------------------------------------------------------------------- the run config
def _absolute(path: str) -> Path:
    return Path(path) if os.path.isabs(path) else Path(os.getcwd()) / path


def layout_of(config, uses_teacher: bool) -> CheckpointLayout:
    """The resume layout of a composed verl config (world size = nnodes × n_gpus_per_node, as verl's actor pool)."""
    trainer = config.trainer
    contents = config.actor_rollout_ref.actor.get("checkpoint", {}).get("load_contents", None)
    contents = tuple(contents) if contents is not None else ("model", "optimizer", "extra")
    unknown = [c for c in contents if c not in SHARD_PREFIX and c != "hf_model"]
    if unknown:
        raise CheckpointError(f"actor_rollout_ref.actor.checkpoint.load_contents has {unknown}; "
                              f"known: {', '.join(SHARD_PREFIX)}, hf_model")
    return CheckpointLayout(world_size=int(trainer.nnodes) * int(trainer.n_gpus_per_node),
                            actor_contents=tuple(c for c in contents if c in SHARD_PREFIX), teacher=uses_teacher,
                            tensors=config.actor_rollout_ref.actor.get("strategy", "fsdp2") == "fsdp2")


def model_shapes(model_path: str, trust_remote_code: bool = False) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of the model at ``model_path`` (built on the meta device: no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust_remote_code)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def verify_resume(config, uses_teacher: bool,
                  shapes: Callable[[], Mapping[str, tuple[int, ...]] | None] | None = None,
                  echo: Callable[[str], None] = print, base_teacher: bool = False) -> Verified | None:
    """Find and verify the checkpoint this run would resume from; print one ``[srpo]`` line saying what resumes.

    Returns None for a fresh start. ``uses_teacher``: an EMA teacher (teacher/) must be there; ``base_teacher``
    (srpo.teacher=base): the model path must hold the weights the run started from (base_teacher_problem).
    ``shapes`` gives the expected model shard shapes (default: from ``actor_rollout_ref.model.path``; none with
    LoRA, whose shards hold adapter names)."""
    trainer = config.trainer
    root = _absolute(trainer.default_local_dir)
    layout = layout_of(config, uses_teacher)
    mode = trainer.get("resume_mode", "auto")
    path = trainer.get("resume_from_path", None)
    anything = mode == "resume_path" or (mode == "auto" and ((root / TRACKER_FILE).exists() or step_folders(root)))
    if shapes is None:
        shapes = lambda: _config_shapes(config) if layout.tensors else None  # noqa: E731
    expected = shapes() if anything else None  # a meta-device model: ~1 s, only when there is a checkpoint
    folder = resume_folder(mode, root, _absolute(path) if path else None, layout, expected)
    if folder is None:
        existing = step_folders(root)
        saves = int(trainer.get("save_freq", -1) or -1) > 0 and not trainer.get("val_only", False)
        if mode == "disable" and existing and saves:
            echo(f"{PREFIX} trainer.resume_mode=disable: starting from step 0; the checkpoints in {root} "
                 f"({', '.join(p.name for p in existing.values())}) will be overwritten as the run reaches them")
        return None
    verified = verify_step(folder, layout, expected)
    if base_teacher:
        problem = base_teacher_problem(folder, str(config.actor_rollout_ref.model.path))
        if problem:
            raise CheckpointError(problem)
    what = "actor + EMA teacher" if uses_teacher else "actor"
    checks = ("zip CRCs, finite " + ("and shaped " if expected else "") + "weights") if layout.tensors else "zip CRCs"
    echo(f"{PREFIX} resuming from step {verified.step} ({folder}): {what}; verified {verified.files} files, "
         f"{verified.bytes / 2**30:.2f} GiB ({checks}) in {verified.seconds:.1f} s")
    return verified


def _config_shapes(config) -> dict[str, tuple[int, ...]] | None:
    model = config.actor_rollout_ref.model
    if int(model.get("lora_rank", 0) or 0) > 0:
        return None
    return model_shapes(str(model.path), bool(model.get("trust_remote_code", False)))


def resumed_line(step: int, folder: Path, teacher: bool, kind: str | None = None) -> str:
    """What the trainer prints once the workers hold the resumed state (``kind``: srpo.teacher of a teacher method)."""
    what = {"live": " (teacher: the live policy, no state)",
            "base": " (teacher: the frozen initial weights, rebuilt from actor_rollout_ref.model.path)",
            "trust_region": " (teacher: lerp of the frozen initial weights, rebuilt from actor_rollout_ref.model.path, "
                            "and the actor)"}.get(kind, "")
    return f"{PREFIX} resumed from step {step} ({folder}): actor{' + EMA teacher' if teacher else what}"


# ---------------------------------------------------------------------------------------------- srpo.teacher=base
#: written into each step folder by a `srpo.teacher=base` run: the files its frozen teacher was built from
BASE_TEACHER_FILE = "teacher_base.json"
SUCCESS_MEMORY_FILE = "srpo_success_memory.json"
WATCHES_FILE = "srpo_watches.json"
#: model-directory files whose names and sizes identify the initial weights (config.json is hashed as well)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def base_fingerprint(model_path: str) -> dict:
    """What identifies the initial weights at ``model_path``: for a local directory the name and size of each
    weight file and config.json's SHA-256 (no weight is read: a rebuilt teacher loads the same bytes); for a hub id,
    the id alone."""
    import hashlib

    local = Path(os.path.expanduser(str(model_path)))
    if not local.is_dir():
        return {"model_path": str(model_path), "weights": None, "config_sha256": None}
    weights = {p.name: p.stat().st_size for p in sorted(local.iterdir())
               if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)}
    config = local / "config.json"
    digest = hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None
    return {"model_path": str(local.resolve()), "weights": weights, "config_sha256": digest}


def _write_json(step_folder: str | Path, name: str, value, **dumps) -> Path:
    """Write ``value`` as JSON to ``step_folder/name`` atomically (a scratch file renamed over it)."""
    import json

    folder = Path(step_folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    scratch = target.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(value, **dumps))
    os.replace(scratch, target)
    return target


def write_base_teacher(step_folder: str | Path, model_path: str) -> Path:
    """Record ``base_fingerprint(model_path)`` in ``step_folder/teacher_base.json`` (atomically)."""
    return _write_json(step_folder, BASE_TEACHER_FILE, base_fingerprint(model_path), indent=1, sort_keys=True)


def base_teacher_problem(step_folder: str | Path, model_path: str) -> str | None:
    """Why a `srpo.teacher=base` resume from ``step_folder`` must not rebuild its teacher from ``model_path`` (the
    weight files or config differ from the ones the run started from), or None. A step folder without the record
    (written by an ema or live run) passes: base is then, by definition, the weights at ``model_path``."""
    import json

    record = Path(step_folder) / BASE_TEACHER_FILE
    if not record.is_file():
        return None
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError) as error:
        return f"cannot resume {step_folder}: {record} is unreadable ({error})"
    now = base_fingerprint(model_path)
    if saved.get("weights") is None and now["weights"] is None:
        same = saved.get("model_path") == now["model_path"]
    else:
        same = (saved.get("weights"), saved.get("config_sha256")) == (now["weights"], now["config_sha256"])
    if same:
        return None
    return (f"cannot resume {step_folder} with srpo.teacher=base: its frozen teacher was built from "
            f"{saved.get('model_path')} and actor_rollout_ref.model.path={model_path} holds other weights or another "
            f"config ({record}); point actor_rollout_ref.model.path at the run's initial model")



def write_success_memory(step_folder: str | Path, state: Mapping) -> Path:
    """Write the success memory's state to ``step_folder/srpo_success_memory.json`` (atomically)."""
    return _write_json(step_folder, SUCCESS_MEMORY_FILE, state, ensure_ascii=False)


def write_watches(step_folder: str | Path, state: Mapping) -> Path:
    """Write the collapse watches' state to ``step_folder/srpo_watches.json`` (atomically)."""
    return _write_json(step_folder, WATCHES_FILE, state, indent=1)


def read_watches(step_folder: str | Path) -> dict | None:
    """The collapse watches' state saved in ``step_folder``; None when the step was written without it;
    CheckpointError (one line) when it is unreadable."""
    import json

    path = Path(step_folder) / WATCHES_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot resume {step_folder}: {path} is unreadable ({error})") from None


def read_success_memory(step_folder: str | Path) -> dict:
    """The success memory's state saved in ``step_folder``; CheckpointError (one line) when it is missing or
    unreadable."""
    import json

    path = Path(step_folder) / SUCCESS_MEMORY_FILE
    if not path.is_file():
        raise CheckpointError(
            f"resuming with srpo.success_memory=true from {step_folder}, which has no {SUCCESS_MEMORY_FILE} (written "
            "with the memory off, or the file was lost); resume with srpo.success_memory=false, or start the memory "
            f"empty at this step: echo '{{\"version\": 1, \"entries\": []}}' > {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot resume {step_folder}: {path} is unreadable ({error})") from None
