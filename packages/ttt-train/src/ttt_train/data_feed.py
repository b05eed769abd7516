"""Training and held-out batches for a stage: ttt-data's Grain pipeline, host-sharded,
turned into global arrays on the mesh, with an iterator state that resumes exactly.

Each process reads its own shard (`shard_index = process_index`); the union of the host
batches of a step is the same set of windows whatever the process count. The saved
state holds every process's iterator position (gathered to all), so any process can
restore its own.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from ttt_data.errors import EmptySplitError, MissingSplitError, StoreTooShortError
from ttt_data.pipeline import BatchIterator, PipelineConfig
from ttt_data.tokenization import DEFAULT_VAL_FRACTION
from ttt_model.sharding import batch_sharding
from ttt_train.translate import DataSpec


class DataSetupError(ValueError):
    """The batch does not split over the processes, accumulation steps or devices."""


def pipeline_config(data: DataSpec, *, vocab_size: int, bos_id: int | None, split: str,
                    batch_size: int, process_index: int, process_count: int,
                    shuffle: bool = True, num_epochs: int | None = None) -> PipelineConfig:
    return PipelineConfig(
        store=data.store, seq_len=data.seq_len, global_batch_size=batch_size, split=split,
        seed=data.seed, shuffle=shuffle, num_epochs=num_epochs, shard_index=process_index,
        shard_count=process_count, document_aligned=data.document_aligned,
        vocab_size=vocab_size, bos_id=bos_id, tokenizer_dir=data.tokenizer_dir,
        read_threads=data.read_threads)


def _global(x_local: np.ndarray, mesh: Mesh, global_shape: tuple[int, ...]) -> jax.Array:
    return jax.make_array_from_process_local_data(batch_sharding(mesh), x_local, global_shape)


def to_global_batch(batch: dict[str, np.ndarray], accum: int, mesh: Mesh,
                    process_count: int) -> tuple[jax.Array, jax.Array]:
    """Host batch [Bh, T+1] -> global tokens [A, B, T+1] and loss mask [A, B, T]."""
    tokens, mask = batch["tokens"], batch["loss_mask"]
    bh, t1 = tokens.shape
    per = bh // accum
    tokens = tokens.reshape(accum, per, t1)
    mask = mask.reshape(accum, per, t1 - 1)
    b = per * process_count
    return (_global(tokens, mesh, (accum, b, t1)), _global(mask, mesh, (accum, b, t1 - 1)))


def check_batch_layout(data: DataSpec, mesh: Mesh, process_count: int) -> None:
    """Fail before any work when the batch cannot be laid out on the processes/devices."""
    B, A = data.global_batch_size, data.accum_steps
    if B % (A * process_count):
        raise DataSetupError(f"training.global_batch_size={B} must split into accum_steps={A} "
                             f"micro-batches on each of {process_count} process(es)")
    n = mesh.devices.size
    if (B // A) % n:
        raise DataSetupError(f"micro-batch of {B // A} windows (global_batch_size / "
                             f"accum_steps) does not split over the {n} devices of mesh "
                             f"{dict(mesh.shape)}")


class TrainFeed:
    """Global training batches; `state()` / `restore(state)` move through the stream."""

    def __init__(self, data: DataSpec, *, vocab_size: int, bos_id: int | None, mesh: Mesh,
                 process_index: int, process_count: int) -> None:
        check_batch_layout(data, mesh, process_count)
        self.data, self.mesh = data, mesh
        self.process_index, self.process_count = process_index, process_count
        self.cfg = pipeline_config(data, vocab_size=vocab_size, bos_id=bos_id,
                                   split=data.split, batch_size=data.global_batch_size,
                                   process_index=process_index, process_count=process_count)
        self.iterator = BatchIterator(self.cfg)

    @property
    def batches_per_epoch(self) -> int:
        return self.iterator.batches_per_epoch

    def next(self) -> tuple[jax.Array, jax.Array]:
        return to_global_batch(next(self.iterator), self.data.accum_steps, self.mesh,
                               self.process_count)

    def state(self) -> list[dict[str, Any]]:
        """Every process's iterator position (JSON), gathered to all processes."""
        mine = self.iterator.get_state()
        if self.process_count == 1:
            return [mine]
        return [json.loads(s) for s in _allgather_text(json.dumps(mine, sort_keys=True))]

    def restore(self, states: list[dict[str, Any]]) -> None:
        if len(states) != self.process_count:
            raise DataSetupError(f"the checkpoint holds data iterator states of "
                                 f"{len(states)} process(es); this run has "
                                 f"{self.process_count}: resume with the same process count")
        self.iterator.set_state(states[self.process_index])


def _allgather_text(text: str) -> list[str]:
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    lengths = multihost_utils.process_allgather(np.array([raw.size], np.int32))
    width = int(np.max(lengths))
    padded = np.zeros(width, np.uint8)
    padded[:raw.size] = raw
    rows = multihost_utils.process_allgather(padded)
    return [bytes(rows[i, :int(lengths[i, 0])]).decode()
            for i in range(rows.shape[0])]


def heldout_batches(data: DataSpec, *, vocab_size: int, bos_id: int | None, mesh: Mesh,
                    process_index: int, process_count: int
                    ) -> list[tuple[jax.Array, jax.Array]]:
    """The first `eval_batches` batches of the eval split, in store order (no shuffle).
    A store without enough of that split is refused saying how to make one."""
    cfg = pipeline_config(data, vocab_size=vocab_size, bos_id=bos_id, split=data.eval_split,
                          batch_size=data.eval_batch_size, process_index=process_index,
                          process_count=process_count, shuffle=False, num_epochs=1)
    try:
        it = BatchIterator(cfg)
    except (MissingSplitError, EmptySplitError, StoreTooShortError) as e:
        tokenizer = data.tokenizer_dir or "TOKENIZER_DIR"
        also = "" if data.eval_split == "val" else " and set training.eval_split=val"
        raise type(e)(
            f"{e}; the held-out evaluation (training.eval_split={data.eval_split!r}, "
            f"training.eval_batches={data.eval_batches}) needs it: re-tokenize with a val "
            f"split, `ttt data tokenize --tokenizer {tokenizer} --input CORPUS... --out "
            f"NEW_STORE --val-fraction {DEFAULT_VAL_FRACTION}` (a larger fraction for more "
            f"held-out windows){also}, or set training.eval_batches=0") from None
    out = []
    for _ in range(min(data.eval_batches, it.batches_per_epoch)):
        out.append(to_global_batch(next(it), 1, mesh, process_count))
    return out
