"""Next-token losses shared by every train mode: per-token NLL, BOS masking, pretrain loss.

Losses take a window of T+1 tokens (inputs = [:T], targets = [1:]) and return
`(loss, aux)` where aux holds the per-token NLL [B, T] and the number of counted targets
(targets equal to BOS, or outside the loss mask, are not counted).

How the batch loss averages per-token NLL (`average`):
- "chunk" (the official convention): each group's masked mean NLL — a group is a chunk of
  b tokens in the meta loss, a whole sequence in the pretrain loss — then the mean over a
  sequence's groups, then the mean over sequences. A group with no counted target adds 0.
- "token": one masked mean over every counted target of the batch.
The two agree when every group counts the same number of targets; they weigh groups
differently when masks are uneven (document boundaries in packed data).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ttt_model.attention import KVCache, acc_dtype
from ttt_model.chunking import from_chunks, scan_chunks, to_chunks
from ttt_model.layers import run_block, step_blocks
from ttt_model.model import Transformer


def split_window(tokens_BxT1: jax.Array) -> tuple[jax.Array, jax.Array]:
    return tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]


def target_mask(targets_BxT: jax.Array, bos_id: int | None,
                loss_mask_BxT: jax.Array | None = None) -> jax.Array:
    """Float mask of counted targets: the given mask, minus targets equal to BOS."""
    m = jnp.ones(targets_BxT.shape, bool) if loss_mask_BxT is None else loss_mask_BxT.astype(bool)
    if bos_id is not None:
        m &= targets_BxT != bos_id
    return m.astype(jnp.float32)


def token_nll(logits_BxTxV: jax.Array, targets_BxT: jax.Array) -> jax.Array:
    logits = logits_BxTxV.astype(acc_dtype(logits_BxTxV.dtype))
    lse_BxT = jax.nn.logsumexp(logits, axis=-1)
    tgt_BxT = jnp.take_along_axis(logits, targets_BxT[..., None], axis=-1)[..., 0]
    return lse_BxT - tgt_BxT


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def average_nll(nll_BxT: jax.Array, mask_BxT: jax.Array, average: str,
                group: int | None = None) -> jax.Array:
    """The batch loss from per-token NLL and the counted-target mask (see module doc).

    `group` is the length of the averaging groups for "chunk" (None: whole sequences).
    """
    if average == "token":
        return masked_mean(nll_BxT, mask_BxT)
    if average != "chunk":
        raise ValueError(f"average must be 'chunk' or 'token', got {average!r}")
    B, T = nll_BxT.shape
    g = T if group is None else group
    if T % g:
        raise ValueError(f"sequence length {T} is not a multiple of the group length {g}")
    nll_BxNxg = (nll_BxT * mask_BxT).reshape(B, T // g, g)
    n_BxN = jnp.sum(mask_BxT.reshape(B, T // g, g), axis=-1)
    return jnp.mean(jnp.sum(nll_BxNxg, axis=-1) / jnp.maximum(n_BxN, 1.0))


def head_nll(model: Transformer, h_BxTxD: jax.Array, targets_BxT: jax.Array,
             block: int) -> jax.Array:
    """Per-token NLL from final hidden states, `block` positions at a time.

    Each block's logits are rematerialised in the backward pass, so the [T, vocab] logits
    are never all live: memory stays linear in T with a small constant. A T that is not a
    multiple of `block` is padded to one (the padded positions' NLLs are dropped).
    """
    B, T, D = h_BxTxD.shape
    if block >= T:
        return token_nll(model.logits(h_BxTxD), targets_BxT)
    n = -(-T // block)
    if n * block != T:
        pad = n * block - T
        h_BxTxD = jnp.pad(h_BxTxD, ((0, 0), (0, pad), (0, 0)))
        targets_BxT = jnp.pad(targets_BxT, ((0, 0), (0, pad)))

    @jax.checkpoint
    def one(args):
        h, t = args
        return token_nll(model.logits(h), t)

    h_NxBxbxD = jnp.moveaxis(h_BxTxD.reshape(B, n, block, D), 1, 0)
    t_NxBxb = jnp.moveaxis(targets_BxT.reshape(B, n, block), 1, 0)
    nll_NxBxb = jax.lax.map(one, (h_NxBxbxD, t_NxBxb))
    return jnp.moveaxis(nll_NxBxb, 0, 1).reshape(B, n * block)[:, :T]


def pretrain_loss(model: Transformer, tokens_BxT1: jax.Array,
                  loss_mask_BxT: jax.Array | None = None, *, chunked: bool = False,
                  remat_every: int = 1, average: str = "chunk"
                  ) -> tuple[jax.Array, dict[str, Any]]:
    """Plain next-token loss (FA and SWA baselines).

    With `chunked`, every block runs chunk by chunk (b = mini_batch_size) over a carried
    sliding cache, as at inference; it equals the one-shot loss to float tolerance.
    Each block's forward is rematerialised under `cfg.remat_block` (`layers.run_block`).
    """
    inputs, targets = split_window(tokens_BxT1)
    mask = target_mask(targets, model.cfg.bos_token_id, loss_mask_BxT)
    if chunked:
        nll = _chunked_nll(model, inputs, targets, remat_every)
    else:
        h = model.embed_tokens(inputs)
        for blk in model.blocks:
            h = run_block(blk, h, remat=model.cfg.remat_block)
        nll = head_nll(model, h, targets, model.cfg.logits_block_size)
    return average_nll(nll, mask, average), {"token_nll": nll, "n_tokens": jnp.sum(mask)}


def _chunked_nll(model: Transformer, inputs_BxT: jax.Array, targets_BxT: jax.Array,
                 remat_every: int) -> jax.Array:
    b = model.cfg.mini_batch_size
    B, T = inputs_BxT.shape
    caches = model.empty_caches(B)

    def body(caches: list[KVCache], x):
        tok_Bxb, tgt_Bxb = x
        h, new = step_blocks(model.blocks, model.embed_tokens(tok_Bxb), caches,
                             remat=model.cfg.remat_block)
        return new, token_nll(model.logits(h), tgt_Bxb)

    _, nll = scan_chunks(body, caches, (to_chunks(inputs_BxT, b), to_chunks(targets_BxT, b)),
                         T // b, remat_every)
    return from_chunks(nll)
