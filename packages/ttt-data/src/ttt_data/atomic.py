"""Atomic output folders: a failed write leaves nothing partial behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ttt_data.errors import StoreError


@contextlib.contextmanager
def atomic_directory(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that becomes ``out`` only if the block succeeds.

    A failure removes the temporary folder, leaving ``out`` as it was (absent, or the old
    store when overwriting). The rename is atomic on one filesystem.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists; pass overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; the result is an ordinary folder
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "store")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling file path that becomes ``out`` only if the block succeeds."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists; pass overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.partial-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
