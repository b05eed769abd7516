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
from ttt_model.testing import assert_close, attention_terms, forward_terms, tolerance


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
    assert_close(got, naive_attention(q, k, v, window), terms=attention_terms(8, 19))


@pytest.mark.parametrize("window", [None, 7, 16, 100])
def test_blocked_sequence_attention_equals_dense(window):
    q, k, v = qkv(1, 1, 64, 4, 2, 8)
    pos = jnp.arange(64)
    dense = attend(q, k, v, q_pos_T=pos, k_pos_S=pos, window=window)
    blocked = attend_sequence(q, k, v, window=window, block=16)
    assert_close(blocked, dense, terms=attention_terms(8, 64))


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
    # + T: RoPE angles at absolute positions up to T carry T times the rounding of the
    # local frame's
    assert_close(jnp.concatenate(outs, 1), one_shot, terms=attention_terms(8, T) + T)


def test_swa_equals_fa_when_window_covers_sequence():
    tokens = random_tokens(3, (2, 49), 61)
    fa = build_model(tiny(attention="full", suffix_len=0, prime=False), seed=5)
    swa_cover = build_model(tiny(attention="sliding", sliding_window=48, suffix_len=0,
                                 prime=False), seed=5)
    swa_short = build_model(tiny(attention="sliding", sliding_window=8, suffix_len=0,
                                 prime=False), seed=5)
    logits_fa = fa(tokens[:, :-1])
    terms = forward_terms(fa.cfg, 48)
    assert_close(swa_cover(tokens[:, :-1]), logits_fa, terms=terms, statistical=True)
    short = swa_short(tokens[:, :-1])
    # identical inside the window, different beyond it (by far more than the bound)
    assert_close(short[:, :8], logits_fa[:, :8], terms=terms, statistical=True)
    scale = float(jnp.abs(logits_fa).max())
    assert float(jnp.abs(short - logits_fa)[:, 8:].max()) > 100 * tolerance(terms, True) * scale


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_model_chunked_swa_loss_equals_one_shot(kv_heads):
    model = build_model(tiny(num_kv_heads=kv_heads, suffix_len=0, prime=False), seed=1)
    tokens = random_tokens(4, (2, 65), 61)
    l1, a1 = pretrain_loss(model, tokens)
    l2, a2 = pretrain_loss(model, tokens, chunked=True)
    terms = forward_terms(model.cfg, 64)
    assert_close(a2["token_nll"], a1["token_nll"], terms=terms, statistical=True)
    assert_close(l2, l1, terms=terms, statistical=True)
