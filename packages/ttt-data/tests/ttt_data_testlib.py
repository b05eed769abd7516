"""Helpers shared by ttt-data's tests (a unique module name, so test folders of several
packages can be collected together)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorstore as ts

# Hand-written documents of different lengths and scripts (multi-byte UTF-8 on purpose).
DOCS = [
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Zarr stores hold flat token arrays; windows are read on demand.",
    "Ein kleiner Text mit Umlauten: äöü ß, und noch etwas mehr Text dazu. " * 5,
    "Long documents matter for long context: " + "fact " * 80 + "and the end.",
    "短い文書。これはテストです。" * 4,
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols !@#$%^&*() mixed in. " * 3,
    "Another short one.",
    "Test-time training learns from the context it reads. " * 9,
]


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": i, field: t}) + "\n")
    return path


def write_bare_array(path: Path, values: np.ndarray, chunk: int = 1000) -> None:
    """A flat uint32 zarr v3 array written with a bare tensorstore spec (not ttt_data's
    writer), blosc zstd like the authors' stores."""
    spec = {
        "driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": [int(values.size)], "data_type": "uint32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [chunk]}},
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                       {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3,
                                                           "shuffle": "shuffle", "typesize": 4}}],
        },
    }
    arr = ts.open(spec, create=True).result()
    arr.write(np.asarray(values, dtype=np.uint32)).result()


def read_bare(array_path: Path, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Values of a flat zarr v3 array read with a bare tensorstore spec (tensorstore's
    defaults, so a missing chunk reads as the fill value), not through ttt_data."""
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(array_path)}}
    arr = ts.open(spec, read=True).result()
    return arr[lo:arr.shape[0] if hi is None else hi].read().result()


def flip_bit_silently(array_path: Path, chunk: int, lo: int, hi: int) -> np.ndarray:
    """Flip one bit of chunk file ``c/<chunk>`` (values [lo, hi)) such that tensorstore
    still decodes it, to different values: the damage only a checksum can see. Returns
    the values tensorstore now reads."""
    path = array_path / "c" / str(chunk)
    raw = path.read_bytes()
    before = read_bare(array_path, lo, hi)
    for i in range(len(raw) - 1, 0, -1):  # the payload is at the end, the header first
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            after = read_bare(array_path, lo, hi)
        except ValueError:
            continue
        if not np.array_equal(after, before):
            return after
    raise AssertionError(f"no single-bit flip of {path} decodes to different values")
