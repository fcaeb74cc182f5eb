"""A checkpoint save that fails (a full disk, any OS error) ends the run in one line, without a half-written step.

verl 0.9.1 lets torch.save's C++ error through (``basic_ios::clear: iostream error``, or torch 2.13's
``unexpected pos 704 vs 598`` for a write that ENOSPC cut short: no word of the disk) and leaves ``global_step_N/``
half written; the tracker still names the last complete step, but a later ``resume_mode=resume_path`` or a reader of
the folder would take it. Here the failure (whatever the exception: any failure mid-save leaves the step half
written) becomes ``CheckpointSaveError`` naming the directory, its free space, the error and the step to resume
from, and the half-written folder is removed (renamed ``global_step_N.incomplete`` when it cannot be removed, which
nothing reads: verl and srpo_verl only read ``global_step_<digits>``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from srpo_verl.preflight.checkpoint import TRACKER_FILE, step_folders


class CheckpointSaveError(RuntimeError):
    """A checkpoint save failed; the message is the one line to print."""


def _free(directory: Path) -> str:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as error:
        return f"free space unknown ({error.strerror})"
    def size(n: int) -> str:
        return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"

    return f"{size(usage.free)} free of {size(usage.total)}"


def last_complete_step(root: Path, failed: int) -> int | None:
    """The step a relaunch resumes from: the tracker's when its folder exists and it is not the failed step, else
    the newest other step folder holding verl's data.pt (written after the actor); None when there is none."""
    tracker = Path(root) / TRACKER_FILE
    try:
        named = int(tracker.read_text().strip())
    except (OSError, ValueError):
        named = None
    folders = step_folders(root)
    if named is not None and named != failed and named in folders:
        return named
    done = [step for step, folder in folders.items() if step != failed and (folder / "data.pt").is_file()]
    return max(done) if done else None


def _error_text(error: BaseException) -> str:
    """The innermost cause's message on one line (a worker's error arrives wrapped in Ray's)."""
    while error.__cause__ is not None:
        error = error.__cause__
    cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError keeps the worker's exception here
    if isinstance(cause, BaseException):
        error = cause
    text = " ".join(str(error).split())
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1:  # a traceback as text: its last line is the error
        text = " ".join(lines[-1].split())
    return f"{type(error).__name__}: {text[:300]}"


def remove_partial(folder: Path) -> str:
    """Remove a half-written step folder; rename it ``.incomplete`` if that fails. Returns what was done."""
    if not folder.exists():
        return "no step folder was left"
    try:
        shutil.rmtree(folder)
        return f"the half-written {folder.name}/ was removed"
    except OSError:
        marked = folder.with_name(folder.name + ".incomplete")
        try:
            folder.rename(marked)
            return f"the half-written {folder.name}/ could not be removed and was renamed {marked.name}/"
        except OSError as error:
            return f"the half-written {folder.name}/ could not be removed or renamed ({error.strerror}): delete it"


def save_failure(error: BaseException, root: Path, step: int) -> CheckpointSaveError:
    """The one-line error for a failed save of ``step`` under ``root`` (after removing its half-written folder)."""
    root = Path(root)
    free = _free(root)  # before the removal frees the half-written step's bytes
    removed = remove_partial(root / f"global_step_{step}")
    last = last_complete_step(root, step)
    resume = (f"relaunch the same command to resume from step {last} ({root / f'global_step_{last}'})"
              if last is not None else "no earlier complete checkpoint: a relaunch starts over")
    return CheckpointSaveError(
        f"saving the step {step} checkpoint into {root} failed ({free}): {_error_text(error)}; {removed}; "
        f"free space (or fix the OS error) and {resume}")
