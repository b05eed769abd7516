"""Grain input pipeline over a token store: windows -> seeded shuffle -> per-host shard ->
batches with loss masks -> epochs, read ahead by threads, with a JSON iterator state that
resumes exactly.

Every host builds the same shuffled order (same seed) and keeps windows
``shard_index::shard_count`` of it, so hosts see disjoint windows that together cover the
epoch (trimmed to a multiple of ``shard_count``). Each epoch is reshuffled (Grain reseeds
per epoch) and never mixes into another epoch's batches.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grain
import numpy as np

from ttt_data.errors import EmptySplitError, PipelineStateError, StoreError
from ttt_data.store import (
    CheckedSplit,
    check_split,
    open_checked_split,
    read_document_starts,
    scan_document_starts,
)
from ttt_data.token_array import DEFAULT_CACHE_BYTES
from ttt_data.windows import TokenWindows, document_window_starts

STATE_VERSION = 1
Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class PipelineConfig:
    """What determines the batches (store, split, shapes, order, sharding) and how fast
    they are read (threads, prefetch, cache; these may change across a resume).

    ``global_batch_size`` is split evenly over ``shard_count`` hosts. ``bos_id`` is the
    token whose positions as a target are masked; None takes it from the store manifest
    (when the store frames documents with BOS), else nothing is masked.
    ``num_epochs=None`` repeats forever. ``verify_checksums=False`` skips checking chunks
    against the manifest's checksums (for measuring its cost; missing chunks are still
    refused).
    """

    store: str
    seq_len: int
    global_batch_size: int
    split: str = "train"
    seed: int = 0
    shuffle: bool = True
    num_epochs: int | None = None
    shard_index: int = 0
    shard_count: int = 1
    document_aligned: bool = False
    min_document_tokens: int = 1
    vocab_size: int | None = None
    bos_id: int | None = None
    tokenizer_dir: str | None = None
    read_threads: int = 4
    prefetch_batches: int = 8
    cache_bytes: int = DEFAULT_CACHE_BYTES
    verify_checksums: bool = True

    def __post_init__(self) -> None:
        # Accept Path for convenience; keep str so the config stays JSON-serialisable.
        object.__setattr__(self, "store", str(self.store))
        if self.tokenizer_dir is not None:
            object.__setattr__(self, "tokenizer_dir", str(self.tokenizer_dir))

    @property
    def host_batch_size(self) -> int:
        return self.global_batch_size // self.shard_count

    def order_identity(self) -> dict[str, Any]:
        """The fields a saved state must agree with to resume into this pipeline."""
        keep = ("seq_len", "global_batch_size", "split", "seed", "shuffle", "num_epochs",
                "shard_index", "shard_count", "document_aligned", "min_document_tokens")
        return {k: getattr(self, k) for k in keep}


def _validate(cfg: PipelineConfig) -> None:
    if cfg.seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {cfg.seq_len}")
    if cfg.shard_count <= 0 or not 0 <= cfg.shard_index < cfg.shard_count:
        raise ValueError(f"shard_index {cfg.shard_index} not in [0, shard_count={cfg.shard_count})")
    if cfg.global_batch_size <= 0 or cfg.global_batch_size % cfg.shard_count:
        raise ValueError(f"global_batch_size {cfg.global_batch_size} must be a positive multiple "
                         f"of shard_count {cfg.shard_count}")
    if cfg.num_epochs is not None and cfg.num_epochs <= 0:
        raise ValueError(f"num_epochs must be positive or None, got {cfg.num_epochs}")


def make_batch(windows: Sequence[np.ndarray], bos_id: int | None) -> Batch:
    """Stack windows into ``tokens`` int32[B, seq_len + 1] and ``loss_mask`` bool[B, seq_len]
    (False where the target, tokens[:, 1:], is BOS: a document start is not predictable)."""
    tokens = np.stack(windows).astype(np.int32, copy=False)
    targets = tokens[:, 1:]
    mask = np.ones(targets.shape, dtype=bool) if bos_id is None else targets != bos_id
    return {"tokens": tokens, "loss_mask": mask}


def _resolve_bos(cfg: PipelineConfig, checked: CheckedSplit) -> int | None:
    if cfg.bos_id is not None:
        return cfg.bos_id
    info = checked.manifest.tokenizer if checked.manifest else None
    return info.bos_id if info is not None and info.add_bos else None


def _window_source(cfg: PipelineConfig, checked: CheckedSplit, bos_id: int | None) -> TokenWindows:
    starts = None
    if cfg.document_aligned:
        doc_starts = read_document_starts(cfg.store, cfg.split)
        if doc_starts is None:
            if bos_id is None:
                raise StoreError(
                    f"token store {cfg.store} has no document index ({cfg.store}/documents/"
                    f"{cfg.split}) and no bos_id is known to find document starts; pass bos_id")
            tokens = open_checked_split(cfg.store, cfg.split, cache_bytes=cfg.cache_bytes,
                                        verify=cfg.verify_checksums)
            doc_starts = scan_document_starts(tokens, bos_id)
        starts = document_window_starts(doc_starts, checked.num_tokens, cfg.seq_len,
                                        cfg.min_document_tokens)
    return TokenWindows(cfg.store, cfg.split, cfg.seq_len, starts=starts,
                        num_tokens=checked.num_tokens, vocab_size=cfg.vocab_size,
                        cache_bytes=cfg.cache_bytes, verify=cfg.verify_checksums)


def build_dataset(cfg: PipelineConfig) -> tuple[grain.MapDataset, TokenWindows]:
    """The pipeline as a Grain MapDataset of batches (indexable, finite unless repeating
    forever), after the load-time checks of :func:`ttt_data.store.check_split`."""
    _validate(cfg)
    checked = check_split(cfg.store, cfg.split, window=cfg.seq_len + 1,
                          vocab_size=cfg.vocab_size, tokenizer_dir=cfg.tokenizer_dir)
    bos_id = _resolve_bos(cfg, checked)
    source = _window_source(cfg, checked, bos_id)
    per_host = len(source) // cfg.shard_count
    if per_host < cfg.host_batch_size:
        raise EmptySplitError(
            f"split {cfg.split!r} of token store {cfg.store} has {len(source)} windows of "
            f"{cfg.seq_len + 1} tokens: {per_host} per host for {cfg.shard_count} host(s), fewer "
            f"than one batch of {cfg.host_batch_size}")
    ds = grain.MapDataset.source(source)
    if cfg.shuffle:
        ds = ds.shuffle(seed=cfg.seed)
    ds = ds[: per_host * cfg.shard_count][cfg.shard_index :: cfg.shard_count]
    ds = ds.batch(cfg.host_batch_size, drop_remainder=True,
                  batch_fn=functools.partial(make_batch, bos_id=bos_id))
    ds = ds.repeat(cfg.num_epochs)
    return ds, source


class BatchIterator(Iterator[Batch]):
    """Iterator of host batches whose position can be saved as JSON and restored.

    ``get_state()`` after k batches, restored into a pipeline of the same configuration
    (in any process), continues with batch k + 1 exactly.
    """

    def __init__(self, cfg: PipelineConfig, state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.dataset, self.source = build_dataset(cfg)
        read = grain.ReadOptions(num_threads=cfg.read_threads,
                                 prefetch_buffer_size=cfg.prefetch_batches)
        self._it = iter(self.dataset.to_iter_dataset(read))
        if state is not None:
            self.set_state(state)

    @property
    def batches_per_epoch(self) -> int:
        """Host batches in one epoch."""
        return (len(self.source) // self.cfg.shard_count) // self.cfg.host_batch_size

    def __next__(self) -> Batch:
        return next(self._it)

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable position: the pipeline identity plus Grain's iterator state."""
        return {"version": STATE_VERSION, "store": str(Path(self.cfg.store).resolve()),
                "num_windows": len(self.source), "pipeline": self.cfg.order_identity(),
                "grain": self._it.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Move to a saved position; refuses a state saved by a different pipeline."""
        if state.get("version") != STATE_VERSION:
            raise PipelineStateError(f"iterator state version {state.get('version')!r}, "
                                     f"expected {STATE_VERSION}")
        mine = self.cfg.order_identity()
        theirs = state.get("pipeline", {})
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            raise PipelineStateError("iterator state belongs to another pipeline; differing "
                                     f"(saved, current): {diff}")
        if state.get("num_windows") != len(self.source):
            raise PipelineStateError(
                f"iterator state was saved over {state.get('num_windows')} windows, the store "
                f"{self.cfg.store} now yields {len(self.source)}: the data changed")
        self._it.set_state(state["grain"])


def batches(cfg: PipelineConfig, state: dict[str, Any] | None = None) -> BatchIterator:
    """Host batches of ``cfg``, from the start or from a saved ``state``."""
    return BatchIterator(cfg, state)


def replace(cfg: PipelineConfig, **changes: Any) -> PipelineConfig:
    """A copy of ``cfg`` with fields changed (e.g. another shard index)."""
    return dataclasses.replace(cfg, **changes)
