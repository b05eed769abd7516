"""Must-show 4: each bad input gets its own clear error naming the sizes or files."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import tensorstore as ts
from ttt_data_testlib import write_bare_array

from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.errors import (
    EmptySplitError,
    StoreError,
    StoreTooShortError,
    TokenIdOutOfRangeError,
    TokenizerError,
    TokenizerMismatchError,
)
from ttt_data.pipeline import PipelineConfig, batches
from ttt_data.tokenization import tokenize_corpus
from ttt_data.tokenizer import describe_tokenizer


def train_max_id(store) -> int:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / "train")}}
    return int(ts.open(spec, read=True).result().read().result().max())


def test_token_id_at_or_above_model_vocab_from_manifest(store):
    top = train_max_id(store)
    cfg = PipelineConfig(str(store), seq_len=16, global_batch_size=1, vocab_size=top)
    with pytest.raises(TokenIdOutOfRangeError,
                       match=rf"holds token id {top} but the model's vocab_size is {top}"):
        batches(cfg)
    batches(PipelineConfig(str(store), seq_len=16, global_batch_size=1, vocab_size=top + 1))


def test_token_id_above_vocab_in_a_store_without_manifest(tmp_path):
    values = np.full(2000, 5, dtype=np.uint32)
    values[1234] = 70_000
    write_bare_array(tmp_path / "s" / "train", values)
    cfg = PipelineConfig(str(tmp_path / "s"), seq_len=100, global_batch_size=1, shuffle=False,
                         vocab_size=50_000, num_epochs=1)
    it = batches(cfg)
    with pytest.raises(TokenIdOutOfRangeError,
                       match=r"token id 70000 at offset 1234 is >= the model's vocab_size 50000"):
        for _ in it:
            pass


def test_store_shorter_than_one_window(store):
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / "val")}}
    n = int(ts.open(spec, read=True).result().shape[0])
    cfg = PipelineConfig(str(store), split="val", seq_len=n, global_batch_size=1)
    with pytest.raises(StoreTooShortError,
                       match=rf"'val' .* has {n} tokens, fewer than one window of {n + 1}"):
        batches(cfg)


def test_empty_split(tmp_path, tokenizer_dir, corpus_jsonl):
    out = tmp_path / "noval"
    tokenize_corpus(tokenizer_dir, [corpus_jsonl], out, val_fraction=0.0, progress=False)
    msg = r"split 'val' of token store .*noval is empty \(0 tokens\)"
    with pytest.raises(EmptySplitError, match=msg):
        batches(PipelineConfig(str(out), split="val", seq_len=8, global_batch_size=1))


def test_fewer_windows_than_one_batch_per_host(store):
    cfg = PipelineConfig(str(store), seq_len=64, global_batch_size=2000, shard_count=2)
    msg = r"per host for 2 host\(s\), fewer than one batch of 1000"
    with pytest.raises(EmptySplitError, match=msg):
        batches(cfg)


def test_tokenizer_hash_differs_from_manifest(store, tokenizer_dir, corpus_jsonl, tmp_path):
    other = train_bpe_tokenizer([corpus_jsonl], tmp_path / "other_tok", vocab_size=300)
    mine = describe_tokenizer(tokenizer_dir).sha256
    theirs = describe_tokenizer(other).sha256
    assert mine != theirs
    cfg = PipelineConfig(str(store), seq_len=16, global_batch_size=1, tokenizer_dir=str(other))
    with pytest.raises(TokenizerMismatchError) as e:
        batches(cfg)
    msg = str(e.value)
    for part in (str(other / "tokenizer.json"), theirs, mine, str(store / "manifest.json")):
        assert part in msg
    batches(PipelineConfig(str(store), seq_len=16, global_batch_size=1,
                           tokenizer_dir=str(tokenizer_dir)))


def test_missing_split_and_missing_store(store, tmp_path):
    msg = re.escape("has no split 'test' (splits: ['train', 'val'])")
    with pytest.raises(StoreError, match=msg):
        batches(PipelineConfig(str(store), split="test", seq_len=8, global_batch_size=1))
    with pytest.raises(StoreError, match="does not exist"):
        batches(PipelineConfig(str(tmp_path / "nope"), seq_len=8, global_batch_size=1))


def test_tokenizer_folder_without_tokenizer_json(tmp_path, tokenizer_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tokenizer_dir, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(TokenizerError, match=r"broken/tokenizer.json not found \(folder holds: "):
        describe_tokenizer(broken)
