"""Write-then-rename for output directories: a failed import or export leaves nothing behind.

Everything is written into a hidden sibling of the destination (same filesystem, so the
final `os.rename` is atomic); on any exception the sibling is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ttt_import.errors import ImportFailure


def check_destination(out_dir: str | Path) -> Path:
    """The destination as a Path; it must not exist, or be an empty directory."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ImportFailure(f"output {out} already exists and is not empty; "
                            "choose a new directory (nothing was written)")
    return out


@contextlib.contextmanager
def staged_directory(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes `out_dir` when the block succeeds."""
    out = check_destination(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # an empty directory given as destination
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
