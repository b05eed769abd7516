"""Token store layout on disk and the checks a reader makes before trusting it.

    <store>/zarr.json              zarr v3 group
    <store>/<split>                flat uint32 token array (train, val): the authors' layout
    <store>/documents/<split>      uint64 offsets of document starts (ours; optional)
    <store>/manifest.json          counts, tokenizer identity, fingerprint, chunk checksums
                                   (ours; optional)

Stores without the optional parts (the published DCLM/Books stores) read unchanged; they
cannot be checksum-verified, but a missing chunk is refused in every store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttt_data.errors import (
    EmptySplitError,
    MissingSplitError,
    StoreCorruptError,
    StoreError,
    StoreTooShortError,
    TokenIdOutOfRangeError,
    TokenizerMismatchError,
)
from ttt_data.integrity import CheckedReader, check_checksums_fit, warn_unverified
from ttt_data.manifest import MANIFEST_FILE, ChunkChecksums, Manifest, read_manifest
from ttt_data.token_array import DEFAULT_CACHE_BYTES, FlatArray, open_flat_array
from ttt_data.tokenizer import TOKENIZER_FILE, tokenizer_sha256

SPLITS: tuple[str, ...] = ("train", "val")
DOCUMENTS_GROUP = "documents"
_GROUP_JSON = {"zarr_format": 3, "node_type": "group", "attributes": {}}


def split_path(root: str | Path, split: str) -> Path:
    return Path(root) / split


def documents_path(root: str | Path, split: str) -> Path:
    return Path(root) / DOCUMENTS_GROUP / split


def write_group(path: str | Path) -> None:
    """Mark a folder as a zarr v3 group, so zarr tools can walk the store."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "zarr.json").write_text(json.dumps(_GROUP_JSON, sort_keys=True) + "\n")


def list_splits(root: str | Path) -> list[str]:
    """Names of the flat arrays directly under the store root (its splits)."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"token store {root} does not exist")
    found = []
    for child in sorted(root.iterdir()):
        meta = child / "zarr.json"
        if child.is_dir() and meta.is_file():
            try:
                node = json.loads(meta.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise StoreError(f"{meta}: not valid JSON ({e})") from None
            if (isinstance(node, dict) and node.get("node_type") == "array"
                    and len(node.get("shape", [])) == 1):
                found.append(child.name)
    return found


def split_label(root: str | Path, split: str) -> str:
    """How messages name a split: ``token store <root> split <split>``."""
    return f"token store {root} split {split}"


def open_split(
    root: str | Path, split: str, *, cache_bytes: int = DEFAULT_CACHE_BYTES
) -> FlatArray:
    """The split's token array; a clear error if the store or split is missing or empty."""
    present = list_splits(root)
    if split not in present:
        raise MissingSplitError(f"token store {root} has no split {split!r} (splits: {present})")
    array = open_flat_array(split_path(root, split), cache_bytes=cache_bytes,
                            label=split_label(root, split), unit="tokens")
    if array.length == 0:
        raise EmptySplitError(f"split {split!r} of token store {root} is empty (0 tokens)")
    return array


def _recorded_checksums(root: Path, array: FlatArray, manifest: Manifest | None, split: str,
                        length: int | None, checksums: ChunkChecksums | None,
                        what: str) -> ChunkChecksums | None:
    """The checksums to verify ``array`` against, after checking the manifest describes
    this array (its recorded ``length``); None, said once, when none were recorded."""
    where = root / MANIFEST_FILE
    if manifest is None:
        warn_unverified(str(root), f"it has no {MANIFEST_FILE}")
        return None
    if length is None:
        warn_unverified(str(root), f"{where} records no split {split!r}")
        return None
    if array.length != length:
        raise StoreCorruptError(f"{array.label} holds {array.length} {array.unit} but {where} "
                                f"records {length} {what}: the array changed after tokenizing")
    if checksums is None:
        warn_unverified(str(root), f"{where} is format version {manifest.format_version}, "
                                   "without chunk checksums")
        return None
    check_checksums_fit(array, checksums, str(where))
    return checksums


def open_checked_split(
    root: str | Path, split: str, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
    verify: bool = True,
) -> CheckedReader:
    """The split's tokens, read through a :class:`CheckedReader` that verifies each chunk
    against the manifest's checksums the first time it is read (``verify=False``, or a
    store without checksums: unverified, but missing chunks are still refused)."""
    root = Path(root)
    array = open_split(root, split, cache_bytes=cache_bytes)
    if not verify:
        return CheckedReader(array, None)
    manifest = read_manifest(root)
    stats = manifest.splits.get(split) if manifest else None
    checksums = _recorded_checksums(root, array, manifest, split,
                                    stats.tokens if stats else None,
                                    stats.token_checksums if stats else None, "tokens")
    return CheckedReader(array, checksums)


def open_document_index(root: str | Path, split: str) -> CheckedReader | None:
    """The split's document index (offsets of document starts), checksum-verified as it
    is read when the manifest recorded checksums; None if the store has no index."""
    root = Path(root)
    path = documents_path(root, split)
    if not (path / "zarr.json").is_file():
        return None
    array = open_flat_array(path, label=f"token store {root} document index "
                                        f"{DOCUMENTS_GROUP}/{split}", unit="entries")
    manifest = read_manifest(root)
    stats = manifest.splits.get(split) if manifest else None
    checksums = _recorded_checksums(root, array, manifest, split,
                                    stats.documents if stats else None,
                                    stats.document_checksums if stats else None, "documents")
    return CheckedReader(array, checksums)


def read_document_starts(root: str | Path, split: str) -> np.ndarray | None:
    """Offsets where documents start in the split, or None if the store has no index."""
    index = open_document_index(root, split)
    if index is None:
        return None
    return np.asarray(index.read(0, index.length), dtype=np.int64)


def scan_document_starts(tokens: CheckedReader, bos_id: int, *, block: int = 1 << 22
                         ) -> np.ndarray:
    """Offsets of every ``bos_id`` token, read in bounded blocks: the document index of a
    store written without one (the authors' stores put BOS at each document start)."""
    n = tokens.length
    starts = []
    for lo in range(0, n, block):
        piece = tokens.read(lo, min(n, lo + block))
        starts.append(np.flatnonzero(piece == bos_id).astype(np.int64) + lo)
    return np.concatenate(starts) if starts else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class CheckedSplit:
    """A split that passed the load-time checks, with what readers need from the store."""

    root: Path
    split: str
    num_tokens: int
    manifest: Manifest | None


def check_split(
    root: str | Path, split: str, *, window: int, vocab_size: int | None = None,
    tokenizer_dir: str | Path | None = None,
) -> CheckedSplit:
    """Fail fast, before any training step, on the store problems we can see up front:
    missing or empty split, fewer tokens than one window of ``window`` tokens, a token id
    the manifest records as >= ``vocab_size``, and a tokenizer whose tokenizer.json hash
    differs from the manifest's. (Ids of stores without a manifest are checked as windows
    are read.) The manifest's token count and checksums must describe the array on disk."""
    root = Path(root)
    n = open_checked_split(root, split).length
    if n < window:
        raise StoreTooShortError(
            f"split {split!r} of token store {root} has {n} tokens, fewer than one window of "
            f"{window} (seq_len + 1)")
    manifest = read_manifest(root)
    if manifest is not None and vocab_size is not None:
        stats = manifest.splits.get(split)
        top = stats.max_token_id if stats else None
        if top is not None and top >= vocab_size:
            raise TokenIdOutOfRangeError(
                f"split {split!r} of token store {root} holds token id {top} but the model's "
                f"vocab_size is {vocab_size} (ids must be < vocab_size; tokenizer "
                f"{manifest.tokenizer.name!r} has {manifest.tokenizer.vocab_size} tokens)")
    if tokenizer_dir is not None and manifest is not None:
        given = tokenizer_sha256(tokenizer_dir)
        if given != manifest.tokenizer.sha256:
            raise TokenizerMismatchError(
                f"{Path(tokenizer_dir) / TOKENIZER_FILE} has sha256 {given}, but token store "
                f"{root} was written with tokenizer {manifest.tokenizer.name!r} of sha256 "
                f"{manifest.tokenizer.sha256} (see {root / 'manifest.json'})")
    return CheckedSplit(root=root, split=split, num_tokens=n, manifest=manifest)
