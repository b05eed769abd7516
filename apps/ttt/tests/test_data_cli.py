"""`ttt data ...` end to end, offline: synth -> train-tokenizer -> tokenize -> inspect ->
verify, with outputs checked against the files they wrote, an independent tokenizer call
and bare tensorstore reads; corrupt stores and corpora are refused in one line."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import tensorstore as ts
from jax.sharding import Mesh
from tokenizers import Tokenizer

from ttt_cli.main import main
from ttt_data.errors import EmptySplitError
from ttt_data.synth import write_synth_corpus


def test_synth_train_tokenize_inspect(tmp_path, capsys):
    corpus = tmp_path / "synth.jsonl"
    assert main(["data", "synth", "--out", str(corpus), "--docs", "6", "--words", "150",
                 "--seed", "5"]) == 0
    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["kv_recall", "repeat", "needle"] * 2
    assert "wrote 6 synthetic documents" in capsys.readouterr().out

    tok_dir = tmp_path / "tok"
    assert main(["data", "train-tokenizer", "--input", str(corpus), "--out", str(tok_dir),
                 "--vocab-size", "300"]) == 0
    assert "vocab 300" in capsys.readouterr().out
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))

    store = tmp_path / "store"
    assert main(["data", "tokenize", "--tokenizer", str(tok_dir), "--input", str(corpus),
                 "--out", str(store), "--val-fraction", "0.5", "--workers", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    bos, eos = tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|end_of_text|>")
    enc = [[bos] + tok.encode(r["text"], add_special_tokens=False).ids + [eos] for r in records]
    train = [t for i, e in enumerate(enc) if i % 2 == 0 for t in e]  # f=1/2: odd docs to val
    val = [t for i, e in enumerate(enc) if i % 2 == 1 for t in e]
    assert f"split train: {len(train)} tokens, 3 documents" in out
    assert f"split val: {len(val)} tokens, 3 documents" in out
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / "train")}}
    np.testing.assert_array_equal(ts.open(spec, read=True).result().read().result(), train)

    assert main(["data", "inspect", str(store), "--tokenizer", str(tok_dir),
                 "--sample-tokens", "12"]) == 0
    out = capsys.readouterr().out
    assert f"documents=6 tokens={len(train) + len(val)}" in out
    assert f"first 12 ids): {train[:12]}" in out
    assert repr(tok.decode(train[:12], skip_special_tokens=False)) in out


def test_errors_are_reported_with_exit_code_2(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    assert "ttt data inspect: token store" in capsys.readouterr().err
    assert main(["data", "tokenize", "--tokenizer", str(tmp_path), "--input", str(tmp_path),
                 "--out", str(tmp_path / "s"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json not found" in err
    assert not (tmp_path / "s").exists()


def read_bare(array_path, lo=0, hi=None):
    """Values read with a bare tensorstore spec (its defaults), not through ttt_data."""
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(array_path)}},
                  read=True).result()
    return arr[lo:arr.shape[0] if hi is None else hi].read().result()


def flip_bit_silently(array_path, chunk, lo, hi):
    """Flip one bit of chunk file c/<chunk> so that it still decodes, to other values."""
    path = array_path / "c" / str(chunk)
    raw, before = path.read_bytes(), read_bare(array_path, lo, hi)
    for i in range(len(raw) - 1, 0, -1):
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
        try:
            if not np.array_equal(read_bare(array_path, lo, hi), before):
                return
        except ValueError:
            continue
    raise AssertionError(f"no single-bit flip of {path} decodes to different values")


def tree_state(root):
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_verify_names_deleted_truncated_and_flipped_chunks(tmp_path, tokenizer, capsys):
    corpus = write_synth_corpus(tmp_path / "c.jsonl", 12, words=120)
    store = tmp_path / "s"
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(corpus),
                 "--out", str(store), "--chunk-tokens", "128", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "verify", str(store), "--no-progress"]) == 0
    out = capsys.readouterr().out
    n = read_bare(store / "train").size
    k = -(-n // 128)
    assert f"split train: {n} tokens in {k} chunks: OK" in out
    assert f"token store {store}: intact (2 split(s))" in out

    (store / "train" / "c" / "1").unlink()
    trunc = store / "train" / "c" / "3"
    trunc.write_bytes(trunc.read_bytes()[:16])
    flip_bit_silently(store / "train", 5, 5 * 128, 6 * 128)
    before = tree_state(store)
    assert main(["data", "verify", str(store), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert tree_state(store) == before  # the check wrote nothing
    (train_line,) = [line for line in out.splitlines() if line.startswith("split train")]
    assert "CORRUPT (3 problem(s))" in train_line
    for c, problem in ((1, "is missing on disk"), (3, "fails its checksum"),
                       (5, "fails its checksum")):
        assert (f"split train tokens [{c * 128}, {(c + 1) * 128}) (chunk {c}/{k}, file "
                f"{store / 'train' / 'c' / str(c)}) {problem}") in train_line
    assert "split val:" in out and f"token store {store}: CORRUPT in split(s) train" in out
    assert main(["data", "verify", str(store), "--split", "val", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "verify", str(store), "--split", "test"]) == 2
    assert "has no split 'test'" in one_line(capsys.readouterr().err)


def test_tokenize_reports_invalid_utf8_and_skipped_binaries_and_strict_refuses(
        tmp_path, tokenizer, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = b"ok \xff\xfe here"
    (folder / "a.txt").write_bytes(bad)
    (folder / "m.pyc").write_bytes(b"\xa7\r\r\n\x00\x00\x00\x00payload")
    store = tmp_path / "s"
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(folder),
                 "--out", str(store), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "invalid UTF-8: 1 documents, 2 bytes (replaced by U+FFFD)" in out
    assert "skipped 1 binary file(s): in/m.pyc" in out
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(folder),
                 "--out", str(tmp_path / "strict"), "--strict", "--no-progress"]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"ttt data tokenize: {folder / 'a.txt'}: invalid UTF-8 at byte "
                          f"offset {bad.index(0xff)} ")
    assert not (tmp_path / "strict").exists()


def test_empty_corpus_is_refused_in_one_line(tmp_path, tokenizer, capsys):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text('{"text": ""}\n')
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(corpus),
                 "--out", str(tmp_path / "s"), "--no-progress"]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"no documents to tokenize in ['{corpus}']" in err
    assert not (tmp_path / "s").exists()


def test_tokenize_writes_a_val_split_by_default(tmp_path, tokenizer, capsys):
    corpus = write_synth_corpus(tmp_path / "c.jsonl", 5, words=60)
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(corpus),
                 "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    tok = Tokenizer.from_file(str(tokenizer / "tokenizer.json"))
    second = json.loads(corpus.read_text().splitlines()[1])["text"]
    want = [tok.token_to_id("<|begin_of_text|>"), *tok.encode(second, add_special_tokens=False).ids,
            tok.token_to_id("<|end_of_text|>")]
    assert f"split val: {len(want)} tokens, 1 documents" in out
    assert read_bare(tmp_path / "s" / "val").tolist() == want
    with pytest.raises(SystemExit):
        main(["data", "tokenize", "--help"])
    assert "(default 0.01)" in " ".join(capsys.readouterr().out.split())


def test_heldout_batches_without_a_val_split_say_how_to_make_one(tmp_path, tokenizer):
    from ttt_train.data_feed import heldout_batches
    from ttt_train.translate import DataSpec

    corpus = write_synth_corpus(tmp_path / "c.jsonl", 4, words=60)
    noval = tmp_path / "noval"
    assert main(["data", "tokenize", "--tokenizer", str(tokenizer), "--input", str(corpus),
                 "--out", str(noval), "--val-fraction", "0", "--no-progress"]) == 0
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "fsdp"))
    data = DataSpec(store=str(noval), split="train", eval_split="val", seq_len=16,
                    global_batch_size=1, accum_steps=1, seed=0, read_threads=1,
                    document_aligned=False, tokenizer_dir=str(tokenizer), eval_batch_size=1,
                    eval_batches=2)
    with pytest.raises(EmptySplitError) as e:
        heldout_batches(data, vocab_size=512, bos_id=None, mesh=mesh, process_index=0,
                        process_count=1)
    msg = str(e.value)
    assert "split 'val' of token store" in msg and "is empty (0 tokens)" in msg
    assert (f"`ttt data tokenize --tokenizer {tokenizer} --input CORPUS... --out NEW_STORE "
            "--val-fraction 0.01`") in msg
    assert msg.endswith("or set training.eval_batches=0")
