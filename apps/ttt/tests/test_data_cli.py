"""`ttt data ...` end to end, offline: synth -> train-tokenizer -> tokenize -> inspect,
with outputs checked against the files they wrote and an independent tokenizer call."""

from __future__ import annotations

import json

import numpy as np
import tensorstore as ts
from tokenizers import Tokenizer

from ttt_cli.main import main


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
