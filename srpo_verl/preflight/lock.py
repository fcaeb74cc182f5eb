"""One run per checkpoint directory: ``<trainer.default_local_dir>/.srpo_run.lock`` held (flock) for the driver's
life.

verl 0.9.1 lets two runs write the same ``global_step_N`` folders and tracker, each exiting 0. The driver takes an
exclusive, non-blocking ``flock`` on the lock file before Ray starts and keeps the descriptor open until it exits;
the kernel drops the lock when the process dies however it dies, so a lock file left by a dead run is stale by
construction: the next run takes it over and names the dead holder. The file records the holder (pid, host, start
time, command) for the refusal line.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
import sys
import time

LOCK_NAME = ".srpo_run.lock"


class RunLockError(RuntimeError):
    """Another live run holds the checkpoint directory."""


def _holder(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that recorded nothing"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("started", 0)))
    return (f"pid {holder.get('pid')} on {holder.get('host')} (started {started}: "
            f"{str(holder.get('command', ''))[:160]})")


class RunLock:
    """An acquired lock; ``stale`` describes a dead run's lock that was taken over (None if there was none)."""

    def __init__(self, directory: str):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.stale: str | None = None
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.directory, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLockError(
                    f"trainer.default_local_dir={self.directory} is in use by another run: "
                    f"{_describe(_holder(self.path))} holds {self.path}; wait for it to end, stop it, or give this "
                    "run another trainer.default_local_dir"
                ) from None
            # the holder may have removed the file between our open and our flock: lock the file at the path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _holder(self.path)
        if previous:
            self.stale = f"took over the lock of a run that is no longer running: {_describe(previous)}"
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        atexit.register(self.release)
        return self

    def release(self) -> None:
        """Remove the file and drop the lock (at the driver's exit)."""
        if self._fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def acquire_run_lock(directory: str) -> RunLock:
    """Take the checkpoint directory's lock for this process's life; RunLockError names a live holder."""
    return RunLock(directory).acquire()
