"""Attention kinds against an independent per-query numpy reference, and each other."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_tokens, tiny
from ttt_model.attention import KVCache, apply_rope, attend, attend_chunk, attend_sequence
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model


def naive_attention(q, k, v, window):
    """Loop over batch, heads and queries; kv head of query head h is h // (H/K)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, T, H, D = q.shape
    G = H // k.shape[2]
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                lo = 0 if window is None else max(0, i - window + 1)
                s = k[b, lo : i + 1, h // G] @ q[b, i, h] / np.sqrt(D)
                p = np.exp(s - s.max())
                out[b, i, h] = (p / p.sum()) @ v[b, lo : i + 1, h // G]
    return out


def qkv(seed, B, T, H, K, D):
    ks = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(ks[0], (B, T, H, D)), jax.random.normal(ks[1], (B, T, K, D)),
            jax.random.normal(ks[2], (B, T, K, D)))


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("window", [None, 1, 5, 40])
def test_attend_matches_naive_reference(kv_heads, window):
    q, k, v = qkv(0, 2, 19, 4, kv_heads, 8)
    pos = jnp.arange(19)
    got = attend(q, k, v, q_pos_T=pos, k_pos_S=pos, window=window)
    np.testing.assert_allclose(got, naive_attention(q, k, v, window), atol=2e-5)


@pytest.mark.parametrize("window", [None, 7, 16, 100])
def test_blocked_sequence_attention_equals_dense(window):
    q, k, v = qkv(1, 1, 64, 4, 2, 8)
    pos = jnp.arange(64)
    dense = attend(q, k, v, q_pos_T=pos, k_pos_S=pos, window=window)
    blocked = attend_sequence(q, k, v, window=window, block=16)
    np.testing.assert_allclose(blocked, dense, atol=2e-6)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("window,chunk", [(24, 16), (16, 16), (5, 8), (40, 8)])
def test_chunked_sliding_equals_one_shot(kv_heads, window, chunk):
    """Chunks over a carried cache of the last `window` keys give one-shot sliding attention
    (RoPE in the local cache+chunk frame vs absolute positions)."""
    T = 48
    q, k, v = qkv(2, 2, T, 4, kv_heads, 8)
    pos = jnp.arange(T)
    one_shot = attend(apply_rope(q, pos, 1e4), apply_rope(k, pos, 1e4), v, q_pos_T=pos,
                      k_pos_S=pos, window=window)
    cache = KVCache.empty(2, window, kv_heads, 8, jnp.float32)
    outs = []
    for s in range(0, T, chunk):
        o, cache = attend_chunk(q[:, s : s + chunk], k[:, s : s + chunk], v[:, s : s + chunk],
                                cache, window=window, theta=1e4)
        outs.append(o)
    np.testing.assert_allclose(jnp.concatenate(outs, 1), one_shot, atol=5e-5)


def test_swa_equals_fa_when_window_covers_sequence():
    tokens = random_tokens(3, (2, 49), 61)
    fa = build_model(tiny(attention="full", suffix_len=0, prime=False), seed=5)
    swa_cover = build_model(tiny(attention="sliding", sliding_window=48, suffix_len=0,
                                 prime=False), seed=5)
    swa_short = build_model(tiny(attention="sliding", sliding_window=8, suffix_len=0,
                                 prime=False), seed=5)
    np.testing.assert_allclose(swa_cover(tokens[:, :-1]), fa(tokens[:, :-1]), atol=1e-5)
    diff = jnp.abs(swa_short(tokens[:, :-1]) - fa(tokens[:, :-1]))
    # identical inside the window, different beyond it
    np.testing.assert_allclose(diff[:, :8], 0, atol=1e-5)
    assert float(diff[:, 8:].max()) > 1e-3


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_model_chunked_swa_loss_equals_one_shot(kv_heads):
    model = build_model(tiny(num_kv_heads=kv_heads, suffix_len=0, prime=False), seed=1)
    tokens = random_tokens(4, (2, 65), 61)
    l1, a1 = pretrain_loss(model, tokens)
    l2, a2 = pretrain_loss(model, tokens, chunked=True)
    np.testing.assert_allclose(a2["token_nll"], a1["token_nll"], atol=1e-5)
    np.testing.assert_allclose(l2, l1, atol=1e-6)
