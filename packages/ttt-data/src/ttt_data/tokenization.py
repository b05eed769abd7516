"""Tokenize a corpus into a token store: stream documents, encode them in n worker
processes, merge results in input order, and write train/val arrays plus a manifest.

Memory stays bounded: documents are grouped into pieces of ~``piece_bytes`` of text, at
most ``2 * workers`` pieces are in flight, and arrays are written in whole-chunk pieces.
The merge order is the input order whatever the worker count, so the store is
byte-identical for 1 or n workers. A validation split is written by default
(``DEFAULT_VAL_FRACTION``); an empty corpus is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ttt_data.atomic import atomic_directory
from ttt_data.corpus import CorpusFormat, Document, expand_inputs, iter_corpus
from ttt_data.errors import CorpusError
from ttt_data.manifest import Manifest, SplitStats, tokens_per_byte, write_manifest
from ttt_data.parallel import ordered_parallel_map
from ttt_data.store import SPLITS, documents_path, split_path, write_group
from ttt_data.token_array import DEFAULT_CHUNK_TOKENS, TOKEN_DTYPE, FlatArrayWriter
from ttt_data.tokenizer import PieceEncoder, describe_tokenizer

DEFAULT_PIECE_BYTES = 1 << 20
DEFAULT_VAL_FRACTION = 0.01
_DOC_INDEX_DTYPE = "uint64"
_DOC_INDEX_CHUNK = 1 << 16


def val_mask(doc_indices: np.ndarray, val_fraction: float) -> np.ndarray:
    """Which documents go to val: document g does iff floor((g+1)f + c) > floor(g f + c),
    with c = max(0, 1 - 2f).

    Exact integer arithmetic on f as a fraction: the val documents are evenly spread and
    no corpus size needs to be known in advance (streaming). The offset c makes document 1
    the first val document, so any corpus of >= 2 documents has one (for f < 1/2 the count
    after n >= 2 documents is floor((n-2)f) + 1; f >= 1/2 keeps floor(n f)); f = 1/4 puts
    documents 1, 5, 9, ... in val, f = 1/2 documents 1, 3, 5, ...
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    f = Fraction(val_fraction).limit_denominator(1_000_000)
    p, q = f.numerator, f.denominator
    cq = max(0, q - 2 * p)
    g = doc_indices.astype(np.int64)
    return ((g + 1) * p + cq) // q > (g * p + cq) // q


class InvalidUtf8Tally:
    """Counts, as documents stream past, those whose input was not valid UTF-8."""

    def __init__(self) -> None:
        self.documents = 0
        self.bytes = 0

    def observe(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            if doc.invalid_utf8_bytes:
                self.documents += 1
                self.bytes += doc.invalid_utf8_bytes
            yield doc


def group_by_bytes(docs: Iterable[Document], piece_bytes: int) -> Iterator[list[str]]:
    """Consecutive documents grouped into lists of roughly ``piece_bytes`` characters."""
    piece: list[str] = []
    size = 0
    for doc in docs:
        piece.append(doc.text)
        size += len(doc.text)
        if size >= piece_bytes:
            yield piece
            piece, size = [], 0
    if piece:
        yield piece


class _SplitWriter:
    """Tokens, document index and counts of one split."""

    def __init__(self, root: Path, split: str, chunk_tokens: int) -> None:
        self.tokens = FlatArrayWriter(split_path(root, split), TOKEN_DTYPE, chunk_tokens,
                                      digest=True)
        self.starts = FlatArrayWriter(documents_path(root, split), _DOC_INDEX_DTYPE,
                                      _DOC_INDEX_CHUNK)
        self.documents = 0
        self.raw_bytes = 0

    def add(self, tokens: np.ndarray, lengths: np.ndarray, raw_bytes: np.ndarray) -> None:
        if lengths.size == 0:
            return
        offsets = self.tokens.length + np.concatenate(([0], np.cumsum(lengths)[:-1]))
        self.starts.append(offsets.astype(np.uint64))
        self.tokens.append(tokens)
        self.documents += int(lengths.size)
        self.raw_bytes += int(raw_bytes.sum())

    def close(self) -> SplitStats:
        n = self.tokens.close()
        self.starts.close()
        return SplitStats(
            documents=self.documents, tokens=n, raw_bytes=self.raw_bytes,
            tokens_per_byte=tokens_per_byte(n, self.raw_bytes), sha256=self.tokens.sha256(),
            max_token_id=self.tokens.max_value,
            token_checksums=self.tokens.checksums(),
            document_checksums=self.starts.checksums(),
        )


def tokenize_corpus(
    tokenizer_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    fmt: CorpusFormat = "auto",
    field: str = "text",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    strict_utf8: bool = False,
    workers: int = 1,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    add_bos: bool | None = None,
    add_eos: bool | None = None,
    overwrite: bool = False,
    progress: bool = True,
    piece_bytes: int = DEFAULT_PIECE_BYTES,
) -> Manifest:
    """Tokenize ``inputs`` with the snapshot tokenizer in ``tokenizer_dir`` into the token
    store ``out`` (train and val arrays, document index, manifest with chunk checksums),
    atomically.

    Both splits are always written; val gets ``val_fraction`` of the documents (at least
    one when there are two or more; see :func:`val_mask`) and is empty with
    ``val_fraction=0``, which readers reject with a clear error when asked for it.
    Invalid UTF-8 is replaced and counted in the manifest, or refused with
    ``strict_utf8``; binary files in input folders are skipped and listed; a corpus
    without a single non-empty document is refused.
    """
    info = describe_tokenizer(tokenizer_dir, add_bos=add_bos, add_eos=add_eos)
    corpus = expand_inputs(inputs, fmt)
    files = corpus.files
    encoder = PieceEncoder(str(Path(tokenizer_dir).resolve()), info)
    val_mask(np.arange(1), val_fraction)  # raises on a bad fraction before any work
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_group(tmp)
        write_group(tmp / "documents")
        writers = {name: _SplitWriter(tmp, name, chunk_tokens) for name in SPLITS}
        invalid = InvalidUtf8Tally()
        docs = invalid.observe(iter_corpus(files, field, strict_utf8=strict_utf8))
        pieces = group_by_bytes(docs, piece_bytes)
        next_doc = total_tokens = 0
        with tqdm(desc="tokenize", unit="doc", disable=not progress, dynamic_ncols=True) as bar:
            for enc in ordered_parallel_map(encoder, pieces, workers):
                n = enc.lengths.size
                to_val = val_mask(np.arange(next_doc, next_doc + n), val_fraction)
                token_to_val = np.repeat(to_val, enc.lengths)
                for name, docs, toks in (("train", ~to_val, ~token_to_val),
                                         ("val", to_val, token_to_val)):
                    writers[name].add(enc.tokens[toks], enc.lengths[docs], enc.raw_bytes[docs])
                next_doc += n
                total_tokens += int(enc.tokens.size)
                bar.update(n)
                bar.set_postfix(tokens=total_tokens, refresh=False)
        if total_tokens == 0:
            skipped = (f", {len(corpus.skipped_binary)} binary file(s) skipped"
                       if corpus.skipped_binary else "")
            raise CorpusError(
                f"no documents to tokenize in {list(corpus.paths)} ({len(files)} file(s) "
                f"read{skipped}; empty documents are skipped): the corpus is empty")
        splits = {name: w.close() for name, w in writers.items()}
        manifest = Manifest.build(
            info, TOKEN_DTYPE, chunk_tokens, val_fraction, len(files), splits,
            invalid_utf8_documents=invalid.documents, invalid_utf8_bytes=invalid.bytes,
            skipped_binary_files=corpus.skipped_binary)
        write_manifest(tmp, manifest)
    return manifest

