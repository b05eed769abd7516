"""Synthetic long-range corpora: documents whose later part can only be predicted from a
fact stated far earlier, so a model that uses long context (or learns it at test time)
has a measurable advantage over one that does not.

Kinds:
* ``kv_recall``: key-value records up front, filler, then the same keys queried in
  another order with their values.
* ``repeat``: a random passage, filler, then the passage again verbatim.
* ``needle``: a single fact hidden at a random depth in filler, asked for at the end.

Document i depends only on (seed, i): the corpus is deterministic, and a prefix of a
larger corpus equals a smaller one. Each record carries the ``prompt`` (the document up to
the answer) and ``answer`` for retrieval evals; ``text`` is prompt + answer (+ tail).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ttt_data.atomic import atomic_directory, atomic_file

KINDS: tuple[str, ...] = ("kv_recall", "repeat", "needle")
_LEXICON_SIZE = 4096
_LEXICON_STREAM = 2**32 - 1  # RNG stream of the lexicon, apart from document streams
_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "va", "ze", "bri", "dun",
              "fel", "gor", "hin", "jas", "kel", "mor", "nal", "pim", "qua", "rud", "sol", "tir")


@dataclass(frozen=True)
class SynthDocument:
    """One synthetic document; ``fact_char`` is where the needed fact starts in ``text``."""

    doc_id: int
    kind: str
    text: str
    prompt: str
    answer: str
    fact_char: int


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4))))


@functools.lru_cache(maxsize=8)
def _lexicon(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The corpus's filler vocabulary and Zipf-like word frequencies (rank^-1), so filler
    has word statistics like text rather than uniform noise."""
    rng = np.random.default_rng([seed, _LEXICON_STREAM])
    words: dict[str, None] = {}
    while len(words) < _LEXICON_SIZE:
        words[_word(rng)] = None
    p = 1.0 / np.arange(1, _LEXICON_SIZE + 1)
    return np.array(list(words), dtype=object), p / p.sum()


def _filler(rng: np.random.Generator, words: int, seed: int) -> str:
    """``words`` filler words in sentences of 6-13 words (vectorized: corpora get large)."""
    if words <= 0:
        return ""
    lexicon, p = _lexicon(seed)
    toks = lexicon[rng.choice(lexicon.size, size=words, p=p)].tolist()
    ends = np.cumsum(rng.integers(6, 14, size=words // 6 + 1))
    ends = ends[ends < words].tolist() + [words]
    start = 0
    for end in ends:
        toks[start] = toks[start].capitalize()
        toks[end - 1] += "."
        start = end
    return " ".join(toks)


def _name(rng: np.random.Generator) -> str:
    return f"{_word(rng)}-{int(rng.integers(100, 1000))}"


def _kv_recall(rng: np.random.Generator, words: int, seed: int) -> tuple[str, str, str, int]:
    pairs = {}
    while len(pairs) < 8:
        pairs[_name(rng)] = str(int(rng.integers(100000, 1000000)))
    keys = list(pairs)
    records = " ".join(f"Record: the value of {k} is {pairs[k]}." for k in keys)
    head = f"{records}\n\n{_filler(rng, words, seed)}\n\n"
    order = [keys[i] for i in rng.permutation(len(keys))]
    asked = order[-1]
    queries = " ".join(f"Query: the value of {k} is {pairs[k]}." for k in order[:-1])
    prompt = f"{head}{queries} Query: the value of {asked} is "
    return prompt, pairs[asked], ".", records.index(f"the value of {asked} is")


def _repeat(rng: np.random.Generator, words: int, seed: int) -> tuple[str, str, str, int]:
    passage = _filler(rng, max(16, words // 8), seed)
    prompt = f"Passage: {passage}\n\n{_filler(rng, words, seed)}\n\nThe passage again: "
    return prompt, passage, "", len("Passage: ")


def _needle(rng: np.random.Generator, words: int, seed: int) -> tuple[str, str, str, int]:
    name, number = _name(rng), str(int(rng.integers(100000, 1000000)))
    depth = float(rng.uniform(0.05, 0.5))
    before = _filler(rng, int(words * depth), seed)
    after = _filler(rng, words - int(words * depth), seed)
    fact = f"The secret number of {name} is {number}."
    prompt = f"{before} {fact} {after}\n\nQuestion: what is the secret number of {name}? Answer: "
    return prompt, number, ".", len(before) + 1


_MAKERS = {"kv_recall": _kv_recall, "repeat": _repeat, "needle": _needle}


def synth_document(doc_id: int, *, seed: int = 0, words: int = 2000,
                   kinds: Sequence[str] = KINDS) -> SynthDocument:
    """Document ``doc_id`` of the corpus (kinds taken in turn), from its own RNG stream."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"unknown synthetic kinds {unknown or kinds}; expected some of {KINDS}")
    kind = kinds[doc_id % len(kinds)]
    rng = np.random.default_rng([seed, doc_id])
    prompt, answer, tail, fact_char = _MAKERS[kind](rng, words, seed)
    return SynthDocument(doc_id, kind, prompt + answer + tail, prompt, answer, fact_char)


def synth_documents(num_docs: int, *, seed: int = 0, words: int = 2000,
                    kinds: Sequence[str] = KINDS) -> Iterator[SynthDocument]:
    """Documents 0..num_docs-1, generated lazily."""
    for i in range(num_docs):
        yield synth_document(i, seed=seed, words=words, kinds=kinds)


def write_synth_corpus(
    out: str | Path, num_docs: int, *, seed: int = 0, words: int = 2000,
    kinds: Sequence[str] = KINDS, fmt: Literal["jsonl", "text"] = "jsonl", overwrite: bool = False,
) -> Path:
    """Write the corpus as one JSONL file (fields of :class:`SynthDocument`, text in
    ``text``) or as a folder of ``doc_NNNNNN.txt`` files; written atomically."""
    out = Path(out)
    docs = synth_documents(num_docs, seed=seed, words=words, kinds=kinds)
    if fmt == "text":
        with atomic_directory(out, overwrite=overwrite) as tmp:
            for doc in docs:
                (tmp / f"doc_{doc.doc_id:06d}.txt").write_text(doc.text, encoding="utf-8")
        return out
    if fmt != "jsonl":
        raise ValueError(f"unknown synthetic corpus format {fmt!r}; expected 'jsonl' or 'text'")
    with atomic_file(out, overwrite=overwrite) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps(asdict(doc), sort_keys=True) + "\n")
    return out
