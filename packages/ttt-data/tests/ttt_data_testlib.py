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
