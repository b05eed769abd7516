"""Causal attention in plain jnp: full, sliding, chunked sliding with a carried cache, and
one-token decoding over a ring cache written in place.

Visibility is decided from positions alone: query at position p sees key at position s iff
the key is valid, s <= p and p - s < window. `attend` is the reference every other path
(and any future Pallas kernel, which takes the same arguments) must match.

RoPE uses the Hugging Face "halves" layout (x_i pairs with x_{i+d/2}); the importer owns
the permutation to and from the authors' adjacent-pair layout.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


_DIGIT_BITS = 8
_DIGITS = 4  # base-256 digits: every non-negative int32 position


@functools.lru_cache(maxsize=32)
def _digit_angle_tables(head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [digits, 256, head_dim/2] of (d * 256**level * inv_freq) mod 2 pi, in float64."""
    inv_freq_F = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    d = np.arange(1 << _DIGIT_BITS, dtype=np.float64)
    ang = np.stack([np.mod(d[:, None] * float(1 << (_DIGIT_BITS * lvl)) * inv_freq_F,
                           2 * np.pi) for lvl in range(_DIGITS)])
    return np.cos(ang), np.sin(ang)


def exact_rope_angles(pos_T: jax.Array, head_dim: int, theta: float, dtype=jnp.float32
                      ) -> tuple[jax.Array, jax.Array]:
    """cos/sin tables [T, head_dim/2] accurate to a few ulps at any position.

    `rope_angles` rounds pos * inv_freq in float32, an error of about pos * 6e-8 rad that
    grows with the position (2e-3 rad at 32K). Here the angle is reduced mod 2 pi per
    base-256 digit of the position in float64 and the digits' rotations are multiplied:
    decode caches can hold keys rotated at absolute positions without drift.
    """
    cos_tab, sin_tab = _digit_angle_tables(head_dim, float(theta))
    pos_T = pos_T.astype(jnp.int32)
    cos_TxF = sin_TxF = None
    for lvl in range(_DIGITS):
        digit_T = (pos_T >> (_DIGIT_BITS * lvl)) & ((1 << _DIGIT_BITS) - 1)
        c = jnp.take(jnp.asarray(cos_tab[lvl], dtype), digit_T, axis=0)
        s = jnp.take(jnp.asarray(sin_tab[lvl], dtype), digit_T, axis=0)
        if cos_TxF is None:
            cos_TxF, sin_TxF = c, s
        else:
            cos_TxF, sin_TxF = cos_TxF * c - sin_TxF * s, sin_TxF * c + cos_TxF * s
    return cos_TxF, sin_TxF


def rotate(x_BxTxHxD: jax.Array, cos_TxF: jax.Array, sin_TxF: jax.Array) -> jax.Array:
    """RoPE rotation by given angles (halves layout), in the accumulation dtype."""
    d = x_BxTxHxD.shape[-1]
    acc = acc_dtype(x_BxTxHxD.dtype)
    cos = cos_TxF.astype(acc)[None, :, None, :]
    sin = sin_TxF.astype(acc)[None, :, None, :]
    x = x_BxTxHxD.astype(acc)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxD.dtype)


def apply_rope(x_BxTxHxD: jax.Array, pos_T: jax.Array, theta: float) -> jax.Array:
    d = x_BxTxHxD.shape[-1]
    cos_TxF, sin_TxF = rope_angles(pos_T, d, theta, acc_dtype(x_BxTxHxD.dtype))
    return rotate(x_BxTxHxD, cos_TxF, sin_TxF)


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


def resolve_impl(impl: str) -> str:
    """`ModelConfig.attention_impl` with "auto" decided: the kernels where they run compiled
    (GPU, TPU), the reference elsewhere (interpreted kernels are for tests only)."""
    if impl == "auto":
        return "pallas" if jax.default_backend() in ("gpu", "tpu") else "reference"
    return impl


def attend_sequence(
    q_BxTxHxD: jax.Array,
    k_BxTxKxD: jax.Array,
    v_BxTxKxD: jax.Array,
    *,
    window: int | None,
    block: int,
    scale: float | None = None,
    impl: str = "reference",
) -> jax.Array:
    """Self-attention over one whole sequence (query and key t at position t).

    The reference runs `block` queries at a time, each rematerialised in the backward pass,
    over only the keys the block can reach: a band of block + window - 1 keys for sliding
    attention (memory and work linear in T), the causal triangle of key blocks for full
    attention (`_attend_causal_pairs`), so the T x T score matrix is never live at once and
    the blocks above the diagonal are never computed. `impl`: `ModelConfig.attention_impl`.
    """
    impl = resolve_impl(impl)
    if impl == "pallas":
        from ttt_model.flash import flash_attention
        return flash_attention(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, window=window, scale=scale)
    if impl == "cudnn":
        return _cudnn_sequence(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, window, scale)
    B, T, H, D = q_BxTxHxD.shape
    n = T // block
    if block >= T or T % block:
        pos_T = jnp.arange(T, dtype=jnp.int32)
        return attend(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, q_pos_T=pos_T, k_pos_S=pos_T,
                      window=window, scale=scale)
    if (window is not None and block + window - 1 < T) or n % 2:
        # a band of block + window - 1 keys per block (odd n: every key up to the end)
        return attend_blocked(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, q_offset=0, window=window,
                              block=block, scale=scale)
    return _attend_causal_pairs(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, block=block, window=window,
                                scale=scale)


def _attend_causal_pairs(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, *, block: int, window: int | None,
                         scale: float | None) -> jax.Array:
    """Full causal attention over n (even) query blocks, in n/2 steps of equal work.

    Query block p needs key blocks 0..p and block n-1-p needs 0..n-1-p: n+1 block pairs
    together, whatever p. Step p gathers those n+1 (query block, key block) pairs, scores
    them in one batched product and takes each query block's softmax over its own pairs, so
    every step has one static shape (one loop, rematerialised, as the banded path) and the
    n(n+1)/2 pairs of the causal triangle are all that is computed. Heads-major tiles
    ([.., K, G, b, D]) make both products plain batched GEMMs over contiguous rows; only
    diagonal pairs need the causal mask (and every pair the window's, if any).
    """
    B, T, H, D = q_BxTxHxD.shape
    K = k_BxTxKxD.shape[2]
    G = H // K
    n = T // block
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    acc = acc_dtype(q_BxTxHxD.dtype)
    q_NxBxKxGxbxD = jnp.moveaxis(q_BxTxHxD.reshape(B, n, block, K, G, D), (1, 2), (0, 4))
    k_NxBxKxbxD = jnp.moveaxis(k_BxTxKxD.reshape(B, n, block, K, D), (1, 2), (0, 3))
    v_NxBxKxbxD = jnp.moveaxis(v_BxTxKxD.reshape(B, n, block, K, D), (1, 2), (0, 3))
    pair_P = jnp.arange(n + 1, dtype=jnp.int32)
    offs_b = jnp.arange(block, dtype=jnp.int32)

    @jax.checkpoint
    def step(p: jax.Array) -> jax.Array:
        first_P = pair_P <= p  # pairs of query block p; the rest are block n-1-p's
        qi_P = jnp.where(first_P, p, n - 1 - p)
        ki_P = jnp.where(first_P, pair_P, pair_P - p - 1)
        q = jnp.take(q_NxBxKxGxbxD, qi_P, axis=0)  # [P, B, K, G, b, D]
        k = jnp.take(k_NxBxKxbxD, ki_P, axis=0)    # [P, B, K, b, D]
        v = jnp.take(v_NxBxKxbxD, ki_P, axis=0)
        s = jnp.einsum("pbkgtd,pbksd->pbkgts", q, k, preferred_element_type=acc) * scale
        q_pos = qi_P[:, None] * block + offs_b[None, :]
        k_pos = ki_P[:, None] * block + offs_b[None, :]
        ok = k_pos[:, None, :] <= q_pos[:, :, None]  # [P, b, b]
        if window is not None:
            ok &= q_pos[:, :, None] - k_pos[:, None, :] < window
        s = jnp.where(ok[:, None, None, None], s, NEG_INF)
        row_max = jnp.max(s, axis=-1)  # [P, B, K, G, b]
        mine = first_P[:, None, None, None, None]
        m_first = jnp.max(jnp.where(mine, row_max, NEG_INF), axis=0)
        m_second = jnp.max(jnp.where(mine, NEG_INF, row_max), axis=0)
        w = jnp.exp(s - jnp.where(mine, m_first, m_second)[..., None])
        l_P = jnp.sum(w, axis=-1)
        o = jnp.einsum("pbkgts,pbksd->pbkgtd", w.astype(v.dtype), v,
                       preferred_element_type=acc)  # [P, B, K, G, b, D]
        sel = first_P[:, None, None, None, None, None]
        o_first = (jnp.sum(jnp.where(sel, o, 0.0), 0)
                   / jnp.sum(jnp.where(mine, l_P, 0.0), 0)[..., None])
        o_second = (jnp.sum(jnp.where(sel, 0.0, o), 0)
                    / jnp.sum(jnp.where(mine, 0.0, l_P), 0)[..., None])
        return jnp.stack([o_first, o_second]).astype(q_BxTxHxD.dtype)

    o_Nhx2xBxKxGxbxD = jax.lax.map(step, jnp.arange(n // 2, dtype=jnp.int32))
    # step p made blocks p and n-1-p: blocks 0..n/2-1 in order, then n/2..n-1 reversed
    o_NxBxKxGxbxD = jnp.concatenate([o_Nhx2xBxKxGxbxD[:, 0], o_Nhx2xBxKxGxbxD[::-1, 1]])
    return jnp.moveaxis(o_NxBxKxGxbxD, (0, 4), (1, 2)).reshape(B, T, H, D)


def _cudnn_sequence(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, window: int | None,
                    scale: float | None) -> jax.Array:
    if jax.default_backend() != "gpu":
        raise ValueError(f"attention_impl='cudnn' needs a CUDA GPU; this run's backend is "
                         f"{jax.default_backend()!r} (use 'auto', 'pallas' or 'reference')")
    return jax.nn.dot_product_attention(
        q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, scale=scale, is_causal=True,
        local_window_size=None if window is None else (window - 1, 0),
        implementation="cudnn")


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
    cache: KVCache | RingCache,
    *,
    window: int | None,
    theta: float,
    scale: float | None = None,
    impl: str = "reference",
    block: int | None = None,
) -> tuple[jax.Array, KVCache | RingCache]:
    """Attention of a chunk of C new tokens over [cache ‖ chunk]; returns the shifted cache.

    Inputs are pre-RoPE. Positions are taken in the local cache+chunk frame (cache slot j
    at j, chunk token i at S+i): RoPE depends only on relative position, so this equals
    one-shot attention and stays exact however long the sequence has run. A `RingCache`
    (decoding, C = 1) is written in place instead: `attend_token`.

    `impl` "pallas" (and "cudnn", which has no second derivative) runs the flash kernel
    whose backward is differentiable (`flash_attention_twice`): the meta loss
    differentiates chunk attention twice. The reference takes `block` queries of the chunk
    at a time (`attend_blocked`), so a [chunk, cache + chunk] score matrix is never
    live whole, which inside the meta loss's double differentiation is most of its memory.
    """
    if isinstance(cache, RingCache):
        return attend_token(q_BxCxHxD, k_BxCxKxD, v_BxCxKxD, cache, window=window,
                            theta=theta, scale=scale, impl=impl)
    S = cache.size
    C = q_BxCxHxD.shape[1]
    k_all = jnp.concatenate([cache.k_BxSxKxD, k_BxCxKxD.astype(cache.k_BxSxKxD.dtype)], axis=1)
    v_all = jnp.concatenate([cache.v_BxSxKxD, v_BxCxKxD.astype(cache.v_BxSxKxD.dtype)], axis=1)
    pos_all = jnp.arange(S + C, dtype=jnp.int32)
    q_pos = pos_all[S:]
    valid = (pos_all >= S - cache.length)
    q = apply_rope(q_BxCxHxD, q_pos, theta)
    k = apply_rope(k_all, pos_all, theta)
    if resolve_impl(impl) == "reference":
        o = attend_blocked(q, k, v_all.astype(q.dtype), q_offset=S, k_valid_S=valid,
                           window=window, block=block, scale=scale)
    else:
        from ttt_model.flash import flash_attention_twice
        o = flash_attention_twice(q, k, v_all.astype(q.dtype), window=window, q_offset=S,
                                  k_valid_S=valid, scale=scale)
    new_cache = KVCache(k_all[:, C:], v_all[:, C:], jnp.minimum(cache.length + C, S))
    return o, new_cache


def attend_blocked(q_BxCxHxD: jax.Array, k_BxSxKxD: jax.Array, v_BxSxKxD: jax.Array, *,
                   q_offset: int, window: int | None, block: int | None,
                   k_valid_S: jax.Array | None = None, scale: float | None = None
                   ) -> jax.Array:
    """`attend` of C queries at positions q_offset.. over S keys at 0.., `block` queries at
    a time, each block rematerialised and reading only the band of keys its window reaches
    (block + window - 1; every key for full attention). One-shot sliding attention
    (q_offset 0) and a chunk over its cache (q_offset = cache size) both run here. Dense
    when the queries are one block (or not a multiple of it)."""
    B, C, H, D = q_BxCxHxD.shape
    S = k_BxSxKxD.shape[1]
    pos_S = jnp.arange(S, dtype=jnp.int32)
    if block is None or block >= C or C % block:
        return attend(q_BxCxHxD, k_BxSxKxD, v_BxSxKxD, q_pos_T=q_offset + pos_S[:C],
                      k_pos_S=pos_S, window=window, k_valid_S=k_valid_S, scale=scale)
    span = min(S, block + window - 1) if window is not None else S

    @jax.checkpoint
    def one_block(i: jax.Array) -> jax.Array:
        q0 = i * block
        k0 = jnp.clip(q_offset + q0 + block - span, 0, S - span)
        q_blk = jax.lax.dynamic_slice_in_dim(q_BxCxHxD, q0, block, axis=1)
        k_blk = jax.lax.dynamic_slice_in_dim(k_BxSxKxD, k0, span, axis=1)
        v_blk = jax.lax.dynamic_slice_in_dim(v_BxSxKxD, k0, span, axis=1)
        valid = (None if k_valid_S is None
                 else jax.lax.dynamic_slice_in_dim(k_valid_S, k0, span))
        return attend(q_blk, k_blk, v_blk,
                      q_pos_T=q_offset + q0 + jnp.arange(block, dtype=jnp.int32),
                      k_pos_S=k0 + jnp.arange(span, dtype=jnp.int32), window=window,
                      k_valid_S=valid, scale=scale)

    o_NxBxbxHxD = jax.lax.map(one_block, jnp.arange(C // block, dtype=jnp.int32))
    return jnp.moveaxis(o_NxBxbxHxD, 0, 1).reshape(B, C, H, D)


# ----- decoding: a cache written in place -----

def ring_positions(length: jax.Array, size: int) -> jax.Array:
    """The tick each of `size` ring slots holds once `length` ticks are written (slot =
    tick mod size); negative for a slot not yet written."""
    last = length - 1
    return last - jnp.mod(last - jnp.arange(size, dtype=jnp.int32), size)


class RingCache(NamedTuple):
    """A decode cache written in place: tick t lives in slot t mod S, so a new token costs
    one slot write instead of shifting the window, and which tick a slot holds follows from
    index arithmetic (`ring_positions`).

    The rows of a batch share one write clock: row i's token j is tick start_B[i] + j
    (prompts of different lengths end on the same tick), so every row writes the same slot,
    an in-place dynamic-update-slice rather than a scatter. Keys are stored after RoPE at
    their tick, with `exact_rope_angles`: RoPE depends only on differences, which stay
    exact however long decoding runs, and no key is ever rotated again. Heads-major
    [B, K, S, D], so one query reads each head's keys contiguously. A full-attention layer
    has a ring as long as the whole context, which never wraps.
    """

    k_BxKxSxD: jax.Array
    v_BxKxSxD: jax.Array
    length: jax.Array  # int32 scalar: ticks written, i.e. the tick of the next token
    start_B: jax.Array  # int32 [B]: each row's first tick (earlier slots are not its own)

    @property
    def size(self) -> int:
        return self.k_BxKxSxD.shape[2]

    @staticmethod
    def build(k_BxSxKxD: jax.Array, v_BxSxKxD: jax.Array, length: jax.Array | int,
              start_B: jax.Array, theta: float) -> RingCache:
        """A ring from pre-RoPE keys/values already in slot order (slot r holding tick
        ring_positions(length, S)[r]; slots a row does not own may hold anything)."""
        length = jnp.asarray(length, jnp.int32)
        pos_S = jnp.maximum(ring_positions(length, k_BxSxKxD.shape[1]), 0)
        cos, sin = exact_rope_angles(pos_S, k_BxSxKxD.shape[-1], theta,
                                     acc_dtype(k_BxSxKxD.dtype))
        k = rotate(k_BxSxKxD, cos, sin)
        return RingCache(jnp.swapaxes(k, 1, 2), jnp.swapaxes(v_BxSxKxD, 1, 2), length,
                         jnp.asarray(start_B, jnp.int32))

    def window_before(self, tick: jax.Array, size: int, theta: float) -> KVCache:
        """The pre-RoPE `KVCache` attend_chunk carries just before `tick`: ticks
        tick-size .. tick-1, newest last (still in the ring). One row: a KVCache's length
        is shared by its rows."""
        if self.k_BxKxSxD.shape[0] != 1:
            raise ValueError("window_before reads a one-row ring")
        pos_S = tick - size + jnp.arange(size, dtype=jnp.int32)
        slots_S = jnp.mod(pos_S, self.size)
        k = jnp.swapaxes(jnp.take(self.k_BxKxSxD, slots_S, axis=2), 1, 2)
        v = jnp.swapaxes(jnp.take(self.v_BxKxSxD, slots_S, axis=2), 1, 2)
        cos, sin = exact_rope_angles(jnp.maximum(pos_S, 0), k.shape[-1], theta,
                                     acc_dtype(k.dtype))
        length = jnp.clip(tick - self.start_B[0], 0, size).astype(jnp.int32)
        return KVCache(rotate(k, cos, -sin), v, length)


def attend_token(
    q_Bx1xHxD: jax.Array,
    k_Bx1xKxD: jax.Array,
    v_Bx1xKxD: jax.Array,
    ring: RingCache,
    *,
    window: int | None,
    theta: float,
    scale: float | None = None,
    impl: str = "reference",
) -> tuple[jax.Array, RingCache]:
    """One new token per row (pre-RoPE) over a ring and itself; then written into its slot.

    The slot it overwrites holds the key S ticks back, outside the window (S >= window).
    The whole ring is read in one dense pass (slots not yet written are masked): a
    full-attention step costs its ring's length, which its owner sizes to the context.
    A loop over only the filled blocks was tried: XLA copies each dynamically sliced
    block before the product, two to seven times slower than this single pass.
    `impl` "pallas" (or "cudnn") reads the ring with the decode kernel
    (`flash.decode_attention`), one program per row and kv head.
    """
    B, C, H, D = q_Bx1xHxD.shape
    K, S = ring.k_BxKxSxD.shape[1], ring.size
    if C != 1:
        raise ValueError(f"a RingCache takes one token at a time, got a chunk of {C}")
    if window is not None and window > S:
        raise ValueError(f"a ring of {S} slots cannot serve a window of {window}")
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    acc = acc_dtype(q_Bx1xHxD.dtype)
    t = ring.length
    cos, sin = exact_rope_angles(t[None], D, theta, acc)
    q_BxKxGxD = rotate(q_Bx1xHxD, cos, sin).reshape(B, K, H // K, D)
    k_BxKx1xD = jnp.swapaxes(rotate(k_Bx1xKxD, cos, sin), 1, 2).astype(ring.k_BxKxSxD.dtype)
    v_BxKx1xD = jnp.swapaxes(v_Bx1xKxD, 1, 2).astype(ring.v_BxKxSxD.dtype)
    pos_S = ring_positions(t, S)  # the ring before this token
    valid_BxS = pos_S[None, :] >= ring.start_B[:, None]
    if window is not None:
        valid_BxS &= t - pos_S[None, :] < window
    if resolve_impl(impl) != "reference":
        from ttt_model.flash import decode_attention
        o_BxKxGxD = decode_attention(q_BxKxGxD, ring.k_BxKxSxD, ring.v_BxKxSxD, valid_BxS,
                                     k_BxKx1xD[:, :, 0], v_BxKx1xD[:, :, 0], scale=scale)
    else:
        # softmax over [ring ‖ the token's own key], without concatenating (copying) the ring
        s_new_BxKxG = jnp.einsum("bkgd,bksd->bkgs", q_BxKxGxD, k_BxKx1xD,
                                 preferred_element_type=acc)[..., 0] * scale
        s_BxKxGxS = jnp.einsum("bkgd,bksd->bkgs", q_BxKxGxD, ring.k_BxKxSxD,
                               preferred_element_type=acc) * scale
        ok = valid_BxS[:, None, None, :]
        m_BxKxG = jnp.maximum(s_new_BxKxG, jnp.max(jnp.where(ok, s_BxKxGxS, NEG_INF), axis=-1))
        w_BxKxGxS = jnp.where(ok, jnp.exp(s_BxKxGxS - m_BxKxG[..., None]), 0.0)
        w_new_BxKxG = jnp.exp(s_new_BxKxG - m_BxKxG)
        o_BxKxGxD = (jnp.einsum("bkgs,bksd->bkgd", w_BxKxGxS.astype(ring.v_BxKxSxD.dtype),
                                ring.v_BxKxSxD, preferred_element_type=acc)
                     + w_new_BxKxG[..., None] * v_BxKx1xD.astype(acc))
        o_BxKxGxD = o_BxKxGxD / (w_BxKxGxS.sum(-1) + w_new_BxKxG)[..., None]
    # The write waits on the read through a data dependency (times zero, which XLA keeps
    # for floats; per row, so one row's NaN stays its own): otherwise XLA copies the whole
    # ring to let the read and the in-place write run in either order.
    after_B = 0.0 * o_BxKxGxD[:, :1, :1, :1]
    slot = jnp.mod(t, S)
    k_ring = jax.lax.dynamic_update_slice(
        ring.k_BxKxSxD, k_BxKx1xD + after_B.astype(k_BxKx1xD.dtype), (0, 0, slot, 0))
    v_ring = jax.lax.dynamic_update_slice(
        ring.v_BxKxSxD, v_BxKx1xD + after_B.astype(v_BxKx1xD.dtype), (0, 0, slot, 0))
    o = o_BxKxGxD.astype(v_Bx1xKxD.dtype).reshape(B, 1, H, D)
    return o, RingCache(k_ring, v_ring, t + 1, ring.start_B)
