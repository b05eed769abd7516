"""TTT-E2E: the inner loop (test-time SGD on the prime MLPs) and the meta loss.

For a sequence split into chunks of b tokens, chunk t is run through the suffix blocks with
the current inner weights W(t-1) and the suffix layers' sliding caches; its next-token loss
l_t(W(t-1)) is the loss reported for those tokens, and then
    W(t) = W(t-1) - lr * clip(grad l_t(W(t-1))).
Every sequence carries its own inner weights (vmap over the batch). The outer (meta) loss is
differentiated through these updates, gradients of gradients included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.attention import KVCache, acc_dtype
from ttt_model.chunking import scan_chunks, to_chunks
from ttt_model.layers import run_block, step_blocks
from ttt_model.losses import average_nll, masked_mean, split_window, target_mask, token_nll
from ttt_model.model import Transformer
from ttt_model.params import path_str, spec_filter


class InnerSpecError(ValueError):
    """The inner-parameter spec selects nothing, or parameters the inner loop cannot train."""


def split_inner(model: Transformer, spec: Sequence[str]):
    """(graphdef, inner W0, outer rest); inner = Params matching `spec`, all in suffix blocks."""
    graphdef, inner, rest = nnx.split(model, spec_filter(spec), ...)
    paths = [path_str(p) for p, _ in nnx.to_flat_state(inner)]
    if not paths:
        raise InnerSpecError(f"spec_inner {list(spec)} selects no parameter of "
                             f"{model.cfg.name}; does the model have prime MLPs (prime=True)?")
    outside = [p for p in paths if not p.startswith("suffix_blocks.")]
    if outside:
        raise InnerSpecError(f"spec_inner {list(spec)} selects parameters outside the suffix "
                             f"blocks, which the inner loop never revisits: {outside[:4]}")
    return graphdef, inner, rest


def clip_by_global_norm(tree: Any, max_norm: float) -> Any:
    """Scale `tree` to global norm <= max_norm; differentiable at a zero gradient.

    A chunk whose targets are all masked (document padding) has a zero inner gradient;
    d sqrt(x)/dx is infinite at 0, so the norm is taken through a `where` that keeps the
    outer gradient finite (it is 0 there, as the update is).
    """
    sumsq = sum(jnp.sum(jnp.square(x.astype(acc_dtype(x.dtype))))
                for x in jax.tree.leaves(tree))
    nonzero = sumsq > 0
    norm = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sumsq, 1.0)), 0.0)
    factor = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda x: (x * factor).astype(x.dtype), tree)


def inner_lr_at(step: jax.Array | int, inner_lr: float, ilr_init: float,
                warmup_steps: int) -> jax.Array:
    """Inner lr at outer `step`: ramps linearly from ilr_init*inner_lr to inner_lr."""
    if warmup_steps <= 0:
        return jnp.asarray(inner_lr, jnp.float32)
    frac = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)
    return inner_lr * (ilr_init + (1.0 - ilr_init) * frac)


def suffix_chunk_step(graphdef, rest, W, caches: list[KVCache], h_1xbxD: jax.Array,
                      targets_b: jax.Array, mask_b: jax.Array, lr: jax.Array,
                      clip: float, stop_inner_grad: bool = False
                      ) -> tuple[Any, list[KVCache], jax.Array]:
    """One inner step of one sequence: loss of the chunk under W(t-1), then W(t).

    Returns (W(t), caches after the chunk, per-token NLL of the chunk under W(t-1)).
    `stop_inner_grad` treats the inner gradient as a constant (first-order meta-learning):
    the outer gradient then skips the second-order path through the update.
    """

    def chunk_loss(W):
        m = nnx.merge(graphdef, W, rest)
        h, new = step_blocks(m.suffix_blocks, h_1xbxD, caches,
                             remat=m.cfg.remat_block)
        nll_b = token_nll(m.logits(h)[0], targets_b)
        return masked_mean(nll_b, mask_b), (nll_b, new)

    (_, (nll_b, new_caches)), g = jax.value_and_grad(chunk_loss, has_aux=True)(W)
    g = clip_by_global_norm(g, clip)
    if stop_inner_grad:
        g = jax.lax.stop_gradient(g)
    W = jax.tree.map(lambda w, gw: (w - lr * gw).astype(w.dtype), W, g)
    return W, new_caches, nll_b


def meta_loss(model: Transformer, tokens_BxT1: jax.Array,
              loss_mask_BxT: jax.Array | None = None, *, inner_lr: jax.Array | float = 1.0,
              inner_clip: float = 1.0,
              spec: Sequence[str] = ("**.suffix_blocks.feed_forward_prime.**",),
              remat_every: int = 1, stop_inner_grad: bool = False, average: str = "chunk"
              ) -> tuple[jax.Array, dict[str, Any]]:
    """The TTT-E2E loss: by default (`average="chunk"`, the official convention) the mean
    over sequences of mean_t l_t(W(t-1)), l_t being chunk t's masked mean NLL; "token" is
    the masked mean over every counted target of the batch instead.

    Prefix blocks run once over the whole sequence (one-shot sliding attention); suffix
    blocks run chunk by chunk inside the inner loop, each suffix block's forward
    rematerialised under `cfg.remat_block` and each prefix block's under
    `cfg.remat_prefix_block` (the official code's two knobs).
    """
    cfg = model.cfg
    b = cfg.mini_batch_size
    inputs, targets = split_window(tokens_BxT1)
    B, T = inputs.shape
    if T % b:
        raise ValueError(f"meta loss: sequence length {T} is not a multiple of "
                         f"mini_batch_size {b}")
    mask = target_mask(targets, cfg.bos_token_id, loss_mask_BxT)
    graphdef, W0, rest = split_inner(model, spec)
    lr = jnp.asarray(inner_lr, jnp.float32)

    h = model.embed_tokens(inputs)
    for blk in model.prefix_blocks:
        h = run_block(blk, h, remat=cfg.remat_prefix_block)

    caches0 = model.empty_caches(1, "suffix")

    def one_sequence(h_TxD, targets_T, mask_T):
        def body(carry, x):
            W, caches = carry
            h_bxD, t_b, m_b = x
            W, caches, nll_b = suffix_chunk_step(graphdef, rest, W, caches, h_bxD[None],
                                                 t_b, m_b, lr, inner_clip, stop_inner_grad)
            return (W, caches), nll_b

        xs = (to_chunks(h_TxD[None], b)[:, 0], to_chunks(targets_T[None], b)[:, 0],
              to_chunks(mask_T[None], b)[:, 0])
        _, nll_Nxb = scan_chunks(body, (W0, caches0), xs, T // b, remat_every)
        return nll_Nxb.reshape(T)

    nll_BxT = jax.vmap(one_sequence)(h, targets, mask)
    loss = average_nll(nll_BxT, mask, average, group=b)
    return loss, {"token_nll": nll_BxT, "n_tokens": jnp.sum(mask)}
