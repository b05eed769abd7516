"""The manifest of a token store: what was tokenized, with what, and a fingerprint of the
result. Written with sorted keys and no timestamps, so equal input gives equal bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttt_data.errors import StoreError
from ttt_data.integrity import CHUNK_CHECKSUM, CHUNK_CHECKSUMS, LEGACY_CHUNK_CHECKSUM
from ttt_data.tokenizer import TokenizerInfo

MANIFEST_FILE = "manifest.json"
FORMAT = "ttt-data/token-store"
# 2 adds per-chunk checksums (zlib crc32), invalid UTF-8 counts and skipped binary files;
# 3 names each array's checksum algorithm (crc32c). Version 2 manifests still verify (with
# crc32); version 1 manifests still read (their stores cannot be verified chunk by chunk).
FORMAT_VERSION = 3


def tokens_per_byte(tokens: int, raw_bytes: int) -> float:
    """Tokens per UTF-8 byte of text, rounded so the JSON is stable across platforms."""
    return round(tokens / raw_bytes, 6) if raw_bytes else 0.0


def fingerprint(split_hashes: dict[str, str]) -> str:
    """One sha256 over every split's token-array sha256, in split-name order."""
    text = "".join(f"{name}:{split_hashes[name]}\n" for name in sorted(split_hashes))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ChunkChecksums:
    """The ``algorithm`` checksum (see :mod:`ttt_data.integrity`) of every chunk file of
    one flat array (``chunk`` values each, the last may be short), over the file's bytes as
    stored: damage is found and named by chunk. (An array re-encoded with other codecs
    holds the same tokens under other checksums.) In JSON: ``{"algorithm", "chunk",
    "values"}``; version 2 manifests wrote ``{"chunk", "crc32"}``, read as algorithm crc32."""

    chunk: int
    values: tuple[int, ...]
    algorithm: str = CHUNK_CHECKSUM

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ChunkChecksums:
        algorithm = d.get("algorithm", LEGACY_CHUNK_CHECKSUM)
        if algorithm not in CHUNK_CHECKSUMS:
            raise ValueError(f"unknown chunk checksum algorithm {algorithm!r} (this ttt-data "
                             f"knows {', '.join(CHUNK_CHECKSUMS)})")
        values = d["values"] if "values" in d else d["crc32"]  # version 2's key
        return ChunkChecksums(chunk=int(d["chunk"]), values=tuple(int(c) for c in values),
                              algorithm=algorithm)


@dataclass(frozen=True)
class SplitStats:
    """Counts of one split. ``sha256`` is over its tokens as little-endian uint32 bytes.
    Checksums cover the token array and the document index (None in version 1)."""

    documents: int
    tokens: int
    raw_bytes: int
    tokens_per_byte: float
    sha256: str
    max_token_id: int | None
    token_checksums: ChunkChecksums | None = None
    document_checksums: ChunkChecksums | None = None

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SplitStats:
        d = dict(d)
        for key in ("token_checksums", "document_checksums"):
            if d.get(key) is not None:
                d[key] = ChunkChecksums.from_dict(d[key])
        return SplitStats(**d)


@dataclass(frozen=True)
class Manifest:
    """Everything a reader needs to trust a store: tokenizer identity, counts, fingerprint,
    chunk checksums, and what the corpus held that was not plain UTF-8 text (None: not
    recorded, in version 1 manifests). Skipped files are relative to their input folder."""

    tokenizer: TokenizerInfo
    dtype: str
    chunk_tokens: int
    val_fraction: float
    input_files: int
    splits: dict[str, SplitStats]
    documents: int = 0
    tokens: int = 0
    raw_bytes: int = 0
    tokens_per_byte: float = 0.0
    fingerprint: str = ""
    invalid_utf8_documents: int | None = None
    invalid_utf8_bytes: int | None = None
    skipped_binary_files: tuple[str, ...] | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def build(tokenizer: TokenizerInfo, dtype: str, chunk_tokens: int, val_fraction: float,
              input_files: int, splits: dict[str, SplitStats], *,
              invalid_utf8_documents: int = 0, invalid_utf8_bytes: int = 0,
              skipped_binary_files: tuple[str, ...] = ()) -> Manifest:
        """A manifest whose totals and fingerprint are derived from the per-split stats."""
        tokens = sum(s.tokens for s in splits.values())
        raw = sum(s.raw_bytes for s in splits.values())
        return Manifest(
            tokenizer=tokenizer, dtype=dtype, chunk_tokens=chunk_tokens,
            val_fraction=val_fraction, input_files=input_files, splits=splits,
            documents=sum(s.documents for s in splits.values()), tokens=tokens, raw_bytes=raw,
            tokens_per_byte=tokens_per_byte(tokens, raw),
            fingerprint=fingerprint({k: s.sha256 for k, s in splits.items()}),
            invalid_utf8_documents=invalid_utf8_documents, invalid_utf8_bytes=invalid_utf8_bytes,
            skipped_binary_files=tuple(skipped_binary_files),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2) + "\n"

    @staticmethod
    def from_json(text: str, where: str = "manifest") -> Manifest:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:
                raise StoreError(f"{where}: format {d.get('format')!r}, expected {FORMAT!r}")
            version = d.get("format_version")
            if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
                raise StoreError(f"{where}: format_version {version!r}; this ttt-data reads "
                                 f"versions 1 to {FORMAT_VERSION} (a newer ttt-data wrote it?)")
            d["tokenizer"] = TokenizerInfo.from_dict(d["tokenizer"])
            d["splits"] = {k: SplitStats.from_dict(v) for k, v in d["splits"].items()}
            if d.get("skipped_binary_files") is not None:
                d["skipped_binary_files"] = tuple(d["skipped_binary_files"])
            return Manifest(**d)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise StoreError(f"{where}: malformed manifest ({e})") from None


def write_manifest(root: Path, manifest: Manifest) -> None:
    (Path(root) / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")


def read_manifest(root: str | Path) -> Manifest | None:
    """The store's manifest, or None for a store without one (e.g. the authors' stores)."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise StoreError(f"{path}: malformed manifest (not UTF-8: {e})") from None
    return Manifest.from_json(text, where=str(path))
