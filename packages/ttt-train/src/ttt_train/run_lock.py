"""One writer per run: a second `ttt train` of the same exp_folder/exp_name refuses at start.

The lock is an advisory `flock` on `<run dir>/.lock`, held for the life of the stage. The
kernel drops it when the holder dies (SIGKILL, OOM, node loss of a local disk), so a lock
left by a dead process is simply free: the next run takes it and says whose it was. The file
records the holder (host, pid, start time) so a refusal can name it. On a shared filesystem
whose locks do not reach across hosts, run the same stage from one host at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another live process is writing this run."""


class RunLock:
    """Holds `<run dir>/.lock` until `release()`; `previous` is the last holder's record."""

    def __init__(self, run_dir: Path, label: str) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(fd))
            os.close(fd)
            raise RunLockedError(
                f"run {label} is already being written by {holder} (lock {self.path}); "
                "wait for it to finish or stop it (SIGTERM checkpoints it), then resume "
                "with training.load_part=all") from None
        self.previous = _read(fd)
        record = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        """Clear the holder record, then unlock: a record found later means a holder died."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode()
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"


def describe_previous(lock: RunLock) -> str | None:
    """Who held the lock before and died holding it (no clean release), else None."""
    return None if lock.previous is None else _describe(lock.previous)
