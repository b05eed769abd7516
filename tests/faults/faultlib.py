"""Small helpers of the fault suite: one-line errors, file trees, waiting on a subprocess."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def tree_digest(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, str]:
    """sha256 of every file under `root`: what "nothing already written is lost" compares."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not skip(p)}


def one_line_error(output: str, prefix: str) -> str:
    """The command's error: exactly one line starting with `prefix`, and no traceback."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, output
    return lines[0]


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300,
             poll: float = 0.002) -> None:
    """Poll `ready()` until it holds while `proc` is alive; fail if it never does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the fault "
                                 f"could be injected:\n{proc.stdout.read()}")
        time.sleep(poll)
    proc.kill()
    raise AssertionError("timed out waiting to inject the fault")


def metric_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
