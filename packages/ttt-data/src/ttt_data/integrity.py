"""Chunk checksums, checked as values are read: each chunk file of a flat array is
compared with the crc32 its manifest recorded the first time a reader touches it, so a
flipped bit, a truncated file or a swapped chunk fails naming its value range instead of
training on wrong tokens (tensorstore decodes most flipped bits without complaint)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import numpy as np

from ttt_data.errors import StoreCorruptError
from ttt_data.manifest import ChunkChecksums
from ttt_data.token_array import FlatArray

_LOG = logging.getLogger(__name__)
_WARNED: set[str] = set()


def warn_unverified(store: str, reason: str) -> None:
    """Say once per store and process (one log line) that its chunks cannot be verified,
    and why: a store without a manifest, or with a version 1 manifest, still reads."""
    if store in _WARNED:
        return
    _WARNED.add(store)
    _LOG.warning(f"token store {store}: {reason}, so its chunks cannot be checksum-verified "
                 "(missing chunks are still refused)")


def check_checksums_fit(array: FlatArray, checksums: ChunkChecksums, where: str) -> None:
    """Checksums recorded for another chunking or length mean the array was rewritten."""
    if checksums.chunk != array.chunk or len(checksums.crc32) != array.num_chunks:
        raise StoreCorruptError(
            f"{array.label} has {array.num_chunks} chunks of {array.chunk} {array.unit} on "
            f"disk, but {where} records checksums of {len(checksums.crc32)} chunks of "
            f"{checksums.chunk}: the array changed after it was written")


def verify_chunk(array: FlatArray, c: int, expected: int) -> None:
    """Raise naming chunk ``c``'s range when its file's crc32 is not ``expected``."""
    got = array.chunk_crc32(c)
    if got != expected:
        raise StoreCorruptError(f"{array.describe_chunk(c)} fails its checksum (expected "
                                f"crc32 {expected:08x}, got {got:08x})")


class CheckedReader:
    """Reads value ranges of a flat array, verifying every chunk a range touches the first
    time it is touched (a range spanning two chunks verifies both). Verified chunk ids are
    kept per reader; readers are opened in the process that reads, so per process.
    ``checksums=None`` reads unverified (missing chunks are still refused)."""

    def __init__(self, array: FlatArray, checksums: ChunkChecksums | None) -> None:
        self.array = array
        self.checksums = checksums
        self._verified: set[int] = set()

    @property
    def length(self) -> int:
        return self.array.length

    def read(self, lo: int, hi: int) -> np.ndarray:
        if self.checksums is not None and hi > lo:
            for c in range(lo // self.array.chunk, (hi - 1) // self.array.chunk + 1):
                if c not in self._verified:
                    verify_chunk(self.array, c, self.checksums.crc32[c])
                    self._verified.add(c)
        return self.array.read(lo, hi)


def scan_array(array: FlatArray, checksums: ChunkChecksums | None, *,
               sha: hashlib._Hash | None = None,
               on_chunk: Callable[[], None] | None = None) -> list[str]:
    """Check and decode every chunk once; return the problem of each bad one (missing,
    checksum mismatch, undecodable), in order. Values of good chunks feed ``sha``."""
    faults = []
    for c in range(array.num_chunks):
        try:
            if checksums is not None:
                verify_chunk(array, c, checksums.crc32[c])
            values = array.read(*array.chunk_bounds(c))
            if sha is not None:
                sha.update(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")))
        except StoreCorruptError as e:
            faults.append(str(e))
        if on_chunk is not None:
            on_chunk()
    return faults
