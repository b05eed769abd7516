"""Held-out loss of a model at its training context, the way it is used at test time.

TTT-E2E models are evaluated through prefill (`TTTRunner`, the inner loop over the
sequence, memory independent of its length); FA and SWA models through the one-shot
forward pass. Both give the NLL of every target; masked targets (BOS) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ttt_model.config import TrainConfig
from ttt_model.inference import TTTRunner
from ttt_model.losses import pretrain_loss, target_mask
from ttt_model.ttt import inner_lr_at


@dataclass(frozen=True)
class HeldoutLoss:
    loss: float
    tokens: int
    sequences: int
    per_position_nll: tuple[float, ...]


def _nll_fn(graphdef: nnx.GraphDef, tc: TrainConfig, inner_lr: float):
    def nll(params, tokens_BxT1, mask_BxT):
        model = nnx.merge(graphdef, params)
        if tc.train_mode == "meta":
            runner = TTTRunner(model, ttt=True, inner_lr=inner_lr, inner_clip=tc.inner_clip,
                               spec=tc.spec_inner)
            _, nll_BxT = runner.prefill(tokens_BxT1)
        else:
            _, aux = pretrain_loss(model, tokens_BxT1, mask_BxT)
            nll_BxT = aux["token_nll"]
        m = target_mask(tokens_BxT1[:, 1:], model.cfg.bos_token_id, mask_BxT)
        return jnp.sum(nll_BxT * m), jnp.sum(m), jnp.sum(nll_BxT * m, 0), jnp.sum(m, 0)
    return nll


def heldout_loss(graphdef: nnx.GraphDef, params: nnx.State, tc: TrainConfig, step: int,
                 batches: list[tuple[jax.Array, jax.Array]], mesh: Mesh) -> HeldoutLoss:
    """Mean NLL over the counted targets of `batches` ([1, B, T+1] each), and per position."""
    if not batches:
        raise ValueError("held-out evaluation needs at least one batch")
    inner_lr = float(inner_lr_at(step, tc.inner_lr, tc.ilr_init, tc.ilr_warmup_steps))
    replicated = NamedSharding(mesh, PartitionSpec())
    fn = jax.jit(_nll_fn(graphdef, tc, inner_lr), out_shardings=replicated)
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
