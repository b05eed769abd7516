"""Held-out loss of a model at its training context, the way it is used at test time
(`ttt_eval.nll`): the mean NLL over counted targets of a few batches, and per position."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ttt_eval.nll import InnerLoop, nll_sums_fn
from ttt_model.config import TrainConfig
from ttt_model.ttt import inner_lr_at


@dataclass(frozen=True)
class HeldoutLoss:
    loss: float
    tokens: int
    sequences: int
    per_position_nll: tuple[float, ...]


def heldout_loss(graphdef: nnx.GraphDef, params: nnx.State, tc: TrainConfig, step: int,
                 batches: list[tuple[jax.Array, jax.Array]], mesh: Mesh) -> HeldoutLoss:
    """Mean NLL over the counted targets of `batches` ([1, B, T+1] each), and per position;
    TTT (train mode meta) with the run's inner loop at outer step `step`."""
    if not batches:
        raise ValueError("held-out evaluation needs at least one batch")
    inner = InnerLoop(lr=float(inner_lr_at(step, tc.inner_lr, tc.ilr_init,
                                           tc.ilr_warmup_steps)),
                      clip=tc.inner_clip, spec=tuple(tc.spec_inner))
    fn = jax.jit(nll_sums_fn(graphdef, ttt=tc.train_mode == "meta", inner=inner),
                 out_shardings=NamedSharding(mesh, PartitionSpec()))
    total = count = 0.0
    pos_sum = pos_cnt = None
    sequences = 0
    for tokens, mask in batches:
        s, c, ps, pc = jax.device_get(fn(params, tokens[0], mask[0]))
        total, count = total + float(s), count + float(c)
        pos_sum = ps if pos_sum is None else pos_sum + ps
        pos_cnt = pc if pos_cnt is None else pos_cnt + pc
        sequences += int(tokens.shape[1])
    per_pos = np.asarray(pos_sum) / np.maximum(np.asarray(pos_cnt), 1.0)
    return HeldoutLoss(loss=total / max(count, 1.0), tokens=int(count), sequences=sequences,
                       per_position_nll=tuple(float(x) for x in per_pos))
