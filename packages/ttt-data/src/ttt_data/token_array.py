"""Flat 1-D zarr v3 arrays written and read with tensorstore, in the authors' layout:
uint32 tokens, ``bytes`` (little endian) then ``blosc`` zstd (clevel 3, byte shuffle),
regular chunks, default ``/`` chunk keys. zarr-python opens them as it opens the
published DCLM/Books stores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from ttt_data.errors import StoreCorruptError, StoreError
from ttt_data.integrity import CHUNK_CHECKSUM, file_checksum
from ttt_data.manifest import ChunkChecksums

TOKEN_DTYPE = "uint32"
DEFAULT_CHUNK_TOKENS = 1 << 17  # 512 KiB raw: an 8K window touches at most 2 chunks
DEFAULT_CACHE_BYTES = 64 << 20
_FLUSH_CHUNKS = 16  # writes go out in whole-chunk pieces of this many chunks


def zarr3_metadata(dtype: str, chunk: int) -> dict[str, Any]:
    """zarr v3 array metadata for a growing flat array of ``dtype`` (shape starts at 0)."""
    return {
        "shape": [0],
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [chunk]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {
                "cname": "zstd", "clevel": 3, "shuffle": "shuffle",
                "typesize": np.dtype(dtype).itemsize, "blocksize": 0}},
        ],
    }


def _kvstore(path: Path) -> dict[str, Any]:
    return {"driver": "file", "path": str(Path(path).resolve())}


def _chunk_key(metadata: dict[str, Any]) -> Callable[[int], str]:
    """The file name, relative to the array folder, of chunk c under the array's
    chunk key encoding (zarr v3 ``default``: ``c/<c>``; ``v2``: ``<c>``)."""
    encoding = metadata.get("chunk_key_encoding") or {"name": "default"}
    name = encoding.get("name", "default")
    separator = (encoding.get("configuration") or {}).get(
        "separator", "/" if name == "default" else ".")
    if name == "v2":
        return str
    return lambda c: f"c{separator}{c}"


class FlatArray:
    """A read-only 1-D zarr v3 array whose reads refuse missing or undecodable chunks.

    tensorstore returns the fill value for a missing chunk (BOS/zero tokens that train
    silently); arrays here are opened with ``fill_missing_data_reads`` off, and a failed
    read is turned into a :class:`StoreCorruptError` naming the chunk, its value range and
    its file. ``label`` and ``unit`` say what the values are in messages
    ("token store S split train", "tokens").
    """

    def __init__(self, path: Path, store: ts.TensorStore, metadata: dict[str, Any],
                 label: str, unit: str) -> None:
        self.path = path
        self.label = label
        self.unit = unit
        self.length = int(store.shape[0])
        self.chunk = int(metadata["chunk_grid"]["configuration"]["chunk_shape"][0])
        self._chunk_key = _chunk_key(metadata)
        self._dir = str(path)
        self._store = store

    @property
    def num_chunks(self) -> int:
        return -(-self.length // self.chunk)

    def chunk_bounds(self, c: int) -> tuple[int, int]:
        """The value range [lo, hi) chunk ``c`` holds (the last chunk may be short)."""
        return c * self.chunk, min(self.length, (c + 1) * self.chunk)

    def chunk_file(self, c: int) -> Path:
        return self.path / self._chunk_key(c)

    def chunk_path(self, c: int) -> str:
        """:meth:`chunk_file` as a string, cheaper to build (once per chunk verification)."""
        return f"{self._dir}/{self._chunk_key(c)}"

    def describe_chunk(self, c: int) -> str:
        """``<label> <unit> [lo, hi) (chunk c/k, file F)``: where a problem is, for messages."""
        lo, hi = self.chunk_bounds(c)
        return (f"{self.label} {self.unit} [{lo}, {hi}) (chunk {c}/{self.num_chunks}, "
                f"file {self.chunk_file(c)})")

    def read(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Values [lo, hi) (default: all); a missing or undecodable chunk is an error."""
        hi = self.length if hi is None else hi
        try:
            return self._store[lo:hi].read().result()
        except ValueError as e:
            raise self._locate_fault(lo, hi, e) from None

    def _locate_fault(self, lo: int, hi: int, error: ValueError) -> StoreCorruptError:
        # Name the first bad chunk of the range: missing file, else the one that fails alone.
        chunks = range(lo // self.chunk, -(-hi // self.chunk))
        for c in chunks:
            if not self.chunk_file(c).is_file():
                return StoreCorruptError(f"{self.describe_chunk(c)} is missing on disk")
        for c in chunks:
            try:
                self._store[slice(*self.chunk_bounds(c))].read().result()
            except ValueError as e:
                return StoreCorruptError(f"{self.describe_chunk(c)} cannot be decoded ({e})")
        return StoreCorruptError(f"{self.label} {self.unit} [{lo}, {hi}) cannot be read ({error})")


def read_array_metadata(path: Path) -> dict[str, Any]:
    """The zarr.json of a 1-D zarr v3 array, with a clear error for anything else."""
    meta = path / "zarr.json"
    if not meta.is_file():
        raise StoreError(f"{path}: not a zarr v3 array (no zarr.json)")
    try:
        node = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{meta}: not valid JSON ({e})") from None
    if not isinstance(node, dict) or node.get("node_type") != "array" or len(
            node.get("shape", [])) != 1:
        found = node if not isinstance(node, dict) else (node.get("node_type"), node.get("shape"))
        raise StoreError(f"{meta}: expected a 1-D zarr v3 array, found (node_type, shape) "
                         f"{found}")
    return node


def open_flat_array(path: str | Path, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                    label: str | None = None, unit: str = "values") -> FlatArray:
    """Open an existing 1-D zarr v3 array read-only (tokens of one split, or an index).

    ``cache_bytes`` bounds tensorstore's decoded-chunk cache, so neighbouring windows
    share one decompression. Reads of missing chunks fail (see :class:`FlatArray`).
    """
    path = Path(path)
    node = read_array_metadata(path)
    spec = {"driver": "zarr3", "kvstore": _kvstore(path), "fill_missing_data_reads": False,
            "recheck_cached_data": "open", "recheck_cached_metadata": "open"}
    context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
    try:
        store = ts.open(spec, read=True, context=context).result()
        return FlatArray(path, store, node, label or str(path), unit)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise StoreError(f"{path}: tensorstore cannot open the array ({e})") from None


class FlatArrayWriter:
    """Append-only writer of a 1-D zarr v3 array that never holds more than a few chunks.

    Values are buffered until ``_FLUSH_CHUNKS`` whole chunks are ready, then the array is
    grown and the piece written; chunks are written once each, so the bytes on disk depend
    only on the values appended. Every chunk is stored, even one equal to the fill value,
    so a missing chunk file always means damage. Keeps the checksum of each chunk file as
    written (:meth:`checksums`, see :mod:`ttt_data.integrity`); optionally a sha256 of the
    little-endian values and their maximum (token fingerprint and vocabulary check).
    """

    def __init__(self, path: str | Path, dtype: str, chunk: int, *, digest: bool = False) -> None:
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.chunk = int(chunk)
        self._piece = self.chunk * _FLUSH_CHUNKS
        metadata = zarr3_metadata(dtype, chunk)
        spec = {"driver": "zarr3", "kvstore": _kvstore(self.path), "metadata": metadata,
                "store_data_equal_to_fill_value": True}
        self._store = ts.open(spec, create=True, open=False).result()
        self._chunk_key = _chunk_key(metadata)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0
        self._sha = hashlib.sha256() if digest else None
        self.max_value: int | None = None
        self._chunk_checksums: list[int] = []

    @property
    def length(self) -> int:
        """Values appended so far (written or buffered)."""
        return self._written + self._buffered

    def append(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D array, got shape {values.shape}")
        if values.size == 0:
            return
        values = values.astype(self.dtype, copy=False)
        if self._sha is not None:
            self._sha.update(values.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
            top = int(values.max())
            self.max_value = top if self.max_value is None else max(self.max_value, top)
        self._buffer.append(values)
        self._buffered += values.size
        if self._buffered >= self._piece:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buffered:
            return
        data = np.concatenate(self._buffer)
        n = data.size if final else (data.size // self._piece) * self._piece
        head, rest = data[:n], data[n:]
        start, stop = self._written, self._written + n
        self._store = self._store.resize(exclusive_max=[stop], expand_only=True).result()
        self._store[start:stop].write(head).result()
        # Pieces start on chunk boundaries (only the final one may end inside a chunk), and
        # each chunk file is written once: its bytes now are its bytes for good.
        self._chunk_checksums += [file_checksum(self.path / self._chunk_key(c), CHUNK_CHECKSUM)
                                  for c in range(start // self.chunk, -(-stop // self.chunk))]
        self._written = stop
        self._buffer = [rest] if rest.size else []
        self._buffered = int(rest.size)

    def close(self) -> int:
        """Write what is buffered; returns the array's final length."""
        self._flush(final=True)
        return self._written

    def checksums(self) -> ChunkChecksums:
        """The checksum of every chunk file written so far (all of them after close)."""
        return ChunkChecksums(self.chunk, tuple(self._chunk_checksums), CHUNK_CHECKSUM)

    def sha256(self) -> str:
        if self._sha is None:
            raise ValueError("writer was created without digest=True")
        return self._sha.hexdigest()
