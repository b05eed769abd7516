"""Chunk checksums, checked as values are read: each chunk file of a flat array is
compared with the checksum its manifest recorded the first time a reader touches it, so a
flipped bit, a truncated file or a swapped chunk fails naming its value range instead of
training on wrong tokens (tensorstore decodes most flipped bits without complaint).

The one home of the checksum function. Stores are written with CRC32C (``google_crc32c``,
hardware accelerated: ~10 us per 175 KB chunk file here, against ~40 us for zlib's crc32);
manifests of format version 2 recorded zlib's crc32 without naming it, and still verify
with it."""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import google_crc32c
import numpy as np

from ttt_data.errors import StoreCorruptError

if TYPE_CHECKING:  # integrity is imported by both (the checksum function lives here)
    from ttt_data.manifest import ChunkChecksums
    from ttt_data.token_array import FlatArray

CHUNK_CHECKSUM = "crc32c"  # what new stores record
LEGACY_CHUNK_CHECKSUM = "crc32"  # what a manifest that names no algorithm recorded (version 2)
_CHECKSUMS: dict[str, Callable[[bytes], int]] = {
    "crc32c": google_crc32c.value,
    "crc32": zlib.crc32,
}
CHUNK_CHECKSUMS: tuple[str, ...] = tuple(_CHECKSUMS)

_LOG = logging.getLogger(__name__)
_WARNED: set[str] = set()


def checksum(data: bytes, algorithm: str = CHUNK_CHECKSUM) -> int:
    """The ``algorithm`` checksum ("crc32c" or "crc32") of ``data``, as an unsigned int."""
    try:
        fn = _CHECKSUMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown chunk checksum {algorithm!r} "
                         f"(known: {', '.join(CHUNK_CHECKSUMS)})") from None
    return fn(data)


def read_file(path: str | Path) -> bytes:
    """A file's bytes, with one open, fstat and (normally) one read. Reading a chunk file
    (tensorstore reads it again to decode it) is most of what verifying it costs, more than
    the CRC32C; each of these calls releases and retakes the GIL, so there are as few as
    possible (``Path.read_bytes`` makes more)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) != size:  # a short read, or the file changed since fstat: read to EOF
            pieces = [data]
            while piece := os.read(fd, 1 << 20):
                pieces.append(piece)
            data = b"".join(pieces)
        return data
    finally:
        os.close(fd)


def file_checksum(path: str | Path, algorithm: str = CHUNK_CHECKSUM) -> int:
    """The checksum a manifest records per chunk file: over the file's bytes as stored
    (compressed, so ~3x fewer bytes to hash than the tokens)."""
    return checksum(read_file(path), algorithm)


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
    if checksums.chunk != array.chunk or len(checksums.values) != array.num_chunks:
        raise StoreCorruptError(
            f"{array.label} has {array.num_chunks} chunks of {array.chunk} {array.unit} on "
            f"disk, but {where} records checksums of {len(checksums.values)} chunks of "
            f"{checksums.chunk}: the array changed after it was written")


def verify_chunk(array: FlatArray, checksums: ChunkChecksums, c: int) -> None:
    """Raise naming chunk ``c``'s range when its file's checksum is not the recorded one
    (or the file is missing or unreadable)."""
    expected = checksums.values[c]
    try:
        got = file_checksum(array.chunk_path(c), checksums.algorithm)
    except FileNotFoundError:
        raise StoreCorruptError(f"{array.describe_chunk(c)} is missing on disk") from None
    except OSError as e:
        raise StoreCorruptError(f"{array.describe_chunk(c)} cannot be read ({e})") from None
    if got != expected:
        raise StoreCorruptError(f"{array.describe_chunk(c)} fails its checksum (expected "
                                f"{checksums.algorithm} {expected:08x}, got {got:08x})")


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
                    verify_chunk(self.array, self.checksums, c)
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
                verify_chunk(array, checksums, c)
            values = array.read(*array.chunk_bounds(c))
            if sha is not None:
                sha.update(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")))
        except StoreCorruptError as e:
            faults.append(str(e))
        if on_chunk is not None:
            on_chunk()
    return faults
