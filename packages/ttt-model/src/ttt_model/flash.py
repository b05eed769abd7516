"""Flash attention in Pallas: causal, optionally windowed, grouped-query, with block skipping.

The same visibility as `attention.attend` (query at position p sees key s iff the key is
valid, s <= p and p - s < window), computed block by block with an online softmax, so the
T x S score matrix never exists and a query block only visits the key blocks its causal
window can reach: the work is proportional to T * min(T + offset, window), not T * S.

Two differentiable entry points:

- `flash_attention`: forward and backward are Pallas kernels (first order). The backward
  recomputes each score block from the saved log-sum-exp, FlashAttention-2 style: one
  kernel for dq (per query block), one for dk/dv (per key block, summing its query heads).
- `flash_attention_twice`: the forward is the same kernel; the backward is written in jnp
  over the saved statistics (o, lse), so it is itself differentiable, and its own
  derivative with respect to o and lse runs back through the kernels. This is the path for
  attention inside the TTT-E2E meta loss, which is differentiated twice.

Positions: query t sits at `q_offset + t`, key s at s (the local cache+chunk frame of
`attend_chunk`; 0 for one-shot self-attention). Lengths need not be multiples of the
blocks: inputs are padded, and causality alone keeps padded keys away from real queries.

Kernels run compiled on GPU (Triton) and TPU (Mosaic) and in interpret mode elsewhere
(`interpret=None` decides from the default backend), which is how CPU tests run them.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ttt_model.attention import NEG_INF, acc_dtype

DEFAULT_BLOCK_Q = 128
DEFAULT_BLOCK_K = 128


def _interpret(interpret: bool | None) -> bool:
    return jax.default_backend() not in ("gpu", "tpu") if interpret is None else interpret


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _key_block_range(q_first, q_last, window: int | None, block_k: int, n_k: int):
    """Key blocks [lo, hi) that hold a key visible to some query in [q_first, q_last]."""
    hi = jnp.minimum(n_k, q_last // block_k + 1)
    if window is None:
        return 0, hi
    return jnp.maximum(0, (q_first - window + 1) // block_k), hi


def _query_block_range(k_first, k_last, window: int | None, q_offset: int, block_q: int,
                       n_q: int):
    """Query blocks [lo, hi) holding a query that sees some key in [k_first, k_last]."""
    lo = jnp.maximum(0, (k_first - q_offset) // block_q)
    if window is None:
        return lo, n_q
    hi = jnp.clip((k_last + window - 1 - q_offset) // block_q + 1, 0, n_q)
    return lo, hi


def _visible(q_pos, k_pos, k_valid, window: int | None):
    """[bq, bk] visibility of keys k_pos (with validity k_valid) to queries q_pos."""
    ok = (k_pos[None, :] <= q_pos[:, None]) & k_valid[None, :]
    if window is not None:
        ok &= q_pos[:, None] - k_pos[None, :] < window
    return ok


def _dot(a, b, trans_b: bool = False):
    dims = (((1,), (1 if trans_b else 0,)), ((), ()))
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def _dot_ta(a, b):
    """a^T @ b for 2-D a, b (contracting their first axes), accumulated in float32."""
    return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())),
                               preferred_element_type=jnp.float32)


# ----- kernels (one program per (batch row, head, block)) -----

def _fwd_kernel(valid_ref, q_ref, k_ref, v_ref, o_ref, lse_ref, *, scale, window, q_offset,
                block_q, block_k):
    i = pl.program_id(2)
    n_k = k_ref.shape[0] // block_k
    q = q_ref[...]
    q_pos = q_offset + i * block_q + jnp.arange(block_q, dtype=jnp.int32)
    lo, hi = _key_block_range(q_offset + i * block_q, q_offset + (i + 1) * block_q - 1,
                              window, block_k, n_k)

    def body(j, carry):
        acc, m, l = carry
        ks = pl.ds(j * block_k, block_k)
        k, v = k_ref[ks, :], v_ref[ks, :]
        k_pos = j * block_k + jnp.arange(block_k, dtype=jnp.int32)
        ok = _visible(q_pos, k_pos, valid_ref[ks] != 0, window)
        s = jnp.where(ok, _dot(q, k, trans_b=True) * scale, NEG_INF)
        m_new = jnp.maximum(m, jnp.max(s, axis=1))
        p = jnp.where(ok, jnp.exp(s - m_new[:, None]), 0.0)
        corr = jnp.exp(m - m_new)
        acc = acc * corr[:, None] + _dot(p.astype(v.dtype), v)
        return acc, m_new, l * corr + jnp.sum(p, axis=1)

    d = q.shape[-1]
    init = (jnp.zeros((block_q, d), jnp.float32), jnp.full((block_q,), NEG_INF, jnp.float32),
            jnp.zeros((block_q,), jnp.float32))
    acc, m, l = jax.lax.fori_loop(lo, hi, body, init)
    seen = l > 0  # a padded query may see nothing
    o_ref[...] = (acc / jnp.where(seen, l, 1.0)[:, None]).astype(o_ref.dtype)
    lse_ref[...] = jnp.where(seen, m + jnp.log(jnp.where(seen, l, 1.0)), NEG_INF)


def _probs(q, k, lse, ok, scale):
    s = _dot(q, k, trans_b=True) * scale
    return jnp.where(ok, jnp.exp(s - lse[:, None]), 0.0)


def _dq_kernel(valid_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *, scale,
               window, q_offset, block_q, block_k):
    i = pl.program_id(2)
    n_k = k_ref.shape[0] // block_k
    q, do = q_ref[...], do_ref[...]
    lse, delta = lse_ref[...], delta_ref[...]
    q_pos = q_offset + i * block_q + jnp.arange(block_q, dtype=jnp.int32)
    lo, hi = _key_block_range(q_offset + i * block_q, q_offset + (i + 1) * block_q - 1,
                              window, block_k, n_k)

    def body(j, dq):
        ks = pl.ds(j * block_k, block_k)
        k, v = k_ref[ks, :], v_ref[ks, :]
        k_pos = j * block_k + jnp.arange(block_k, dtype=jnp.int32)
        p = _probs(q, k, lse, _visible(q_pos, k_pos, valid_ref[ks] != 0, window), scale)
        ds = p * (_dot(do, v, trans_b=True) - delta[:, None])
        return dq + _dot(ds.astype(k.dtype), k)

    dq = jax.lax.fori_loop(lo, hi, body, jnp.zeros(q.shape, jnp.float32))
    dq_ref[...] = (dq * scale).astype(dq_ref.dtype)


def _dkv_kernel(valid_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref, *,
                scale, window, q_offset, block_q, block_k, groups):
    j = pl.program_id(2)
    n_q = q_ref.shape[1] // block_q
    k, v = k_ref[...], v_ref[...]
    k_pos = j * block_k + jnp.arange(block_k, dtype=jnp.int32)
    k_valid = valid_ref[...] != 0
    lo, hi = _query_block_range(j * block_k, (j + 1) * block_k - 1, window, q_offset,
                                block_q, n_q)

    def body(i, carry):
        dk, dv = carry
        qs = pl.ds(i * block_q, block_q)
        q_pos = q_offset + i * block_q + jnp.arange(block_q, dtype=jnp.int32)
        ok = _visible(q_pos, k_pos, k_valid, window)
        for g in range(groups):  # the query heads this kv head serves
            q, do = q_ref[g, qs, :], do_ref[g, qs, :]
            p = _probs(q, k, lse_ref[g, qs], ok, scale)
            dv = dv + _dot_ta(p.astype(do.dtype), do)
            ds = p * (_dot(do, v, trans_b=True) - delta_ref[g, qs][:, None])
            dk = dk + _dot_ta(ds.astype(q.dtype), q)
        return dk, dv

    zeros = jnp.zeros(k.shape, jnp.float32)
    dk, dv = jax.lax.fori_loop(lo, hi, body, (zeros, zeros))
    dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


# ----- pallas_call wrappers over heads-major, block-padded arrays -----

def _fwd_call(valid_S, q, k, v, *, scale, window, q_offset, block_q, block_k, interpret):
    """q [B,H,Tp,D], k/v [B,K,Sp,D], valid [Sp] int32 -> o [B,H,Tp,D], lse [B,H,Tp] f32."""
    B, H, Tp, D = q.shape
    K, Sp = k.shape[1], k.shape[2]
    G = H // K
    kern = functools.partial(_fwd_kernel, scale=scale, window=window, q_offset=q_offset,
                             block_q=block_q, block_k=block_k)
    return pl.pallas_call(
        kern,
        grid=(B, H, Tp // block_q),
        in_specs=[
            pl.BlockSpec((Sp,), lambda b, h, i: (0,)),
            pl.BlockSpec((None, None, block_q, D), lambda b, h, i: (b, h, i, 0)),
            pl.BlockSpec((None, None, Sp, D), lambda b, h, i: (b, h // G, 0, 0)),
            pl.BlockSpec((None, None, Sp, D), lambda b, h, i: (b, h // G, 0, 0)),
        ],
        out_specs=[
            pl.BlockSpec((None, None, block_q, D), lambda b, h, i: (b, h, i, 0)),
            pl.BlockSpec((None, None, block_q), lambda b, h, i: (b, h, i)),
        ],
        out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype),
                   jax.ShapeDtypeStruct((B, H, Tp), jnp.float32)],
        interpret=interpret,
        name="flash_attention_fwd",
    )(valid_S, q, k, v)


def _bwd_call(valid_S, q, k, v, do, lse, delta, *, scale, window, q_offset, block_q, block_k,
              interpret):
    B, H, Tp, D = q.shape
    K, Sp = k.shape[1], k.shape[2]
    G = H // K
    common = dict(scale=scale, window=window, q_offset=q_offset, block_q=block_q,
                  block_k=block_k)
    q_blk = pl.BlockSpec((None, None, block_q, D), lambda b, h, i: (b, h, i, 0))
    row_blk = pl.BlockSpec((None, None, block_q), lambda b, h, i: (b, h, i))
    kv_all = pl.BlockSpec((None, None, Sp, D), lambda b, h, i: (b, h // G, 0, 0))
    dq = pl.pallas_call(
        functools.partial(_dq_kernel, **common),
        grid=(B, H, Tp // block_q),
        in_specs=[pl.BlockSpec((Sp,), lambda b, h, i: (0,)), q_blk, kv_all, kv_all, q_blk,
                  row_blk, row_blk],
        out_specs=q_blk,
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
        interpret=interpret,
        name="flash_attention_dq",
    )(valid_S, q, k, v, do, lse, delta)

    # dk/dv: one program per (row, kv head, key block), over the G query heads it serves;
    # the heads-major layout puts those heads next to each other (h = kv_head * G + g).
    kv_blk = pl.BlockSpec((None, None, block_k, D), lambda b, kh, j: (b, kh, j, 0))
    group_all = pl.BlockSpec((None, G, Tp, D), lambda b, kh, j: (b, kh, 0, 0))
    group_rows = pl.BlockSpec((None, G, Tp), lambda b, kh, j: (b, kh, 0))
    dk, dv = pl.pallas_call(
        functools.partial(_dkv_kernel, groups=G, **common),
        grid=(B, K, Sp // block_k),
        in_specs=[pl.BlockSpec((block_k,), lambda b, kh, j: (j,)), group_all, kv_blk, kv_blk,
                  group_all, group_rows, group_rows],
        out_specs=[kv_blk, kv_blk],
        out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype),
                   jax.ShapeDtypeStruct(v.shape, v.dtype)],
        interpret=interpret,
        name="flash_attention_dkv",
    )(valid_S, q, k, v, do, lse, delta)
    return dq, dk, dv


# ----- layout: [B, T, H, D] in and out, as `attend` -----

class _Layout:
    """Heads-major, block-padded views of one call's inputs, and the way back."""

    def __init__(self, q_BxTxHxD, k_BxSxKxD, k_valid_S, block_q: int, block_k: int):
        self.T, self.S = q_BxTxHxD.shape[1], k_BxSxKxD.shape[1]
        self.block_q = min(block_q, _round_up(self.T, 8))
        self.block_k = min(block_k, _round_up(self.S, 8))
        self.Tp = _round_up(self.T, self.block_q)
        self.Sp = _round_up(self.S, self.block_k)
        valid = (jnp.ones((self.S,), bool) if k_valid_S is None
                 else jnp.asarray(k_valid_S, bool))
        self.valid_S = jnp.pad(valid.astype(jnp.int32), (0, self.Sp - self.S))

    def queries(self, x_BxTxHxD):
        x = jnp.swapaxes(x_BxTxHxD, 1, 2)
        return jnp.pad(x, ((0, 0), (0, 0), (0, self.Tp - self.T), (0, 0)))

    def keys(self, x_BxSxKxD):
        x = jnp.swapaxes(x_BxSxKxD, 1, 2)
        return jnp.pad(x, ((0, 0), (0, 0), (0, self.Sp - self.S), (0, 0)))

    def rows(self, x_BxHxT):
        return jnp.pad(x_BxHxT, ((0, 0), (0, 0), (0, self.Tp - self.T)))

    def back_queries(self, x_BxHxTpxD):
        return jnp.swapaxes(x_BxHxTpxD[:, :, : self.T], 1, 2)

    def back_keys(self, x_BxKxSpxD):
        return jnp.swapaxes(x_BxKxSpxD[:, :, : self.S], 1, 2)


def _check(q, k, v, window: int | None) -> None:
    if q.ndim != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] \
            or q.shape[3] != k.shape[3] or q.shape[2] % k.shape[2]:
        raise ValueError(f"flash attention: q {q.shape} and k/v {k.shape}/{v.shape} are not "
                         "[B,T,H,D] and [B,S,K,D] with H a multiple of K")
    if window is not None and window < 1:
        raise ValueError(f"flash attention: window must be >= 1 or None, got {window}")


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7, 8, 9))
def _flash_lse(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k, interpret):
    return _flash_lse_fwd(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k,
                          interpret)[0]


def _flash_lse_fwd(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k, interpret):
    lay = _Layout(q, k, k_valid_S, block_q, block_k)
    o, lse = _fwd_call(lay.valid_S, lay.queries(q), lay.keys(k), lay.keys(v), scale=scale,
                       window=window, q_offset=q_offset, block_q=lay.block_q,
                       block_k=lay.block_k, interpret=interpret)
    out = (lay.back_queries(o), lse[:, :, : lay.T])
    return out, (q, k, v, k_valid_S, out[0], out[1])


def _flash_lse_bwd(window, q_offset, scale, block_q, block_k, interpret, res, cts):
    q, k, v, k_valid_S, o, lse = res
    do, dlse = cts
    lay = _Layout(q, k, k_valid_S, block_q, block_k)
    acc = acc_dtype(q.dtype)
    # d/ds_ij of (o, lse) against (do, dlse): p_ij * (do_i . v_j - delta_i), with
    # delta_i = do_i . o_i - dlse_i (the lse term adds dlse_i * p_ij).
    delta_BxHxT = (jnp.einsum("bthd,bthd->bht", do.astype(acc), o.astype(acc))
                   - dlse.astype(acc))
    dq, dk, dv = _bwd_call(lay.valid_S, lay.queries(q), lay.keys(k), lay.keys(v),
                           lay.queries(do.astype(q.dtype)), lay.rows(lse),
                           lay.rows(delta_BxHxT.astype(jnp.float32)), scale=scale,
                           window=window, q_offset=q_offset, block_q=lay.block_q,
                           block_k=lay.block_k, interpret=interpret)
    return (lay.back_queries(dq), lay.back_keys(dk), lay.back_keys(dv),
            None if k_valid_S is None else jnp.zeros(k_valid_S.shape, jax.dtypes.float0))


_flash_lse.defvjp(_flash_lse_fwd, _flash_lse_bwd)


def flash_attention(q_BxTxHxD: jax.Array, k_BxSxKxD: jax.Array, v_BxSxKxD: jax.Array, *,
                    window: int | None, q_offset: int = 0, k_valid_S: jax.Array | None = None,
                    scale: float | None = None, block_q: int = DEFAULT_BLOCK_Q,
                    block_k: int = DEFAULT_BLOCK_K, interpret: bool | None = None
                    ) -> jax.Array:
    """`attend` with query t at position q_offset + t and key s at s; Pallas forward and
    backward (differentiable once)."""
    _check(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, window)
    scale = 1.0 / math.sqrt(q_BxTxHxD.shape[-1]) if scale is None else float(scale)
    return _flash_lse(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, k_valid_S, window, int(q_offset),
                      scale, block_q, block_k, _interpret(interpret))[0]


def attention_vjp(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, k_valid_S, o_BxTxHxD, lse_BxHxT,
                  do_BxTxHxD, *, window: int | None, q_offset: int, scale: float,
                  block: int = DEFAULT_BLOCK_Q):
    """(dq, dk, dv) of attention from its saved output and log-sum-exp, in plain jnp.

    Written to be differentiated: a scan over query blocks (each rematerialised) that
    recomputes the block's probabilities from lse, so memory is one block x S at a time.
    Masked scores are excluded before the exponential, which keeps second derivatives
    finite where a query sees no key.
    """
    B, T, H, D = q_BxTxHxD.shape
    S, K = k_BxSxKxD.shape[1], k_BxSxKxD.shape[2]
    G = H // K
    acc = acc_dtype(q_BxTxHxD.dtype)
    bq = min(block, T)
    n = -(-T // bq)
    pad = n * bq - T
    k = k_BxSxKxD.astype(acc)
    v = v_BxSxKxD.astype(acc)
    valid_S = jnp.ones((S,), bool) if k_valid_S is None else jnp.asarray(k_valid_S, bool)
    k_pos_S = jnp.arange(S, dtype=jnp.int32)

    def blocks(x, fill=0.0):  # [B, T, ...] -> [n, B, bq, ...]
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2), constant_values=fill)
        return jnp.moveaxis(x.reshape(B, n, bq, *x.shape[2:]), 1, 0)

    delta_BxTxH = jnp.sum(do_BxTxHxD.astype(acc) * o_BxTxHxD.astype(acc), axis=-1)
    xs = (jnp.arange(n, dtype=jnp.int32),
          blocks(q_BxTxHxD.astype(acc).reshape(B, T, K, G, D)),
          blocks(do_BxTxHxD.astype(acc).reshape(B, T, K, G, D)),
          blocks(jnp.swapaxes(lse_BxHxT, 1, 2).astype(acc).reshape(B, T, K, G)),
          blocks(delta_BxTxH.reshape(B, T, K, G)))

    @jax.checkpoint
    def body(carry, x):
        dk, dv = carry
        i, q, do, lse, delta = x  # q/do [B,bq,K,G,D]; lse/delta [B,bq,K,G]
        t_q = i * bq + jnp.arange(bq, dtype=jnp.int32)
        q_pos = q_offset + t_q
        ok = _visible(q_pos, k_pos_S, valid_S, window) & (t_q < T)[:, None]  # [bq, S]
        s = jnp.einsum("bqkgd,bskd->bkgqs", q, k) * scale
        p = jnp.exp(jnp.where(ok, s - jnp.moveaxis(lse, 1, -1)[..., None], NEG_INF))
        dp = jnp.einsum("bqkgd,bskd->bkgqs", do, v)
        ds = p * (dp - jnp.moveaxis(delta, 1, -1)[..., None])
        dq = jnp.einsum("bkgqs,bskd->bqkgd", ds, k) * scale
        dk = dk + jnp.einsum("bkgqs,bqkgd->bskd", ds, q) * scale
        dv = dv + jnp.einsum("bkgqs,bqkgd->bskd", p, do)
        return (dk, dv), dq

    zeros = jnp.zeros(k.shape, acc)
    (dk, dv), dq_NxBxbqxKxGxD = jax.lax.scan(body, (zeros, zeros), xs)
    dq = jnp.moveaxis(dq_NxBxbqxKxGxD, 0, 1).reshape(B, n * bq, H, D)[:, :T]
    return (dq.astype(q_BxTxHxD.dtype), dk.astype(k_BxSxKxD.dtype),
            dv.astype(v_BxSxKxD.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7, 8, 9))
def _flash_twice(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k, interpret):
    return _flash_lse(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k,
                      interpret)[0]


def _flash_twice_fwd(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k, interpret):
    o, lse = _flash_lse(q, k, v, k_valid_S, window, q_offset, scale, block_q, block_k,
                        interpret)
    return o, (q, k, v, k_valid_S, o, lse)


def _flash_twice_bwd(window, q_offset, scale, block_q, block_k, interpret, res, do):
    q, k, v, k_valid_S, o, lse = res
    dq, dk, dv = attention_vjp(q, k, v, k_valid_S, o, lse, do, window=window,
                               q_offset=q_offset, scale=scale, block=block_q)
    return (dq, dk, dv,
            None if k_valid_S is None else jnp.zeros(k_valid_S.shape, jax.dtypes.float0))


_flash_twice.defvjp(_flash_twice_fwd, _flash_twice_bwd)


def flash_attention_twice(q_BxTxHxD: jax.Array, k_BxSxKxD: jax.Array, v_BxSxKxD: jax.Array,
                          *, window: int | None, q_offset: int = 0,
                          k_valid_S: jax.Array | None = None, scale: float | None = None,
                          block_q: int = DEFAULT_BLOCK_Q, block_k: int = DEFAULT_BLOCK_K,
                          interpret: bool | None = None) -> jax.Array:
    """`flash_attention` whose backward is differentiable (grad of grad): the Pallas
    forward, and `attention_vjp` (jnp) as the backward."""
    _check(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, window)
    scale = 1.0 / math.sqrt(q_BxTxHxD.shape[-1]) if scale is None else float(scale)
    return _flash_twice(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, k_valid_S, window, int(q_offset),
                        scale, block_q, block_k, _interpret(interpret))


# ----- decoding: one new query per row against its ring of cached keys -----

def _decode_kernel(valid_ref, q_ref, k_ref, v_ref, kn_ref, vn_ref, o_ref, *, scale, block_k):
    q = q_ref[...].astype(jnp.float32)  # [G, D]: the query heads of one kv head
    n_k = k_ref.shape[0] // block_k

    def body(j, carry):
        acc, m, l = carry
        ks = pl.ds(j * block_k, block_k)
        k, v = k_ref[ks, :], v_ref[ks, :]
        ok = (valid_ref[ks] != 0)[None, :]
        s = jnp.where(ok, _dot(q.astype(k.dtype), k, trans_b=True) * scale, NEG_INF)
        m_new = jnp.maximum(m, jnp.max(s, axis=1))
        p = jnp.where(ok, jnp.exp(s - m_new[:, None]), 0.0)
        corr = jnp.exp(m - m_new)
        acc = acc * corr[:, None] + _dot(p.astype(v.dtype), v)
        return acc, m_new, l * corr + jnp.sum(p, axis=1)

    G, D = q.shape
    # the row's own key opens the softmax: it is always visible, so every row sees a key
    s_own = jnp.sum(q * kn_ref[...].astype(jnp.float32), axis=-1) * scale  # [G]
    init = (jnp.broadcast_to(vn_ref[...].astype(jnp.float32), (G, D)), s_own,
            jnp.ones((G,), jnp.float32))
    acc, _, l = jax.lax.fori_loop(0, n_k, body, init)
    o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)


def decode_attention(q_BxKxGxD: jax.Array, k_BxKxSxD: jax.Array, v_BxKxSxD: jax.Array,
                     valid_BxS: jax.Array, k_new_BxKxD: jax.Array, v_new_BxKxD: jax.Array, *,
                     scale: float, block_k: int = DEFAULT_BLOCK_K,
                     interpret: bool | None = None) -> jax.Array:
    """One query per row (G heads per kv head, already rotated) over its ring of S cached
    keys (valid where `valid_BxS`) and its own new key/value: o [B, K, G, D], float32
    softmax. One program per (row, kv head) reads that head's keys once for all G queries;
    inference only (not differentiable)."""
    B, K, G, D = q_BxKxGxD.shape
    S = k_BxKxSxD.shape[2]
    bk = min(block_k, _round_up(S, 8))
    Sp = _round_up(S, bk)
    pad = ((0, 0), (0, 0), (0, Sp - S), (0, 0))
    k, v = jnp.pad(k_BxKxSxD, pad), jnp.pad(v_BxKxSxD, pad)
    valid = jnp.pad(jnp.asarray(valid_BxS, jnp.int32), ((0, 0), (0, Sp - S)))
    return pl.pallas_call(
        functools.partial(_decode_kernel, scale=float(scale), block_k=bk),
        grid=(B, K),
        in_specs=[
            pl.BlockSpec((None, Sp), lambda b, h: (b, 0)),
            pl.BlockSpec((None, None, G, D), lambda b, h: (b, h, 0, 0)),
            pl.BlockSpec((None, None, Sp, D), lambda b, h: (b, h, 0, 0)),
            pl.BlockSpec((None, None, Sp, D), lambda b, h: (b, h, 0, 0)),
            pl.BlockSpec((None, None, D), lambda b, h: (b, h, 0)),
            pl.BlockSpec((None, None, D), lambda b, h: (b, h, 0)),
        ],
        out_specs=pl.BlockSpec((None, None, G, D), lambda b, h: (b, h, 0, 0)),
        out_shape=jax.ShapeDtypeStruct((B, K, G, D), jnp.float32),
        interpret=_interpret(interpret),
        name="decode_attention",
    )(valid, q_BxKxGxD, k, v, k_new_BxKxD, v_new_BxKxD)
