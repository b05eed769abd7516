"""Reading a local Hugging Face snapshot: config.json and safetensors weights, never pickle.

A snapshot is a directory holding `config.json` and either `model.safetensors` or a sharded
`model.safetensors.index.json` with its shard files. Tensors are read memory-mapped, one at
a time, so reading a checkpoint costs little more memory than the tensor being converted.

Each shard is validated by the `safetensors` library (`safe_open`); the data is then
mapped with `numpy.memmap` at the offsets of the safetensors header, because the numpy
framework of `safetensors` has no bfloat16 (we use `ml_dtypes.bfloat16`, which JAX ships).

Pickle checkpoints (`*.bin`, `*.pt`, `*.pth`, ...) are refused: unpickling runs arbitrary
code from the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors import safe_open

from ttt_import.errors import SnapshotError

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")

# safetensors dtype codes -> numpy dtypes we read (floats only: weights of a float model).
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
}
DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes lie: its file, safetensors dtype code, shape and offset."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in `file`

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, self.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPES[self.dtype].itemsize


@dataclass
class Snapshot:
    """A validated local snapshot: its config, provenance and tensor directory."""

    directory: Path
    config: dict[str, Any]
    config_sha256: str
    revision: str
    tensors: dict[str, TensorInfo]
    weight_files: list[Path] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.weight_files)

    def read(self, name: str) -> np.ndarray:
        """The tensor `name` as a read-only memory-mapped array (no copy until converted)."""
        info = self.tensors.get(name)
        if info is None:
            raise SnapshotError(f"{self.directory}: no tensor named {name!r}")
        if info.dtype not in DTYPES:
            raise SnapshotError(f"{info.file}: tensor {name!r} has dtype {info.dtype}; "
                                f"expected one of {sorted(DTYPES)} (float weights)")
        if not info.shape:
            return np.array(np.memmap(info.file, DTYPES[info.dtype], "r", info.offset, (1,))
                            ).reshape(())
        return np.memmap(info.file, dtype=DTYPES[info.dtype], mode="r", offset=info.offset,
                         shape=info.shape)


def snapshot_revision(directory: Path) -> str:
    """The commit a snapshot was downloaded at, or "local" when nothing records one.

    Hub cache layout: `.../models--org--name/snapshots/<commit>/`. A `local_dir` download
    records the commit on the first line of `.cache/huggingface/download/config.json.metadata`.
    """
    directory = Path(directory).resolve()
    if directory.parent.name == "snapshots" and _SHA_RE.match(directory.name):
        return directory.name
    meta = directory / ".cache" / "huggingface" / "download" / f"{CONFIG}.metadata"
    if meta.is_file():
        first = meta.read_text().splitlines()[:1]
        if first and _SHA_RE.match(first[0].strip()):
            return first[0].strip()
    return "local"


def read_config(directory: Path) -> tuple[dict[str, Any], str]:
    """config.json as a dict, and the sha256 of its exact bytes."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise SnapshotError(f"{directory}: no {CONFIG}; a Hugging Face snapshot directory "
                            "holds config.json beside its weights")
    raw = path.read_bytes()
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise SnapshotError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config, hashlib.sha256(raw).hexdigest()


def _read_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor entries of one safetensors file, checked against the file's size."""
    try:
        with safe_open(str(path), framework="numpy") as f:  # library validation of the file
            keys = set(f.keys())
    except Exception as e:  # noqa: BLE001 - the library raises several types
        raise SnapshotError(f"{path}: not a readable safetensors file ({e})") from None
    size = path.stat().st_size
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        info = TensorInfo(name, path, entry["dtype"], tuple(int(s) for s in entry["shape"]),
                          base + int(begin))
        if info.dtype in DTYPES and (end - begin != info.nbytes or base + end > size):
            raise SnapshotError(f"{path}: tensor {name!r} ({info.dtype}{list(info.shape)}) "
                                f"has byte range [{begin}, {end}) that does not fit its shape "
                                f"or the file ({size} bytes)")
        out[name] = info
    if set(out) != keys:
        raise SnapshotError(f"{path}: header lists {sorted(set(out) ^ keys)[:5]} "
                            "inconsistently")
    return out


def _refuse_pickle(directory: Path) -> None:
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise SnapshotError(
            f"{directory}: refusing pickle checkpoint {pickles[0]}"
            f"{f' (and {len(pickles) - 1} more)' if len(pickles) > 1 else ''}: "
            "loading a pickle runs arbitrary code stored in the file. Convert it to "
            "safetensors in a trusted environment (save_pretrained(safe_serialization=True)) "
            "and import that.")
    raise SnapshotError(f"{directory}: no weights found; expected {SINGLE} or {INDEX} "
                        "with its shards")


def open_snapshot(directory: str | Path) -> Snapshot:
    """Validate a local snapshot and index its tensors (headers only: no weights read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SnapshotError(f"snapshot directory {directory} does not exist")
    config, sha = read_config(directory)
    tensors: dict[str, TensorInfo] = {}
    files: list[Path] = []
    if (directory / INDEX).is_file():
        index_path = directory / INDEX
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise SnapshotError(f"{index_path}: expected JSON with a 'weight_map' ({e})"
                                ) from None
        by_file: dict[str, list[str]] = {}
        for name, fname in weight_map.items():
            by_file.setdefault(fname, []).append(name)
        for fname, names in sorted(by_file.items()):
            shard = directory / fname
            if not shard.is_file():
                raise SnapshotError(
                    f"{index_path}: shard {fname} is missing from {directory} "
                    f"(it holds {len(names)} tensors, e.g. {sorted(names)[0]!r})")
            header = _read_header(shard)
            absent = sorted(set(names) - set(header))
            if absent:
                raise SnapshotError(f"{index_path}: maps {absent[0]!r} to {fname}, "
                                    f"but {shard} has no such tensor")
            for name in names:
                tensors[name] = header[name]
            files.append(shard)
    elif (directory / SINGLE).is_file():
        files.append(directory / SINGLE)
        tensors = _read_header(directory / SINGLE)
    else:
        _refuse_pickle(directory)
    ignored = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    return Snapshot(directory, config, sha, snapshot_revision(directory), tensors, files,
                    ignored)
