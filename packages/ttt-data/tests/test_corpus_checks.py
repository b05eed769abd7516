"""Corpora that cannot lie: invalid UTF-8 is counted (or refused with strict UTF-8),
binary files in a folder are skipped and listed, an empty corpus is refused, and a
validation split is written by default. Expected tokens come from the raw tokenizers
API on text decoded here with Python's own codec."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest
from tokenizers import Tokenizer
from ttt_data_testlib import DOCS, read_bare, write_jsonl

from ttt_data.bpe import DEFAULT_BOS, DEFAULT_EOS
from ttt_data.errors import CorpusError
from ttt_data.tokenization import DEFAULT_VAL_FRACTION, tokenize_corpus, val_mask


def encode(tokenizer_dir, texts: list[str]) -> list[int]:
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    bos, eos = tok.token_to_id(DEFAULT_BOS), tok.token_to_id(DEFAULT_EOS)
    return [t for text in texts for t in [bos, *tok.encode(text, add_special_tokens=False).ids,
                                          eos]]


BAD_TEXT = b"caf\xc3\xa9 ok \xff\xfe then \xe2\x82 cut"  # 2 stray bytes + a truncated sequence


def test_invalid_utf8_is_replaced_and_counted(tmp_path, tokenizer_dir):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_bytes(BAD_TEXT)
    (folder / "b.txt").write_bytes(b"clean text")
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(b'{"text": "good"}\n{"text": "bad \xc0 byte"}\n'
                      + json.dumps({"text": "half a pair \ud800 here"}).encode() + b"\n")
    m = tokenize_corpus(tokenizer_dir, [folder, jsonl], tmp_path / "s", val_fraction=0.0,
                        progress=False)
    # a.txt: \xff, \xfe and the 2-byte prefix \xe2\x82: 4 bytes; c.jsonl:2: \xc0; c.jsonl:3:
    # one lone surrogate escape.
    assert (m.invalid_utf8_documents, m.invalid_utf8_bytes) == (3, 6)
    texts = ["good", "bad \ufffd byte", "half a pair \ufffd here",  # c.jsonl < docs/ by path
             BAD_TEXT.decode("utf-8", "replace"), "clean text"]
    assert read_bare(tmp_path / "s" / "train").tolist() == encode(tokenizer_dir, texts)


def test_strict_utf8_refuses_naming_file_and_byte_offset(tmp_path, tokenizer_dir):
    path = tmp_path / "a.txt"
    path.write_bytes(BAD_TEXT)
    at = BAD_TEXT.index(b"\xff")
    with pytest.raises(CorpusError, match=re.escape(f"{path}: invalid UTF-8 at byte offset {at} "
                                                    "(byte 0xff")):
        tokenize_corpus(tokenizer_dir, [path], tmp_path / "s", strict_utf8=True, progress=False)
    jsonl = tmp_path / "b.jsonl"
    first = b'{"text": "fine"}\n'
    jsonl.write_bytes(first + b'{"text": "x\xc0"}\n')
    with pytest.raises(CorpusError, match=re.escape(f"{jsonl}:2: invalid UTF-8 at byte offset "
                                                    f"{len(first) + 11}")):
        tokenize_corpus(tokenizer_dir, [jsonl], tmp_path / "s", strict_utf8=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.jsonl"]


def test_binary_files_in_a_folder_are_skipped_and_listed(tmp_path, tokenizer_dir):
    folder = tmp_path / "src"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "notes.txt").write_text("plain words here", encoding="utf-8")
    (folder / "__pycache__" / "m.cpython-311.pyc").write_bytes(
        b"\xa7\r\r\n\x00\x00\x00\x00" + b"\xe3" * 40)
    (folder / "blob.dat").write_bytes(b"looks like text " * 100 + b"\x00" + b"tail")
    (folder / "late.txt").write_bytes(b"a" * 9000 + b"\x00")  # NUL after the first block
    m = tokenize_corpus(tokenizer_dir, [folder], tmp_path / "s", val_fraction=0.0,
                        progress=False)
    assert m.skipped_binary_files == ("src/__pycache__/m.cpython-311.pyc", "src/blob.dat")
    assert m.input_files == 2
    want = encode(tokenizer_dir, ["a" * 9000 + "\x00", "plain words here"])
    assert read_bare(tmp_path / "s" / "train").tolist() == want
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())[
        "skipped_binary_files"] == list(m.skipped_binary_files)


@pytest.mark.parametrize("kind", ["empty files", "empty jsonl", "only binary"])
def test_an_empty_corpus_is_refused_naming_the_inputs(tmp_path, tokenizer_dir, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    if kind == "empty files":
        (folder / "a.txt").write_bytes(b"")
        (folder / "b.txt").write_bytes(b"")
    elif kind == "empty jsonl":
        (folder / "a.jsonl").write_text('{"text": ""}\n{"text": null}\n\n')
    else:
        (folder / "a.bin").write_bytes(b"\x00\x01")
    fmt = "jsonl" if kind == "empty jsonl" else "auto"
    with pytest.raises(CorpusError, match=re.escape(f"no documents to tokenize in ['{folder}']")):
        tokenize_corpus(tokenizer_dir, [folder], tmp_path / "s", fmt=fmt, progress=False)
    assert not (tmp_path / "s").exists()


def test_a_validation_split_is_written_by_default(tmp_path, tokenizer_dir):
    corpus = write_jsonl(tmp_path / "c.jsonl", DOCS)
    m = tokenize_corpus(tokenizer_dir, [corpus], tmp_path / "s", progress=False)
    assert m.val_fraction == DEFAULT_VAL_FRACTION == 0.01
    # 8 documents at 1%: the second document is the one val document.
    assert m.splits["val"].documents == 1
    assert read_bare(tmp_path / "s" / "val").tolist() == encode(tokenizer_dir, [DOCS[1]])
    one = write_jsonl(tmp_path / "one.jsonl", DOCS[:1])
    assert tokenize_corpus(tokenizer_dir, [one], tmp_path / "s1",
                           progress=False).splits["val"].documents == 0


@pytest.mark.parametrize("f", [0.01, 0.1, 0.25, 1 / 3, 0.5, 0.7])
def test_val_split_has_a_document_from_two_documents_on_and_keeps_its_fraction(f):
    chosen = val_mask(np.arange(500), f)
    counts = np.concatenate(([0], np.cumsum(chosen)))
    frac = Fraction(f).limit_denominator(1_000_000)
    for n in range(2, 500):
        want = 1 + int((n - 2) * frac) if frac < Fraction(1, 2) else int(n * frac)
        assert counts[n] == want, n
    assert counts[0] == counts[1] == 0
