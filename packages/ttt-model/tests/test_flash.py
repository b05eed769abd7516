"""The Pallas flash kernels (interpret mode on CPU) against the jnp reference `attend`.

fp32 bounds follow `ttt_model.testing`: the kernels and the reference compute the same sums
in other orders. bf16 bounds follow from where the kernels round: a bf16 operand of a
product (the inputs, each probability block before P.V, each dS block before dS.K and
dS^T.Q) and the bf16 output each carry a relative error of at most the unit roundoff
u = 2^-8, and every sum runs in fp32; three such roundings stack on any output, so it lies
within 4u of the fp32 result, relative to the scale of its leaf.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import random_tokens, tiny
from ttt_model.attention import attend, attend_sequence
from ttt_model.config import ConfigError
from ttt_model.flash import attention_vjp, flash_attention, flash_attention_twice
from ttt_model.model import build_model
from ttt_model.testing import assert_close, attention_terms, forward_terms, tolerance
from ttt_model.ttt import meta_loss

U_BF16 = 2.0 ** -8
H, D = 4, 16


def qkvg(seed, T, S, kv_heads, dtype=jnp.float32):
    r = np.random.default_rng(seed)
    arrs = [r.standard_normal(s) for s in ((2, T, H, D), (2, S, kv_heads, D),
                                           (2, S, kv_heads, D), (2, T, H, D))]
    return [jnp.asarray(a, jnp.float32).astype(dtype) for a in arrs]


def backward_terms(T: int, S: int, groups: int) -> int:
    """The longest fp32 chain of one attention gradient: the forward's, then dS (head_dim)
    and the sums over keys (dq) or over the group's queries (dk, dv)."""
    return attention_terms(D, S) + 4 * (D + S + groups * T)


def assert_grads_close(got, want, q, k, v, do, *, terms: int, what: str = "") -> None:
    """dq, dk, dv within tolerance(terms) of the reference, relative to the larger of the
    leaf's scale and the scale of its terms: dS = P * (dO.V - dO.O) cancels exactly where a
    query sees one key (window 1: the exact dq, dk are 0), leaving rounding of the size of
    dO.V times the other factor, sqrt(D) |dO| |V| |K| (or |Q|) after the 1/sqrt(D) scale."""
    mag = lambda x: float(jnp.max(jnp.abs(x.astype(jnp.float32))))  # noqa: E731
    dots = np.sqrt(D) * mag(do) * mag(v)
    floors = (dots * mag(k), dots * mag(q), 0.0)
    tol = tolerance(terms)
    for name, g, w, floor in zip(("dq", "dk", "dv"), got, want, floors, strict=True):
        err = float(jnp.max(jnp.abs(g.astype(jnp.float32) - w)))
        assert err <= tol * max(mag(w), floor), f"{what}{name}: {err:.3e} > {tol:.2e} x scale"


def reference_vjp(q, k, v, do, **kw):
    f = lambda q, k, v: attend(q.astype(jnp.float32), k.astype(jnp.float32),  # noqa: E731
                               v.astype(jnp.float32), **kw)
    o, vjp = jax.vjp(f, q, k, v)
    return o, vjp(do.astype(jnp.float32))


def kernel_vjp(fn, q, k, v, do, **kw):
    o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, **kw), q, k, v)
    return o, vjp(do)


CASES = [  # window, kv heads (H = 4 query heads), T (blocks of 16 queries x 8 keys), dtype
    (None, 1, 37, jnp.float32),
    (5, 2, 37, jnp.float32),
    (1, 4, 19, jnp.float32),
    (64, 2, 40, jnp.float32),   # window >= T: full causal
    (9, 1, 45, jnp.bfloat16),
    (None, 4, 32, jnp.bfloat16),
]


@pytest.mark.parametrize("window,kv_heads,T,dtype", CASES)
def test_forward_and_backward_equal_the_reference(window, kv_heads, T, dtype):
    q, k, v, do = qkvg(T, T, T, kv_heads, dtype)
    pos = jnp.arange(T)
    o_ref, g_ref = reference_vjp(q, k, v, do, q_pos_T=pos, k_pos_S=pos, window=window)
    o, g = kernel_vjp(flash_attention, q, k, v, do, window=window, block_q=16, block_k=8)
    assert o.dtype == dtype and all(x.dtype == dtype for x in g)
    if dtype == jnp.float32:
        assert_close(o, o_ref, terms=attention_terms(D, T), what="o")
        assert_grads_close(g, g_ref, q, k, v, do, terms=backward_terms(T, T, H // kv_heads))
    else:
        for name, got, want in zip(("o", "dq", "dk", "dv"), (o, *g), (o_ref, *g_ref),
                                   strict=True):
            err = float(jnp.max(jnp.abs(got.astype(jnp.float32) - want)))
            assert err <= 4 * U_BF16 * float(jnp.max(jnp.abs(want))), (name, err)


def test_chunk_frame_with_a_partly_filled_cache():
    """attend_chunk's call: 8 queries at positions S..S+7 over S + 8 keys, the first slots
    of the cache not yet written; the twice-differentiable kernel, forward and backward."""
    S, C, window = 24, 8, 20
    q, k, v, do = qkvg(1, C, S + C, 2)
    pos = jnp.arange(S + C)
    valid = pos >= 10
    kw = dict(window=window, k_valid_S=valid)
    o_ref, g_ref = reference_vjp(q, k, v, do, q_pos_T=pos[S:], k_pos_S=pos, **kw)
    for fn in (flash_attention, flash_attention_twice):
        o, g = kernel_vjp(fn, q, k, v, do, q_offset=S, block_q=8, block_k=8, **kw)
        assert_close(o, o_ref, terms=attention_terms(D, S + C), what=f"{fn.__name__} o")
        assert_grads_close(g, g_ref, q, k, v, do, terms=backward_terms(C, S + C, 2),
                           what=f"{fn.__name__} ")


def test_jnp_backward_equals_autodiff_of_the_reference():
    """attention_vjp from saved (o, lse) is the reference's VJP (its own terms)."""
    T, window = 21, 6
    q, k, v, do = qkvg(2, T, T, 2)
    pos = jnp.arange(T)
    o_ref, g_ref = reference_vjp(q, k, v, do, q_pos_T=pos, k_pos_S=pos, window=window)
    s = jnp.einsum("bthd,bshd->bhts", q, jnp.repeat(k, 2, axis=2)) / np.sqrt(D)
    ok = (pos[None, :] <= pos[:, None]) & (pos[:, None] - pos[None, :] < window)
    lse = jax.nn.logsumexp(jnp.where(ok, s, -jnp.inf), axis=-1)
    g = attention_vjp(q, k, v, None, o_ref, lse, do, window=window, q_offset=0,
                      scale=1 / np.sqrt(D), block=8)
    assert_grads_close(g, g_ref, q, k, v, do, terms=backward_terms(T, T, 2))


def test_grad_of_grad_through_the_meta_loss_equals_the_reference():
    """The outer gradient of the meta loss (which differentiates the suffix blocks' chunk
    attention twice) with the kernels equals the reference's, <= 1e-5 relative."""
    cfg = tiny(num_layers=3, suffix_len=2, vocab_size=53, sliding_window=12,
               mini_batch_size=8, attention_block_size=8)
    tokens = random_tokens(3, (2, 17), cfg.vocab_size)  # two chunks: W(1) feeds chunk 2

    def outer_grad(impl):
        model = build_model(cfg.replace(attention_impl=impl), seed=5)
        graphdef, params = nnx.split(model, nnx.Param)
        f = lambda p: meta_loss(nnx.merge(graphdef, p), tokens, inner_lr=1.0)[0]  # noqa: E731
        return jax.jit(jax.value_and_grad(f))(params)

    (l_ref, g_ref), (l_pal, g_pal) = outer_grad("reference"), outer_grad("pallas")
    terms = forward_terms(cfg, 16) * 3  # forward, inner backward, its derivative
    assert_close(l_pal, l_ref, terms=terms, what="meta loss", statistical=True)
    flat_ref, flat_pal = jax.tree.leaves(g_ref), jax.tree.leaves(g_pal)
    for a, b in zip(flat_pal, flat_ref, strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-5 * scale


def test_model_forward_with_each_impl():
    cfg = tiny(attention="full", num_layers=2, vocab_size=53, attention_block_size=8)
    tokens = random_tokens(4, (1, 24), cfg.vocab_size)
    ref = build_model(cfg, seed=2)(tokens)
    pal = build_model(cfg.replace(attention_impl="pallas"), seed=2)(tokens)
    assert_close(pal, ref, terms=forward_terms(cfg, 24))
    auto = build_model(cfg.replace(attention_impl="auto"), seed=2)(tokens)  # CPU: reference
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(ref))
    with pytest.raises(ValueError, match="attention_impl='cudnn' needs a CUDA GPU"):
        build_model(cfg.replace(attention_impl="cudnn"), seed=2)(tokens)
    with pytest.raises(ConfigError, match="attention_impl must be one of"):
        cfg.replace(attention_impl="flash")


@pytest.mark.parametrize("T,block,window", [(128, 16, None), (96, 8, None), (64, 16, 60),
                                            (48, 16, None)])
def test_reference_causal_pairs_equal_dense(T, block, window):
    """Full causal attention as n/2 steps of paired query blocks over the causal triangle of
    key blocks (n = 8, 12; a window the band path cannot take: 60 > T - block) is dense
    attention; so is an odd n (3), which runs one band of the whole sequence."""
    q, k, v, _ = qkvg(5, T, T, 2)
    pos = jnp.arange(T)
    dense = attend(q, k, v, q_pos_T=pos, k_pos_S=pos, window=window)
    assert_close(attend_sequence(q, k, v, window=window, block=block), dense,
                 terms=attention_terms(D, T))
