"""The blocked logits head: per-token NLL `block` positions at a time equals the NLL of
the whole [T, vocab] logits, whether or not `block` divides T; the block is the model's
own `logits_block_size`, not its TTT chunk size."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ttt_model.losses as losses
from conftest import random_tokens, tiny
from ttt_model.losses import head_nll, pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import assert_close


def _reference_nll(logits_BxTxV: np.ndarray, targets_BxT: np.ndarray) -> np.ndarray:
    """log-sum-exp minus the target logit, in float64 numpy."""
    z = logits_BxTxV.astype(np.float64)
    top = z.max(-1, keepdims=True)
    lse = np.log(np.exp(z - top).sum(-1)) + top[..., 0]
    return lse - np.take_along_axis(z, targets_BxT[..., None], -1)[..., 0]


@pytest.mark.parametrize("block", [8, 12, 40, 64])  # divides T, does not, = T, > T
def test_blocked_head_equals_the_whole_logits(block):
    model = build_model(tiny(), seed=0)
    cfg = model.cfg
    B, T = 2, 40
    h = jax.random.normal(jax.random.key(1), (B, T, cfg.hidden_size))
    targets = jnp.asarray(random_tokens(2, (B, T), cfg.vocab_size))
    got = np.asarray(head_nll(model, h, targets, block))
    ref = _reference_nll(np.asarray(model.logits(h)), np.asarray(targets))
    assert got.shape == (B, T)
    assert_close(got, ref, terms=cfg.hidden_size + cfg.vocab_size)
    np.testing.assert_array_equal(np.isfinite(got), True)
    # below T the head runs block by block (a scan), never the whole [T, vocab] at once
    jaxpr = str(jax.make_jaxpr(lambda h: head_nll(model, h, targets, block))(h))
    assert ("scan" in jaxpr) == (block < T)


def test_the_loss_uses_logits_block_size_not_the_chunk_size(monkeypatch):
    cfg = tiny()
    odd = dataclasses.replace(cfg, logits_block_size=cfg.mini_batch_size + 3)
    x = jnp.asarray(random_tokens(3, (2, 41), cfg.vocab_size))
    blocks = []
    real = losses.head_nll
    monkeypatch.setattr(losses, "head_nll",
                        lambda m, h, t, block: blocks.append(block) or real(m, h, t, block))
    loss_odd, _ = pretrain_loss(build_model(odd, seed=0), x)
    loss, _ = pretrain_loss(build_model(cfg, seed=0), x)
    assert blocks == [cfg.mini_batch_size + 3, cfg.logits_block_size]
    assert_close(np.asarray(loss_odd), np.asarray(loss), terms=cfg.hidden_size + cfg.vocab_size)
