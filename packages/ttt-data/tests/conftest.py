"""Shared tiny fixtures: a corpus in three formats, a locally trained BPE tokenizer, and
a tokenized store. Everything is built offline in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ttt_data_testlib import DOCS, write_jsonl

from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.tokenization import tokenize_corpus


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ttt_data")


@pytest.fixture(scope="session")
def corpus_jsonl(workdir: Path) -> Path:
    return write_jsonl(workdir / "corpus.jsonl", DOCS)


@pytest.fixture(scope="session")
def corpus_folder(workdir: Path) -> Path:
    folder = workdir / "corpus_txt"
    folder.mkdir()
    for i, t in enumerate(DOCS):
        # Extensions vary on purpose: every file in a folder is one document.
        (folder / f"doc{i:02d}{'.txt' if i % 2 else '.md'}").write_text(t, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def corpus_parquet(workdir: Path) -> Path:
    path = workdir / "corpus.parquet"
    pq.write_table(pa.table({"body": DOCS, "n": list(range(len(DOCS)))}), path, row_group_size=3)
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(workdir: Path, corpus_jsonl: Path) -> Path:
    return train_bpe_tokenizer([corpus_jsonl], workdir / "tok", vocab_size=320)


@pytest.fixture(scope="session")
def store(workdir: Path, tokenizer_dir: Path, corpus_jsonl: Path) -> Path:
    out = workdir / "store"
    tokenize_corpus(tokenizer_dir, [corpus_jsonl], out, val_fraction=0.25, chunk_tokens=256,
                    progress=False)
    return out
