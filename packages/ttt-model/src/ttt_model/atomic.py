"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The one helper for every small file the toolkit writes (JSON records, configs, manifests,
CSV tables) in the packages that may import ttt-model. ttt-data's stores and ttt-ledger's
record copy have their own, because those packages import no other ttt package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to a unique temporary sibling, flush it to disk, then
    rename it over `path`; on any failure the temporary file is removed and `path` is as
    it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
