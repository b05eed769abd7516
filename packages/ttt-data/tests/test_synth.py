"""Synthetic long-range corpora: deterministic given a seed, each document's answer is
stated far earlier in it, and the files tokenize."""

from __future__ import annotations

import json

import pytest

from ttt_data.manifest import read_manifest
from ttt_data.synth import KINDS, synth_document, synth_documents, write_synth_corpus
from ttt_data.tokenization import tokenize_corpus


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_synth_corpus(tmp_path / "a.jsonl", 6, seed=3, words=200)
    b = write_synth_corpus(tmp_path / "b.jsonl", 6, seed=3, words=200)
    c = write_synth_corpus(tmp_path / "c.jsonl", 6, seed=4, words=200)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    # A document depends only on (seed, id): a longer corpus starts with the shorter one.
    longer = write_synth_corpus(tmp_path / "d.jsonl", 9, seed=3, words=200)
    assert longer.read_bytes().startswith(a.read_bytes())


@pytest.mark.parametrize("kind", KINDS)
def test_answer_depends_on_a_fact_far_earlier(kind):
    for i in range(5):
        doc = synth_document(i, seed=11, words=1500, kinds=[kind])
        assert doc.kind == kind
        assert doc.text.startswith(doc.prompt + doc.answer)
        # The answer is in the document before the question, far back.
        first = doc.text.find(doc.answer)
        assert first == doc.fact_char + doc.text[doc.fact_char:].find(doc.answer)
        assert doc.text.find(doc.answer) < len(doc.prompt) - 3000
        assert len(doc.answer) >= 6


def test_kinds_rotate_and_unknown_kind_is_refused():
    assert [d.kind for d in synth_documents(6, words=50)] == list(KINDS) * 2
    with pytest.raises(ValueError, match="unknown synthetic kinds"):
        synth_document(0, kinds=["poetry"])


def test_text_folder_and_jsonl_tokenize_to_the_same_store(tmp_path, tokenizer_dir):
    j = write_synth_corpus(tmp_path / "s.jsonl", 5, seed=1, words=300)
    t = write_synth_corpus(tmp_path / "s_txt", 5, seed=1, words=300, fmt="text")
    records = [json.loads(line) for line in j.read_text().splitlines()]
    assert [p.read_text() for p in sorted(t.iterdir())] == [r["text"] for r in records]
    m1 = tokenize_corpus(tokenizer_dir, [j], tmp_path / "st1", progress=False)
    m2 = tokenize_corpus(tokenizer_dir, [t], tmp_path / "st2", progress=False)
    assert m1.fingerprint == m2.fingerprint
    assert read_manifest(tmp_path / "st1").raw_bytes == sum(
        len(r["text"].encode()) for r in records)
