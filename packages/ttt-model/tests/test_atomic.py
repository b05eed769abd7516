"""write_atomic: the old file or the new one, never a partial file or a stray temporary."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ttt_model import atomic
from ttt_model.atomic import write_atomic


def test_writes_text_and_bytes_and_replaces(tmp_path: Path):
    path = write_atomic(tmp_path / "sub" / "a.json", "{}\n")
    assert path.read_text() == "{}\n" and oct(path.stat().st_mode & 0o777) == "0o644"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "a.json"
    path.write_text("old")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]
