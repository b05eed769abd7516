"""Stores that cannot lie: a deleted, truncated or bit-flipped chunk is refused by every
read path, naming the store, split and token range, never read as zeros or as silently
wrong tokens. Checksums are compared with the CRC32C of the chunk files computed here
(google_crc32c), and with zlib's crc32 for manifests of format version 2."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import zlib

import google_crc32c
import numpy as np
import pytest
from ttt_data_testlib import DOCS, flip_bit_silently, read_bare, write_bare_array, write_jsonl

from ttt_data.errors import StoreCorruptError, StoreError
from ttt_data.manifest import read_manifest
from ttt_data.pipeline import PipelineConfig, batches
from ttt_data.store import open_split, read_document_starts
from ttt_data.token_array import FlatArrayWriter, open_flat_array
from ttt_data.tokenization import tokenize_corpus
from ttt_data.verify import verify_store
from ttt_data.windows import TokenWindows

CHUNK = 64
SEQ = 40  # windows [40 i, 40 i + 41): some lie inside a chunk, some span two


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tokenizer_dir):
    """A store of ~900 train tokens in 64-token chunks (14 chunks)."""
    work = tmp_path_factory.mktemp("integrity")
    corpus = write_jsonl(work / "corpus.jsonl", DOCS)
    out = work / "store"
    tokenize_corpus(tokenizer_dir, [corpus], out, val_fraction=0.25, chunk_tokens=CHUNK,
                    progress=False)
    return out


@pytest.fixture
def store(pristine, tmp_path):
    """A fresh copy of the pristine store, to damage."""
    return shutil.copytree(pristine, tmp_path / "store")


def train_info(store):
    tokens = read_bare(store / "train")
    return tokens, -(-tokens.size // CHUNK)


def every_batch(store, **kw):
    cfg = PipelineConfig(str(store), seq_len=SEQ, global_batch_size=1, shuffle=False,
                         num_epochs=1, **kw)
    return [b["tokens"] for b in batches(cfg)]


def range_of(store, split, chunk, k, n):
    lo, hi = chunk * CHUNK, min(n, (chunk + 1) * CHUNK)
    return re.escape(f"token store {store} split {split} tokens [{lo}, {hi}) (chunk {chunk}/{k}, "
                     f"file {store / split / 'c' / str(chunk)})")


def test_an_intact_store_reads_every_window_unchanged(pristine):
    tokens, _ = train_info(pristine)
    got = np.stack(every_batch(pristine))[:, 0]
    want = np.stack([tokens[i * SEQ:i * SEQ + SEQ + 1] for i in range(len(got))])
    np.testing.assert_array_equal(got, want.astype(np.int32))
    assert len(got) == (tokens.size - 1) // SEQ


def file_crc(path) -> int:
    return google_crc32c.value(path.read_bytes())


def test_manifest_records_the_crc32c_of_every_chunk_file(pristine):
    _, k = train_info(pristine)
    sums = read_manifest(pristine).splits["train"].token_checksums
    want = [file_crc(pristine / "train" / "c" / str(c)) for c in range(k)]
    assert sums.chunk == CHUNK and sums.algorithm == "crc32c" and list(sums.values) == want
    doc_sums = read_manifest(pristine).splits["train"].document_checksums
    assert doc_sums.algorithm == "crc32c"
    assert list(doc_sums.values) == [file_crc(pristine / "documents" / "train" / "c" / "0")]
    # Named in the file, so a reader knows how to check.
    raw = json.loads((pristine / "manifest.json").read_text())
    assert raw["format_version"] == 3
    assert raw["splits"]["train"]["token_checksums"]["algorithm"] == "crc32c"


def test_deleted_chunk_is_refused_by_the_pipeline_naming_its_tokens(store):
    tokens, k = train_info(store)
    (store / "train" / "c" / "3").unlink()
    assert not read_bare(store / "train", 3 * CHUNK, 4 * CHUNK).any()  # tensorstore: zeros
    with pytest.raises(StoreCorruptError, match=range_of(store, "train", 3, k, tokens.size)
                       + " is missing on disk"):
        every_batch(store)


def test_deleted_chunk_of_a_store_without_manifest_is_refused(tmp_path):
    # No checksums to fall back on: only the refusal of missing chunks stands between the
    # reader and zero tokens here.
    root = tmp_path / "authors"
    write_bare_array(root / "train", np.arange(1, 1001), chunk=100)
    (root / "train" / "c" / "4").unlink()
    with pytest.raises(StoreCorruptError,
                       match=re.escape(f"token store {root} split train tokens [400, 500) "
                                       "(chunk 4/10, file ") + ".* is missing on disk"):
        open_split(root, "train").read(350, 450)
    cfg = PipelineConfig(str(root), seq_len=99, global_batch_size=1, shuffle=False, num_epochs=1)
    with pytest.raises(StoreCorruptError, match=r"tokens \[400, 500\)"):
        list(batches(cfg))


def test_truncated_chunk_is_refused_by_the_pipeline(store):
    tokens, k = train_info(store)
    path = store / "train" / "c" / "5"
    expected = file_crc(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(StoreCorruptError, match=range_of(store, "train", 5, k, tokens.size)
                       + re.escape(f" fails its checksum (expected crc32c {expected:08x}, "
                                   f"got {file_crc(path):08x})")):
        every_batch(store)
    # Unverified, tensorstore's decoder refuses it, and the chunk is still named.
    with pytest.raises(StoreCorruptError, match=range_of(store, "train", 5, k, tokens.size)
                       + " cannot be decoded"):
        every_batch(store, verify_checksums=False)


def test_bit_flip_fails_its_checksum_naming_the_tokens(store):
    tokens, k = train_info(store)
    c = 6
    path = store / "train" / "c" / str(c)
    expected = file_crc(path)
    wrong = flip_bit_silently(store / "train", c, c * CHUNK, (c + 1) * CHUNK)
    assert not np.array_equal(wrong, tokens[c * CHUNK:(c + 1) * CHUNK])  # decoded silently
    with pytest.raises(StoreCorruptError, match=range_of(store, "train", c, k, tokens.size)
                       + re.escape(f" fails its checksum (expected crc32c {expected:08x}, "
                                   f"got {file_crc(path):08x})")):
        every_batch(store)


def test_a_window_spanning_two_chunks_verifies_both(store):
    tokens, k = train_info(store)
    # Window 3 is tokens [120, 161): chunk 1 ends at 128, chunk 2 holds the rest.
    windows = TokenWindows(store, "train", SEQ)
    assert windows.start(3) // CHUNK == 1 and (windows.start(3) + SEQ) // CHUNK == 2
    flip_bit_silently(store / "train", 2, 2 * CHUNK, 3 * CHUNK)
    np.testing.assert_array_equal(windows[1], tokens[40:81])  # inside chunks 0-1: fine
    with pytest.raises(StoreCorruptError, match=range_of(store, "train", 2, k, tokens.size)):
        windows[3]


def test_missing_document_index_chunk_is_refused(store):
    (store / "documents" / "train" / "c" / "0").unlink()
    with pytest.raises(StoreCorruptError, match=re.escape(
            f"token store {store} document index documents/train entries [0, 6) (chunk 0/1")):
        read_document_starts(store, "train")
    with pytest.raises(StoreCorruptError, match="document index"):
        every_batch(store, document_aligned=True)


def test_a_chunk_equal_to_the_fill_value_is_still_written(tmp_path):
    # tensorstore skips storing such chunks by default; with missing chunks refused, a
    # store holding 64 zero tokens in a row would then be unreadable.
    values = np.concatenate([np.zeros(CHUNK, np.uint32), np.arange(1, CHUNK + 1)])
    writer = FlatArrayWriter(tmp_path / "a", "uint32", CHUNK)
    writer.append(values)
    assert writer.close() == 2 * CHUNK
    assert (tmp_path / "a" / "c" / "0").is_file()
    np.testing.assert_array_equal(open_flat_array(tmp_path / "a").read(), values)


def test_manifest_token_count_must_match_the_array(store):
    manifest = json.loads((store / "manifest.json").read_text())
    n = manifest["splits"]["train"]["tokens"]
    manifest["splits"]["train"]["tokens"] = n + 1
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreCorruptError, match=rf"split train holds {n} tokens but .*manifest"
                                                rf"\.json records {n + 1} tokens"):
        every_batch(store)


def downgrade_to_version_1(store):
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["format_version"] = 1
    for key in ("invalid_utf8_bytes", "invalid_utf8_documents", "skipped_binary_files"):
        del manifest[key]
    for stats in manifest["splits"].values():
        del stats["token_checksums"], stats["document_checksums"]
    (store / "manifest.json").write_text(json.dumps(manifest))


def test_version_1_manifest_reads_unverified_and_says_so_once(store, pristine, caplog):
    downgrade_to_version_1(store)
    m = read_manifest(store)
    assert m.format_version == 1 and m.splits["train"].token_checksums is None
    assert m.invalid_utf8_documents is None  # not recorded, not "zero"
    with caplog.at_level(logging.WARNING, logger="ttt_data"):
        first = every_batch(store)
        second = every_batch(store, document_aligned=True)
    said = [r.getMessage() for r in caplog.records if str(store) in r.getMessage()]
    assert said == [f"token store {store}: {store / 'manifest.json'} is format version 1, "
                    "without chunk checksums, so its chunks cannot be checksum-verified "
                    "(missing chunks are still refused)"]
    np.testing.assert_array_equal(np.stack(first), np.stack(every_batch(pristine)))
    assert second
    # Missing chunks are still refused.
    (store / "train" / "c" / "2").unlink()
    with pytest.raises(StoreCorruptError, match="is missing on disk"):
        every_batch(store)


def test_manifest_of_a_newer_format_is_refused(store):
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["format_version"] = 99
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"format_version 99; this ttt-data reads versions 1 "
                                         r"to 3"):
        read_manifest(store)


def downgrade_to_version_2(store):
    """The manifest as ttt-data wrote it before CRC32C: format version 2, zlib's crc32 of
    each chunk file under the key "crc32", and no algorithm named."""
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["format_version"] = 2
    for split, stats in manifest["splits"].items():
        for key, folder in (("token_checksums", store / split),
                            ("document_checksums", store / "documents" / split)):
            chunk = stats[key]["chunk"]
            k = len(stats[key]["values"])
            stats[key] = {"chunk": chunk, "crc32": [
                zlib.crc32((folder / "c" / str(c)).read_bytes()) for c in range(k)]}
    (store / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2))


def test_crc32_era_manifest_still_verifies_and_catches_a_bit_flip(store, pristine):
    downgrade_to_version_2(store)
    m = read_manifest(store)
    assert m.format_version == 2 and m.splits["train"].token_checksums.algorithm == "crc32"
    (train, val) = verify_store(store, progress=False)
    assert train.intact and val.intact, (train.faults, val.faults)
    assert "every chunk matches its crc32 " in train.checked
    np.testing.assert_array_equal(np.stack(every_batch(store)),
                                  np.stack(every_batch(pristine)))
    tokens, k = train_info(store)
    c = 6
    path = store / "train" / "c" / str(c)
    expected = zlib.crc32(path.read_bytes())
    flip_bit_silently(store / "train", c, c * CHUNK, (c + 1) * CHUNK)
    fails = range_of(store, "train", c, k, tokens.size) + re.escape(
        f" fails its checksum (expected crc32 {expected:08x}, "
        f"got {zlib.crc32(path.read_bytes()):08x})")
    with pytest.raises(StoreCorruptError, match=fails):
        every_batch(store)
    (train,) = verify_store(store, "train", progress=False)
    assert len(train.faults) == 1 and re.match(fails, train.faults[0])


def test_unknown_checksum_algorithm_is_refused(store):
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["splits"]["train"]["token_checksums"]["algorithm"] = "md5"
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"malformed manifest \(unknown chunk checksum "
                                         r"algorithm 'md5'"):
        read_manifest(store)


def tree_state(root):
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_verify_store_names_every_bad_range_and_writes_nothing(store):
    tokens, k = train_info(store)
    (store / "train" / "c" / "1").unlink()
    trunc = store / "train" / "c" / "4"
    trunc.write_bytes(trunc.read_bytes()[:10])
    flip_bit_silently(store / "train", 9, 9 * CHUNK, 10 * CHUNK)
    before = tree_state(store)
    train, val = verify_store(store, progress=False)
    assert tree_state(store) == before
    assert val.intact and val.split == "val"
    assert not train.intact and len(train.faults) == 3
    for fault, (c, problem) in zip(train.faults, ((1, "is missing on disk"),
                                                  (4, "fails its checksum"),
                                                  (9, "fails its checksum")), strict=True):
        assert re.match(range_of(store, "train", c, k, tokens.size) + " " + problem, fault)


def test_verify_store_checks_the_split_sha256_of_a_version_1_store(store):
    downgrade_to_version_1(store)
    (verdict,) = verify_store(store, "train", progress=False)
    assert verdict.intact and "no chunk checksums" in verdict.checked
    flip_bit_silently(store / "train", 0, 0, CHUNK)
    (verdict,) = verify_store(store, "train", progress=False)
    now = hashlib.sha256(read_bare(store / "train").astype("<u4").tobytes()).hexdigest()
    recorded = read_manifest(store).splits["train"].sha256
    assert now != recorded
    assert verdict.faults == (f"token store {store} split train: the sha256 of its tokens is "
                              f"{now}, {store / 'manifest.json'} records {recorded}",)


def test_verify_store_without_manifest_finds_missing_and_undecodable_chunks(tmp_path):
    root = tmp_path / "authors"
    write_bare_array(root / "train", np.arange(1, 1001), chunk=100)
    (verdict,) = verify_store(root, progress=False)
    assert verdict.intact and verdict.checked.startswith("no manifest.json")
    (root / "train" / "c" / "2").unlink()
    (root / "train" / "c" / "7").write_bytes(b"\x02\x01")
    (verdict,) = verify_store(root, progress=False)
    assert [f.split(" (chunk")[0] for f in verdict.faults] == [
        f"token store {root} split train tokens [200, 300)",
        f"token store {root} split train tokens [700, 800)"]
    assert verdict.faults[0].endswith("is missing on disk")
    assert "cannot be decoded" in verdict.faults[1]
