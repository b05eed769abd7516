"""Causal attention in plain jnp: full, sliding, and chunked sliding with a carried cache.

Visibility is decided from positions alone: query at position p sees key at position s iff
the key is valid, s <= p and p - s < window. `attend` is the reference every other path
(and any future Pallas kernel, which takes the same arguments) must match.

RoPE uses the Hugging Face "halves" layout (x_i pairs with x_{i+d/2}); the importer owns
the permutation to and from the authors' adjacent-pair layout.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

NEG_INF = -1e30


def acc_dtype(dtype) -> jnp.dtype:
    """Accumulation dtype: float32, or float64 when the input is float64."""
    return jnp.promote_types(dtype, jnp.float32)


def rope_angles(pos_T: jax.Array, head_dim: int, theta: float, dtype=jnp.float32
                ) -> tuple[jax.Array, jax.Array]:
    """cos/sin tables [T, head_dim/2] for integer positions."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=dtype) / head_dim))
    ang_TxF = pos_T.astype(dtype)[:, None] * inv_freq[None, :]
    return jnp.cos(ang_TxF), jnp.sin(ang_TxF)


def apply_rope(x_BxTxHxD: jax.Array, pos_T: jax.Array, theta: float) -> jax.Array:
    d = x_BxTxHxD.shape[-1]
    acc = acc_dtype(x_BxTxHxD.dtype)
    cos_TxF, sin_TxF = rope_angles(pos_T, d, theta, acc)
    cos, sin = cos_TxF[None, :, None, :], sin_TxF[None, :, None, :]
    x = x_BxTxHxD.astype(acc)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxD.dtype)


def attend(
    q_BxTxHxD: jax.Array,
    k_BxSxKxD: jax.Array,
    v_BxSxKxD: jax.Array,
    *,
    q_pos_T: jax.Array,
    k_pos_S: jax.Array,
    window: int | None,
    k_valid_S: jax.Array | None = None,
    scale: float | None = None,
) -> jax.Array:
    """Grouped-query causal attention, optionally windowed; dense scores [T, S].

    K kv heads serve H = K*G query heads. Softmax runs in float32.
    """
    B, T, H, D = q_BxTxHxD.shape
    K = k_BxSxKxD.shape[2]
    G = H // K
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    q_BxTxKxGxD = q_BxTxHxD.reshape(B, T, K, G, D)
    s_BxKxGxTxS = jnp.einsum("btkgd,bskd->bkgts", q_BxTxKxGxD, k_BxSxKxD,
                             preferred_element_type=acc_dtype(q_BxTxHxD.dtype)) * scale
    mask_TxS = k_pos_S[None, :] <= q_pos_T[:, None]
    if window is not None:
        mask_TxS &= q_pos_T[:, None] - k_pos_S[None, :] < window
    if k_valid_S is not None:
        mask_TxS &= k_valid_S[None, :]
    s_BxKxGxTxS = jnp.where(mask_TxS, s_BxKxGxTxS, NEG_INF)
    p_BxKxGxTxS = jax.nn.softmax(s_BxKxGxTxS, axis=-1).astype(v_BxSxKxD.dtype)
    o_BxTxKxGxD = jnp.einsum("bkgts,bskd->btkgd", p_BxKxGxTxS, v_BxSxKxD)
    return o_BxTxKxGxD.reshape(B, T, H, D)


def attend_sequence(
    q_BxTxHxD: jax.Array,
    k_BxTxKxD: jax.Array,
    v_BxTxKxD: jax.Array,
    *,
    window: int | None,
    block: int,
    scale: float | None = None,
) -> jax.Array:
    """Self-attention over one whole sequence, `block` queries at a time.

    Each query block sees only the keys its window can reach (block + window - 1 of them)
    and is rematerialised in the backward pass, so memory is linear in T for sliding
    attention and the T x T score matrix is never live at once.
    """
    B, T, H, D = q_BxTxHxD.shape
    pos_T = jnp.arange(T, dtype=jnp.int32)
    if block >= T or T % block:
        return attend(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, q_pos_T=pos_T, k_pos_S=pos_T,
                      window=window, scale=scale)
    span = T if window is None else min(T, block + window - 1)
    n = T // block

    @jax.checkpoint
    def one_block(i: jax.Array) -> jax.Array:
        q0 = i * block
        k0 = jnp.clip(q0 + block - span, 0, T - span)
        q_blk = jax.lax.dynamic_slice_in_dim(q_BxTxHxD, q0, block, axis=1)
        k_blk = jax.lax.dynamic_slice_in_dim(k_BxTxKxD, k0, span, axis=1)
        v_blk = jax.lax.dynamic_slice_in_dim(v_BxTxKxD, k0, span, axis=1)
        return attend(q_blk, k_blk, v_blk, q_pos_T=q0 + jnp.arange(block, dtype=jnp.int32),
                      k_pos_S=k0 + jnp.arange(span, dtype=jnp.int32), window=window,
                      scale=scale)

    o_NxBxbxHxD = jax.lax.map(one_block, jnp.arange(n, dtype=jnp.int32))
    return jnp.moveaxis(o_NxBxbxHxD, 0, 1).reshape(B, T, H, D)


class KVCache(NamedTuple):
    """The last S keys/values of one layer (keys stored before RoPE), newest last.

    `length` counts the valid entries, which are the last `length` slots.
    """

    k_BxSxKxD: jax.Array
    v_BxSxKxD: jax.Array
    length: jax.Array  # int32 scalar

    @staticmethod
    def empty(batch: int, size: int, kv_heads: int, head_dim: int, dtype) -> KVCache:
        z = jnp.zeros((batch, size, kv_heads, head_dim), dtype)
        return KVCache(z, z, jnp.zeros((), jnp.int32))

    @property
    def size(self) -> int:
        return self.k_BxSxKxD.shape[1]


def attend_chunk(
    q_BxCxHxD: jax.Array,
    k_BxCxKxD: jax.Array,
    v_BxCxKxD: jax.Array,
    cache: KVCache,
    *,
    window: int | None,
    theta: float,
    scale: float | None = None,
) -> tuple[jax.Array, KVCache]:
    """Attention of a chunk of C new tokens over [cache ‖ chunk]; returns the shifted cache.

    Inputs are pre-RoPE. Positions are taken in the local cache+chunk frame (cache slot j
    at j, chunk token i at S+i): RoPE depends only on relative position, so this equals
    one-shot attention and stays exact however long the sequence has run.
    """
    S = cache.size
    C = q_BxCxHxD.shape[1]
    k_all = jnp.concatenate([cache.k_BxSxKxD, k_BxCxKxD.astype(cache.k_BxSxKxD.dtype)], axis=1)
    v_all = jnp.concatenate([cache.v_BxSxKxD, v_BxCxKxD.astype(cache.v_BxSxKxD.dtype)], axis=1)
    pos_all = jnp.arange(S + C, dtype=jnp.int32)
    q_pos = pos_all[S:]
    valid = (pos_all >= S - cache.length)
    q = apply_rope(q_BxCxHxD, q_pos, theta)
    k = apply_rope(k_all, pos_all, theta)
    o = attend(q, k, v_all.astype(q.dtype), q_pos_T=q_pos, k_pos_S=pos_all, window=window,
               k_valid_S=valid, scale=scale)
    new_cache = KVCache(k_all[:, C:], v_all[:, C:], jnp.minimum(cache.length + C, S))
    return o, new_cache
