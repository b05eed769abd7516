"""Corpus readers: stream documents (one text each) from text files, folders, JSONL and
Parquet without holding the corpus in memory.

Order is deterministic (inputs sorted by path, then file order), because a token
store must come out byte-identical from the same input.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ttt_data.errors import CorpusError

CorpusFormat = Literal["auto", "text", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("auto", "text", "jsonl", "parquet")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class Document:
    """One document's text and where it came from (``path`` or ``path:line``/``path:row``)."""

    text: str
    source: str


@dataclass(frozen=True)
class CorpusFile:
    """One input file and the format it is read in."""

    path: Path
    format: Literal["text", "jsonl", "parquet"]


def _format_by_suffix(path: Path) -> Literal["text", "jsonl", "parquet"]:
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def expand_inputs(paths: Sequence[str | Path], fmt: CorpusFormat = "auto") -> list[CorpusFile]:
    """Resolve input paths to a sorted list of files with their formats.

    A file given directly is read by its extension under ``auto`` (.jsonl/.ndjson[.gz] ->
    JSONL, .parquet -> Parquet, anything else -> one text document). A folder is walked
    recursively (hidden files skipped); under ``auto`` every file in it, whatever its
    extension, is one text document; under an explicit format every file is read in that
    format. Sorting makes the document order independent of the order paths were given.
    """
    if fmt not in FORMATS:
        raise CorpusError(f"unknown corpus format {fmt!r}; expected one of {FORMATS}")
    if not paths:
        raise CorpusError("no input paths given")
    files: dict[Path, CorpusFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
            )
            if not found:
                raise CorpusError(f"input folder {path} holds no files")
            for p in found:
                files[p.resolve()] = CorpusFile(p, "text" if fmt == "auto" else fmt)
        elif path.is_file():
            chosen = _format_by_suffix(path) if fmt == "auto" else fmt
            files[path.resolve()] = CorpusFile(path, chosen)
        else:
            raise CorpusError(f"input path {path} does not exist")
    return [files[k] for k in sorted(files, key=str)]


def _read_text(path: Path) -> Iterator[Document]:
    # Undecodable bytes become U+FFFD; raw-byte accounting counts the text as tokenized.
    yield Document(path.read_bytes().decode("utf-8", errors="replace"), str(path))


def _read_jsonl(path: Path, field: str) -> Iterator[Document]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise CorpusError(f"{path}:{lineno}: no field {field!r} (found {keys})")
            text = record[field]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise CorpusError(
                    f"{path}:{lineno}: field {field!r} is {type(text).__name__}, expected a string")
            yield Document(text, f"{path}:{lineno}")


def _read_parquet(path: Path, field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise CorpusError(f"{path}: not a readable Parquet file ({e})") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise CorpusError(f"{path}: no column {field!r} (columns: {names})")
    row = 0
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[field]):
        for text in batch.column(0).to_pylist():
            if text is not None and not isinstance(text, str):
                raise CorpusError(f"{path}: row {row} column {field!r} is "
                                  f"{type(text).__name__}, expected a string")
            yield Document(text or "", f"{path}:{row}")
            row += 1


def iter_file_documents(file: CorpusFile, field: str = "text") -> Iterator[Document]:
    """Documents of one input file, streamed."""
    if file.format == "text":
        return _read_text(file.path)
    if file.format == "jsonl":
        return _read_jsonl(file.path, field)
    return _read_parquet(file.path, field)


def iter_corpus(files: Sequence[CorpusFile], field: str = "text") -> Iterator[Document]:
    """Documents of already expanded input files, in their order, streamed one at a time.

    Empty documents (empty text, JSON null, Parquet null) are skipped: they carry no tokens.
    """
    for file in files:
        for doc in iter_file_documents(file, field):
            if doc.text:
                yield doc


def iter_documents(
    paths: Sequence[str | Path], fmt: CorpusFormat = "auto", field: str = "text"
) -> Iterator[Document]:
    """All documents of the input paths in deterministic (sorted) order, streamed."""
    return iter_corpus(expand_inputs(paths, fmt), field)
