"""The train step: one outer update from a batch, for either train mode, compiled once.

The step is a pure function of (TrainState, batch) -> (TrainState, metrics). Gradient
accumulation scans over the leading micro-batch axis of the batch inside the one compiled
program, so its cost does not depend on how the batch is split, and it weighs micro-batches
so that the accumulated loss and gradient are those of the whole batch: equally under
`loss_average="chunk"` (a mean over sequences), by counted targets under "token".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ttt_model.config import TrainConfig
from ttt_model.losses import pretrain_loss
from ttt_model.model import Transformer
from ttt_model.optim import lr_schedule, make_optimizer
from ttt_model.sharding import batch_sharding, state_shardings
from ttt_model.ttt import inner_lr_at, meta_loss


class TrainState(NamedTuple):
    params: nnx.State
    opt_state: Any
    step: jax.Array  # int32 scalar: outer steps taken so far


def init_train_state(model: Transformer, tc: TrainConfig) -> tuple[nnx.GraphDef, TrainState]:
    graphdef, params = nnx.split(model, nnx.Param)
    opt_state = make_optimizer(tc).init(params)
    return graphdef, TrainState(params, opt_state, jnp.zeros((), jnp.int32))


def loss_fn_for(tc: TrainConfig) -> Callable[..., tuple[jax.Array, dict[str, Any]]]:
    """(model, tokens_BxT1, loss_mask_BxT, step) -> (loss, aux) for the stage's train mode."""
    if tc.train_mode == "pretrain":
        def loss(model, tokens, mask, step):
            return pretrain_loss(model, tokens, mask, chunked=tc.chunked_swa,
                                 remat_every=tc.remat_every, average=tc.loss_average)
    else:
        def loss(model, tokens, mask, step):
            ilr = inner_lr_at(step, tc.inner_lr, tc.ilr_init, tc.ilr_warmup_steps)
            return meta_loss(model, tokens, mask, inner_lr=ilr, inner_clip=tc.inner_clip,
                             spec=tc.spec_inner, remat_every=tc.remat_every,
                             average=tc.loss_average)
    return loss


def make_batch_grads(graphdef: nnx.GraphDef, tc: TrainConfig):
    """grads(params, tokens_AxBxT1, loss_mask_AxBxT, step) -> (loss, grads, aux).

    The loss and gradient of the whole batch of A micro-batches, accumulated one
    micro-batch at a time inside one program. aux holds the batch's mean per-position NLL
    [T] and its number of counted targets.
    """
    loss_fn = loss_fn_for(tc)

    def micro_loss(params, tokens, mask, step):
        return loss_fn(nnx.merge(graphdef, params), tokens, mask, step)

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def batch_grads(params, tokens_AxBxT1: jax.Array, masks_AxBxT: jax.Array, step):
        A, T = tokens_AxBxT1.shape[0], tokens_AxBxT1.shape[-1] - 1

        def accumulate(carry, batch):
            g_sum, loss_sum, nll_sum, n_sum = carry
            tokens, mask = batch
            (loss, aux), g = grad_fn(params, tokens, mask, step)
            n = aux["n_tokens"]
            w = n if tc.loss_average == "token" else 1.0  # the micro-batch's weight
            g_sum = jax.tree.map(lambda a, b: a + w * b, g_sum, g)
            nll_T = jnp.mean(aux["token_nll"], axis=0)
            return (g_sum, loss_sum + w * loss, nll_sum + nll_T, n_sum + n), None

        init = (jax.tree.map(jnp.zeros_like, params), jnp.zeros(()), jnp.zeros((T,)),
                jnp.zeros(()))
        (g_sum, loss_sum, nll_sum, n_sum), _ = jax.lax.scan(
            accumulate, init, (tokens_AxBxT1, masks_AxBxT))
        total = jnp.maximum(n_sum, 1.0) if tc.loss_average == "token" else A
        grads = jax.tree.map(lambda g: g / total, g_sum)
        return loss_sum / total, grads, {"token_nll": nll_sum / A, "n_tokens": n_sum}

    return batch_grads


def make_train_step(graphdef: nnx.GraphDef, tc: TrainConfig, *, jit: bool = True,
                    mesh: Mesh | None = None, state: TrainState | None = None):
    """step(state, tokens_AxBxT1, loss_mask_AxBxT | None) -> (state, metrics).

    A = tc.grad_accum micro-batches of B windows of T+1 tokens each. With a `mesh` (and a
    `state`, concrete or abstract, to read shapes from), the step is compiled with fixed
    input and output shardings (DP over the batch, FSDP over parameters) so that it is
    traced once and never reshards between steps.
    """
    optimizer = make_optimizer(tc)
    schedule = lr_schedule(tc)
    batch_grads = make_batch_grads(graphdef, tc)

    def step_fn(state: TrainState, tokens_AxBxT1: jax.Array,
                loss_mask_AxBxT: jax.Array | None = None):
        A = tokens_AxBxT1.shape[0]
        if tc.grad_accum != A:
            raise ValueError(f"batch has {A} micro-batches, train config grad_accum is "
                             f"{tc.grad_accum}")
        masks = (jnp.ones(tokens_AxBxT1[:, :, 1:].shape, bool) if loss_mask_AxBxT is None
                 else loss_mask_AxBxT)
        loss, grads, aux = batch_grads(state.params, tokens_AxBxT1, masks, state.step)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "lr": schedule(state.step),
            "inner_lr": inner_lr_at(state.step, tc.inner_lr, tc.ilr_init, tc.ilr_warmup_steps)
            if tc.train_mode == "meta" else jnp.zeros(()),
            **aux,
        }
        return TrainState(params, opt_state, state.step + 1), metrics

    if not jit:
        return step_fn
    if mesh is None:
        return jax.jit(step_fn, donate_argnums=0)
    if state is None:
        raise ValueError("make_train_step: a mesh needs the (abstract) state to shard")
    st_sh = state_shardings(state, mesh)
    tok_sh = batch_sharding(mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(step_fn, donate_argnums=0, in_shardings=(st_sh, tok_sh, tok_sh),
                   out_shardings=(st_sh, replicated))


def place_state(state: TrainState, mesh: Mesh) -> TrainState:
    """Put a train state on the mesh with the FSDP rule of `ttt_model.sharding`."""
    return jax.device_put(state, state_shardings(state, mesh))
