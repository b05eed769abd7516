"""Whole-store verification (`ttt data verify`): every chunk of every split is read once
and compared with the manifest (a checksum per chunk file, sha256 and token count per
split, the document index too), so damage is found and named before a run trains on it.
Nothing in the store is written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ttt_data.errors import MissingSplitError, StoreCorruptError, StoreError
from ttt_data.integrity import check_checksums_fit, scan_array
from ttt_data.manifest import MANIFEST_FILE, ChunkChecksums, Manifest, SplitStats, read_manifest
from ttt_data.store import DOCUMENTS_GROUP, documents_path, list_splits, split_label, split_path
from ttt_data.token_array import FlatArray, open_flat_array


@dataclass(frozen=True)
class SplitVerdict:
    """What was checked in one split and every problem found (none: intact)."""

    split: str
    tokens: int
    chunks: int
    checked: str
    faults: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.faults


@dataclass
class _SplitArrays:
    split: str
    tokens: FlatArray | None
    documents: FlatArray | None
    faults: list[str]


def _open_arrays(root: Path, split: str, present: list[str]) -> _SplitArrays:
    found = _SplitArrays(split, None, None, [])
    if split not in present:
        found.faults.append(f"{split_label(root, split)} is recorded in {MANIFEST_FILE} but "
                            "missing on disk")
        return found
    try:
        found.tokens = open_flat_array(split_path(root, split), label=split_label(root, split),
                                       unit="tokens")
        if (documents_path(root, split) / "zarr.json").is_file():
            found.documents = open_flat_array(
                documents_path(root, split), unit="entries",
                label=f"token store {root} document index {DOCUMENTS_GROUP}/{split}")
    except StoreError as e:
        found.faults.append(str(e))
    return found


def _fitting(array: FlatArray, checksums: ChunkChecksums | None, where: Path,
             faults: list[str]) -> ChunkChecksums | None:
    if checksums is None:
        return None
    try:
        check_checksums_fit(array, checksums, str(where))
    except StoreCorruptError as e:
        faults.append(str(e))
        return None
    return checksums


def _verify_split(root: Path, found: _SplitArrays, stats: SplitStats | None,
                  manifest: Manifest | None, bar: tqdm) -> SplitVerdict:
    faults = found.faults
    tokens = found.tokens
    if tokens is None:
        return SplitVerdict(found.split, 0, 0, "nothing readable", tuple(faults))
    where = root / MANIFEST_FILE
    if stats is not None and tokens.length != stats.tokens:
        faults.append(f"{tokens.label} holds {tokens.length} tokens but {where} records "
                      f"{stats.tokens}")
    checksums = _fitting(tokens, stats.token_checksums if stats else None, where, faults)
    sha = hashlib.sha256() if stats is not None else None
    faults += scan_array(tokens, checksums, sha=sha, on_chunk=bar.update)
    if stats is not None and not faults and sha.hexdigest() != stats.sha256:
        faults.append(f"{tokens.label}: the sha256 of its tokens is {sha.hexdigest()}, "
                      f"{where} records {stats.sha256}")
    if found.documents is not None:
        index = found.documents
        if stats is not None and index.length != stats.documents:
            faults.append(f"{index.label} holds {index.length} entries but {where} records "
                          f"{stats.documents} documents")
        doc_sums = _fitting(index, stats.document_checksums if stats else None, where, faults)
        faults += scan_array(index, doc_sums, on_chunk=bar.update)
    if manifest is None:
        checked = (f"no {MANIFEST_FILE}: every chunk is present and decodable; no checksums "
                   "to compare with")
    elif stats is None:
        checked = f"{where} records no such split: every chunk is present and decodable"
    elif stats.token_checksums is None:
        checked = (f"manifest format version {manifest.format_version} has no chunk "
                   "checksums: every chunk is present and decodable and the split's sha256 "
                   "matches")
    else:
        checked = (f"every chunk matches its {stats.token_checksums.algorithm} and the "
                   "split's sha256 matches")
    return SplitVerdict(found.split, tokens.length, tokens.num_chunks, checked, tuple(faults))


def verify_store(root: str | Path, split: str | None = None, *,
                 progress: bool = True) -> list[SplitVerdict]:
    """Check every chunk of every split (or of ``split``) against the manifest: present,
    decodable, chunk checksums and sha256 as recorded. Read only; a progress bar appears
    on stderr for stores that take more than a second."""
    root = Path(root)
    present = list_splits(root)
    manifest = read_manifest(root)
    if split is not None:
        if split not in present:
            raise MissingSplitError(f"token store {root} has no split {split!r} "
                                    f"(splits: {present})")
        names = [split]
    else:
        names = sorted(set(present) | set(manifest.splits if manifest else ()))
    arrays = [_open_arrays(root, name, present) for name in names]
    total = sum(a.num_chunks for f in arrays for a in (f.tokens, f.documents) if a is not None)
    with tqdm(total=total, desc="verify", unit="chunk", disable=not progress, delay=1.0,
              dynamic_ncols=True) as bar:
        return [_verify_split(root, found, manifest.splits.get(found.split) if manifest else None,
                              manifest, bar) for found in arrays]


def format_verdict(verdict: SplitVerdict) -> str:
    """One line per split: OK and what was checked, or CORRUPT and every bad range."""
    head = f"split {verdict.split}: {verdict.tokens} tokens in {verdict.chunks} chunks"
    if verdict.intact:
        return f"{head}: OK ({verdict.checked})"
    return f"{head}: CORRUPT ({len(verdict.faults)} problem(s)): " + "; ".join(verdict.faults)


def format_store_verdict(root: str | Path, verdicts: list[SplitVerdict]) -> str:
    """The closing line of a verification: the store intact with how many splits were
    checked, or CORRUPT naming the splits that are not."""
    bad = [v.split for v in verdicts if not v.intact]
    if bad:
        return f"token store {root}: CORRUPT in split(s) {', '.join(bad)}"
    return f"token store {root}: intact ({len(verdicts)} split(s))"
