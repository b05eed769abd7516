"""Provenance of a run: config hash, git commit, package versions (stdlib only).

These fill the record fields that let a reader tell whether two runs were made by the
same code and configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from ttt_ledger.records import LedgerError


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the config as canonical JSON (sorted keys): equal configs, equal hashes."""
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except TypeError as e:
        raise LedgerError(f"config is not JSON-serialisable, cannot hash it: {e}") from e
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit(repo_dir: str | os.PathLike[str] = ".") -> str | None:
    """HEAD's commit hash, with `-dirty` when tracked files changed; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo_dir, check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions ('not installed' where absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
