"""Damaged token stores and awkward corpora, through `ttt train`, `ttt data verify` and
`ttt data tokenize`: a deleted, truncated or bit-flipped chunk is never read as tokens (the
run stops in one line naming the token range; its earlier checkpoint and the store stay as
they were); invalid UTF-8 is counted or, with --strict, refused; binary files are skipped and
listed; an empty corpus is refused and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultlib import one_line_error, tree_digest
from ttt_app_testlib import tiny_overrides, ttt_subprocess

from ttt_ledger import Ledger, RunStatus, ledger_path


def _chunk(store: Path, split: str = "train") -> Path:
    chunks = sorted(p for p in (store / split / "c").rglob("*") if p.is_file())
    assert chunks, f"no chunk files under {store / split}"
    return chunks[0]


def _flip(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


DAMAGE = {"deleted": Path.unlink,
          "truncated": lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]),
          "bit-flip": _flip}


def _ttt(args: list[str]) -> tuple[int, str]:
    proc = ttt_subprocess(args)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_chunk_stops_training_and_verify_names_its_tokens(
        tmp_path: Path, store: Path, damage: str):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    kw = {"training.eval_batches": 0, "training.save_checkpoint_freq": 2}
    rc, out = _ttt(["train", *tiny_overrides(tmp_path, copy, name="good", steps=2, **kw)])
    assert rc == 0, out
    good_ckpt = tree_digest(tmp_path / "checkpoints" / "t" / "good")

    DAMAGE[damage](_chunk(copy))
    damaged = tree_digest(copy)
    rc, out = _ttt(["data", "verify", str(copy), "--no-progress"])
    assert rc == 2, out
    assert "tokens [" in out and "split train" in out
    assert tree_digest(copy) == damaged  # verify only reads

    rc, out = _ttt(["train", *tiny_overrides(tmp_path, copy, name="bad", steps=4, **kw)])
    assert rc == 2, out
    line = one_line_error(out, "ttt train:")
    assert "tokens [" in line and "train" in line, line
    assert tree_digest(copy) == damaged
    assert tree_digest(tmp_path / "checkpoints" / "t" / "good") == good_ckpt
    with Ledger(ledger_path(tmp_path / "experiments"), create=False) as ledger:
        assert ledger.get_run("t", "good").status is RunStatus.COMPLETED
        bad = ledger.get_run("t", "bad")
    assert bad.status is RunStatus.FAILED and "tokens [" in bad.failure_reason


def _tokenize(tokenizer: Path, inputs: list[Path], out: Path, *extra: str) -> tuple[int, str]:
    return _ttt(["data", "tokenize", "--tokenizer", str(tokenizer), "--input",
                 *map(str, inputs), "--out", str(out), "--no-progress", *extra])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("a first document, in plain text. " * 5)
    (folder / "b.txt").write_bytes(b"a second one with two bad bytes \xff\xfe in it. " * 3)
    (folder / "c.txt").write_text("a third document. " * 5)
    (folder / "__init__.cpython-311.pyc").write_bytes(b"\xa7\r\r\n\x00\x00\x00\x00" * 8)
    return folder


def test_invalid_utf8_is_counted_binary_files_skipped(tmp_path: Path, tokenizer: Path,
                                                       corpus: Path):
    rc, out = _tokenize(tokenizer, [corpus], tmp_path / "store")
    assert rc == 0, out
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["invalid_utf8_documents"] == 1 and manifest["invalid_utf8_bytes"] == 6
    assert [Path(p).name for p in manifest["skipped_binary_files"]] == \
        ["__init__.cpython-311.pyc"]
    assert manifest["documents"] == 3 and "val" in manifest["splits"]  # a val split by default
    assert "invalid UTF-8: 1 documents, 6 bytes" in out and "__init__.cpython-311.pyc" in out


def test_strict_refuses_invalid_utf8_and_writes_nothing(tmp_path: Path, tokenizer: Path,
                                                        corpus: Path):
    rc, out = _tokenize(tokenizer, [corpus], tmp_path / "store", "--strict")
    assert rc == 2
    assert "b.txt: invalid UTF-8 at byte offset 32" in one_line_error(out, "ttt data tokenize:")
    assert not (tmp_path / "store").exists()


def test_an_empty_corpus_is_refused_and_writes_nothing(tmp_path: Path, tokenizer: Path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "x.txt").write_text("")
    for inputs in ([tmp_path / "empty.jsonl"], [tmp_path / "blank"]):
        rc, out = _tokenize(tokenizer, inputs, tmp_path / "store")
        assert rc == 2, out
        one_line_error(out, "ttt data tokenize:")
        assert not (tmp_path / "store").exists()
