"""Flat 1-D zarr v3 arrays written and read with tensorstore, in the authors' layout:
uint32 tokens, ``bytes`` (little endian) then ``blosc`` zstd (clevel 3, byte shuffle),
regular chunks, default ``/`` chunk keys. zarr-python opens them as it opens the
published DCLM/Books stores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from ttt_data.errors import StoreError

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


def open_flat_array(path: str | Path, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> ts.TensorStore:
    """Open an existing 1-D zarr v3 array read-only (tokens of one split, or an index).

    ``cache_bytes`` bounds tensorstore's decoded-chunk cache, so neighbouring windows
    share one decompression.
    """
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        raise StoreError(f"{path}: not a zarr v3 array (no zarr.json)")
    node = json.loads(meta.read_text())
    if node.get("node_type") != "array" or len(node.get("shape", [])) != 1:
        raise StoreError(f"{meta}: expected a 1-D zarr v3 array, found node_type="
                         f"{node.get('node_type')!r} shape={node.get('shape')}")
    spec = {"driver": "zarr3", "kvstore": _kvstore(path),
            "recheck_cached_data": "open", "recheck_cached_metadata": "open"}
    context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
    try:
        return ts.open(spec, read=True, context=context).result()
    except ValueError as e:
        raise StoreError(f"{path}: tensorstore cannot open the array ({e})") from None


class FlatArrayWriter:
    """Append-only writer of a 1-D zarr v3 array that never holds more than a few chunks.

    Values are buffered until ``_FLUSH_CHUNKS`` whole chunks are ready, then the array is
    grown and the piece written; chunks are written once each, so the bytes on disk depend
    only on the values appended. Optionally keeps a sha256 of the little-endian values and
    their maximum (token fingerprint and vocabulary check).
    """

    def __init__(self, path: str | Path, dtype: str, chunk: int, *, digest: bool = False) -> None:
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.chunk = int(chunk)
        self._piece = self.chunk * _FLUSH_CHUNKS
        spec = {"driver": "zarr3", "kvstore": _kvstore(self.path),
                "metadata": zarr3_metadata(dtype, chunk)}
        self._store = ts.open(spec, create=True, open=False).result()
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._written = 0
        self._sha = hashlib.sha256() if digest else None
        self.max_value: int | None = None

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
        self._written = stop
        self._buffer = [rest] if rest.size else []
        self._buffered = int(rest.size)

    def close(self) -> int:
        """Write what is buffered; returns the array's final length."""
        self._flush(final=True)
        return self._written

    def sha256(self) -> str:
        if self._sha is None:
            raise ValueError("writer was created without digest=True")
        return self._sha.hexdigest()
