"""Corpus readers: stream documents (one text each) from text files, folders, JSONL and
Parquet without holding the corpus in memory.

Order is deterministic (inputs sorted by path, then file order), because a token
store must come out byte-identical from the same input. Bytes that are not valid UTF-8
are replaced by U+FFFD and counted per document (or refused, with ``strict_utf8``);
binary files met while walking a folder are skipped and listed.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ttt_data.errors import CorpusError

CorpusFormat = Literal["auto", "text", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("auto", "text", "jsonl", "parquet")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
_PARQUET_BATCH_ROWS = 1024
BINARY_PROBE_BYTES = 8192  # a NUL byte in a file's first block marks it binary
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a bad byte
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Document:
    """One document's text and where it came from (``path`` or ``path:line``/``path:row``),
    and how many of its input bytes were not valid UTF-8 (each run became U+FFFD)."""

    text: str
    source: str
    invalid_utf8_bytes: int = 0


@dataclass(frozen=True)
class CorpusFile:
    """One input file and the format it is read in."""

    path: Path
    format: Literal["text", "jsonl", "parquet"]


@dataclass(frozen=True)
class CorpusInputs:
    """The input paths as given, the files to read in order, and the binary files the
    folder walk skipped (``<folder name>/<path inside it>``, sorted)."""

    paths: tuple[str, ...]
    files: list[CorpusFile]
    skipped_binary: tuple[str, ...]


def _format_by_suffix(path: Path) -> Literal["text", "jsonl", "parquet"]:
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def _nul_offset(path: Path) -> int | None:
    """Offset of the first NUL byte in the file's first block (binary), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(BINARY_PROBE_BYTES)
    except OSError as e:
        raise CorpusError(f"{path}: cannot be read ({e})") from None
    at = head.find(b"\0")
    return None if at < 0 else at


def expand_inputs(paths: Sequence[str | Path], fmt: CorpusFormat = "auto") -> CorpusInputs:
    """Resolve input paths to a sorted list of files with their formats.

    A file given directly is read by its extension under ``auto`` (.jsonl/.ndjson[.gz] ->
    JSONL, .parquet -> Parquet, anything else -> one text document). A folder is walked
    recursively (hidden files skipped); under ``auto`` every file in it, whatever its
    extension, is one text document; under an explicit format every file is read in that
    format. A folder's files read as text that hold a NUL byte in their first
    ``BINARY_PROBE_BYTES`` (``.pyc``, images, archives) are skipped and listed. Sorting
    makes the document order independent of the order paths were given.
    """
    if fmt not in FORMATS:
        raise CorpusError(f"unknown corpus format {fmt!r}; expected one of {FORMATS}")
    if not paths:
        raise CorpusError("no input paths given")
    files: dict[Path, CorpusFile] = {}
    skipped: set[str] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
            )
            if not found:
                raise CorpusError(f"input folder {path} holds no files")
            chosen = "text" if fmt == "auto" else fmt
            for p in found:
                if chosen == "text" and _nul_offset(p) is not None:
                    skipped.add(f"{path.name}/{p.relative_to(path).as_posix()}")
                else:
                    files[p.resolve()] = CorpusFile(p, chosen)
        elif path.is_file():
            chosen = _format_by_suffix(path) if fmt == "auto" else fmt
            files[path.resolve()] = CorpusFile(path, chosen)
        else:
            raise CorpusError(f"input path {path} does not exist")
    return CorpusInputs(paths=tuple(str(p) for p in paths),
                        files=[files[k] for k in sorted(files, key=str)],
                        skipped_binary=tuple(sorted(skipped)))


def decode_utf8(raw: bytes, where: str, *, strict: bool, offset: int = 0) -> tuple[str, int]:
    """Text of ``raw`` and the number of its bytes that are not valid UTF-8 (each run
    replaced by U+FFFD). ``strict`` refuses the first one, naming its byte offset
    (``offset`` is where ``raw`` starts in its file)."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError as e:
        if strict:
            raise CorpusError(f"{where}: invalid UTF-8 at byte offset {offset + e.start} "
                              f"(byte 0x{raw[e.start]:02x}; strict UTF-8 refuses it)") from None
    bad = len(_ESCAPED_BYTE.findall(raw.decode("utf-8", "surrogateescape")))
    return raw.decode("utf-8", "replace"), bad


def _read_text(path: Path, strict: bool) -> Iterator[Document]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot be read ({e})") from None
    text, bad = decode_utf8(raw, str(path), strict=strict)
    yield Document(text, str(path), bad)


def _replace_lone_surrogates(text: str, where: str, strict: bool) -> tuple[str, int]:
    # JSON can escape half of a surrogate pair ("\ud800"): not Unicode text, and it
    # cannot be encoded as UTF-8. Counted (one per escape) and replaced like a bad byte.
    if text.isascii():
        return text, 0
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return text, 0
    if strict:
        raise CorpusError(f"{where}: the text holds a lone surrogate \\u{ord(found[0]):04x} "
                          "(not valid Unicode; strict UTF-8 refuses it)")
    return _LONE_SURROGATE.subn("\ufffd", text)


def _read_jsonl(path: Path, field: str, strict: bool) -> Iterator[Document]:
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    offset = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                where = f"{path}:{lineno}"
                line, bad = decode_utf8(raw, where + (" (decompressed)" if gz else ""),
                                        strict=strict, offset=offset)
                offset += len(raw)
                if not line.strip():
                    continue
                text = _jsonl_text(line, field, where)
                text, lone = _replace_lone_surrogates(text, where, strict)
                yield Document(text, where, bad + lone)
    except (OSError, EOFError, zlib.error) as e:
        raise CorpusError(f"{path}: cannot be read ({e})") from None


def _jsonl_text(line: str, field: str, where: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(record, dict) or field not in record:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise CorpusError(f"{where}: no field {field!r} (found {keys})")
    text = record[field]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise CorpusError(f"{where}: field {field!r} is {type(text).__name__}, expected a string")
    return text


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


def iter_file_documents(file: CorpusFile, field: str = "text", *,
                        strict_utf8: bool = False) -> Iterator[Document]:
    """Documents of one input file, streamed."""
    if file.format == "text":
        return _read_text(file.path, strict_utf8)
    if file.format == "jsonl":
        return _read_jsonl(file.path, field, strict_utf8)
    return _read_parquet(file.path, field)


def iter_corpus(files: Sequence[CorpusFile], field: str = "text", *,
                strict_utf8: bool = False) -> Iterator[Document]:
    """Documents of already expanded input files, in their order, streamed one at a time.

    Empty documents (empty text, JSON null, Parquet null) are skipped: they carry no tokens.
    """
    for file in files:
        for doc in iter_file_documents(file, field, strict_utf8=strict_utf8):
            if doc.text:
                yield doc


def iter_documents(
    paths: Sequence[str | Path], fmt: CorpusFormat = "auto", field: str = "text", *,
    strict_utf8: bool = False,
) -> Iterator[Document]:
    """All documents of the input paths in deterministic (sorted) order, streamed."""
    return iter_corpus(expand_inputs(paths, fmt).files, field, strict_utf8=strict_utf8)
