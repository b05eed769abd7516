"""Must-show 2: tokenizing the same corpus twice gives byte-identical stores and equal
fingerprints; token and byte counts equal an independent count. Plus the readers
(text folder, JSONL field, Parquet column), the val split rule, streaming bounds and
atomic output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
from tokenizers import Tokenizer
from ttt_data_testlib import DOCS, write_jsonl

from ttt_data.bpe import DEFAULT_BOS, DEFAULT_EOS
from ttt_data.errors import CorpusError, StoreError
from ttt_data.manifest import read_manifest
from ttt_data.parallel import ordered_parallel_map
from ttt_data.tokenization import tokenize_corpus


def tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def read_split(root: Path, split: str) -> np.ndarray:
    # Read with a bare tensorstore spec, not through ttt_data's reader.
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(root / split)}}
    return ts.open(spec, read=True).result().read().result()


def expected_tokens(tokenizer_dir: Path, texts: list[str]) -> list[list[int]]:
    """Independent encoding: the raw tokenizers API plus the documented framing."""
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    bos, eos = tok.token_to_id(DEFAULT_BOS), tok.token_to_id(DEFAULT_EOS)
    return [[bos] + tok.encode(t, add_special_tokens=False).ids + [eos] for t in texts]


def test_same_input_gives_byte_identical_store_for_any_worker_count(
        tmp_path, tokenizer_dir, corpus_jsonl):
    kw = dict(val_fraction=0.25, chunk_tokens=64, progress=False, piece_bytes=200)
    m1 = tokenize_corpus(tokenizer_dir, [corpus_jsonl], tmp_path / "a", workers=1, **kw)
    m2 = tokenize_corpus(tokenizer_dir, [corpus_jsonl], tmp_path / "b", workers=1, **kw)
    m3 = tokenize_corpus(tokenizer_dir, [corpus_jsonl], tmp_path / "c", workers=2, **kw)
    a, b, c = (tree_bytes(tmp_path / n) for n in "abc")
    assert len([k for k in a if "/c/" in k]) > 3  # several chunks were written
    assert a == b == c
    assert m1.fingerprint == m2.fingerprint == m3.fingerprint


def test_counts_equal_an_independent_count(store, tokenizer_dir):
    m = read_manifest(store)
    enc = expected_tokens(tokenizer_dir, DOCS)
    # val_fraction 1/4: documents 1 and 5 (every 4th, from the second) go to val.
    val_ids = {1, 5}
    train = [t for i, e in enumerate(enc) if i not in val_ids for t in e]
    val = [t for i, e in enumerate(enc) if i in val_ids for t in e]
    assert read_split(store, "train").tolist() == train
    assert read_split(store, "val").tolist() == val
    raw_train = sum(len(d.encode("utf-8")) for i, d in enumerate(DOCS) if i not in val_ids)
    raw_val = sum(len(d.encode("utf-8")) for i, d in enumerate(DOCS) if i in val_ids)
    assert (m.splits["train"].tokens, m.splits["val"].tokens) == (len(train), len(val))
    assert (m.splits["train"].raw_bytes, m.splits["val"].raw_bytes) == (raw_train, raw_val)
    assert (m.splits["train"].documents, m.splits["val"].documents) == (6, 2)
    assert m.documents == len(DOCS)
    assert m.tokens == len(train) + len(val)
    assert m.raw_bytes == sum(len(d.encode("utf-8")) for d in DOCS)
    assert m.tokens_per_byte == pytest.approx(m.tokens / m.raw_bytes, abs=1e-6)
    sha_train = hashlib.sha256(np.asarray(train, "<u4").tobytes()).hexdigest()
    sha_val = hashlib.sha256(np.asarray(val, "<u4").tobytes()).hexdigest()
    assert m.splits["train"].sha256 == sha_train
    assert m.splits["val"].sha256 == sha_val
    assert m.fingerprint == hashlib.sha256(
        f"train:{sha_train}\nval:{sha_val}\n".encode()).hexdigest()
    assert m.splits["train"].max_token_id == max(train)
    tok_json = (tokenizer_dir / "tokenizer.json").read_bytes()
    assert m.tokenizer.sha256 == hashlib.sha256(tok_json).hexdigest()
    assert m.tokenizer.vocab_size == 320
    # Document index: offsets of each train document's first token.
    starts = read_split(store / "documents", "train").tolist()
    lengths = [len(e) for i, e in enumerate(enc) if i not in val_ids]
    assert starts == np.concatenate(([0], np.cumsum(lengths)[:-1])).tolist()


def test_manifest_has_no_volatile_fields(store):
    text = (store / "manifest.json").read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert not any(k in text for k in ("time", "date", str(store)))


def test_store_is_a_zarr_v3_group_with_blosc_zstd_arrays(store):
    assert json.loads((store / "zarr.json").read_text())["node_type"] == "group"
    meta = json.loads((store / "train" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["data_type"] == "uint32"
    blosc = [c for c in meta["codecs"] if c["name"] == "blosc"][0]["configuration"]
    assert blosc["cname"] == "zstd" and blosc["shuffle"] == "shuffle"


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_readers_give_the_same_tokens_as_jsonl(tmp_path, tokenizer_dir, store, kind,
                                               corpus_folder, corpus_parquet):
    # Folder files are sorted by name (doc00.md, doc01.txt, ...) = the JSONL order.
    if kind == "folder":
        inputs, kw = [corpus_folder], {}
    else:
        inputs, kw = [corpus_parquet], {"field": "body"}
    m = tokenize_corpus(tokenizer_dir, inputs, tmp_path / "s", val_fraction=0.25,
                        chunk_tokens=256, progress=False, **kw)
    assert m.fingerprint == read_manifest(store).fingerprint
    assert m.input_files == (len(DOCS) if kind == "folder" else 1)


def test_inputs_are_sorted_and_jsonl_field_is_chosen(tmp_path, tokenizer_dir):
    write_jsonl(tmp_path / "b.jsonl", ["second file"], field="content")
    write_jsonl(tmp_path / "a.jsonl", ["first file"], field="content")
    m = tokenize_corpus(tokenizer_dir, [tmp_path / "b.jsonl", tmp_path / "a.jsonl"],
                        tmp_path / "s", field="content", val_fraction=0.0, progress=False)
    expected = [t for e in expected_tokens(tokenizer_dir, ["first file", "second file"]) for t in e]
    assert read_split(tmp_path / "s", "train").tolist() == expected
    assert m.splits["val"].tokens == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_jsonl_field_is_a_clear_error_and_leaves_nothing(tmp_path, tokenizer_dir, workers):
    good = write_jsonl(tmp_path / "a.jsonl", DOCS)
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(CorpusError, match=r"b\.jsonl:1: no field 'text' \(found \['body'\]\)"):
        tokenize_corpus(tokenizer_dir, [good, bad], tmp_path / "out", progress=False,
                        chunk_tokens=16, piece_bytes=64, workers=workers)
    # The failure came after chunks were written to the temporary store: nothing remains.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]


def test_existing_output_is_not_overwritten_unless_asked(tmp_path, tokenizer_dir, corpus_jsonl):
    out = tmp_path / "s"
    tokenize_corpus(tokenizer_dir, [corpus_jsonl], out, progress=False)
    with pytest.raises(StoreError, match="already exists"):
        tokenize_corpus(tokenizer_dir, [corpus_jsonl], out, progress=False)
    tokenize_corpus(tokenizer_dir, [corpus_jsonl], out, progress=False, overwrite=True,
                    val_fraction=0.5)
    assert read_manifest(out).val_fraction == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_parallel_map_is_ordered_and_reads_ahead_boundedly():
    pulled = []

    def items():
        for i in range(40):
            pulled.append(i)
            yield i

    out = []
    for r in ordered_parallel_map(abs, (-i for i in items()), workers=2):
        out.append(r)
        # At most 2 * workers items are read beyond what has been returned.
        assert len(pulled) - len(out) <= 4
    assert out == list(range(40))
