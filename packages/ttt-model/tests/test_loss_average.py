"""The outer loss averages per-token NLL as the official code does, and "token" as it says.

Both are rebuilt here by hand from the per-token NLL and the counted-target mask (BOS
targets and the loss mask), as values in float64 numpy and as differentiable jnp written
with explicit loops, and compared with the library's loss and gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import random_tokens, tiny
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import assert_trees_close, gamma
from ttt_model.ttt import meta_loss

B, T = 3, 32


def _batch(cfg):
    tokens = np.array(random_tokens(7, (B, T + 1), cfg.vocab_size))
    tokens[0, [2, 3, 4]] = cfg.bos_token_id   # 3 BOS targets, all in sequence 0's chunk 0
    mask = np.ones((B, T), bool)
    mask[2, 4:] = False                        # sequence 2 ends early (packed documents)
    mask[1, 17:] = False                       # and so does sequence 1, in its chunk 1
    return jnp.asarray(tokens), jnp.asarray(mask)


def _counted(tokens, mask, bos):
    return np.asarray(mask) & (np.asarray(tokens)[:, 1:] != bos)


def _by_hand(nll, counted, group: int | None, average: str):
    """Differentiable hand-built batch loss: loops over sequences and groups (chunks)."""
    if average == "token":
        total = sum(nll[i, t] for i in range(B) for t in range(T) if counted[i, t])
        return total / counted.sum()
    g = T if group is None else group
    seq_losses = []
    for i in range(B):
        chunk_losses = []
        for c in range(T // g):
            idx = [t for t in range(c * g, (c + 1) * g) if counted[i, t]]
            chunk_losses.append(sum(nll[i, t] for t in idx) / len(idx) if idx else 0.0)
        seq_losses.append(sum(chunk_losses) / len(chunk_losses))
    return sum(seq_losses) / B


CASES = {
    "pretrain": (lambda m, tok, mask, avg: pretrain_loss(m, tok, mask, average=avg), None),
    "meta": (lambda m, tok, mask, avg: meta_loss(m, tok, mask, average=avg), 16),
}


@pytest.mark.parametrize("mode", list(CASES))
@pytest.mark.parametrize("average", ["chunk", "token"])
def test_loss_and_gradient_equal_the_hand_built_average(mode, average):
    cfg = tiny(num_layers=2, suffix_len=1)
    assert cfg.mini_batch_size == 16
    loss_of, group = CASES[mode]
    tokens, mask = _batch(cfg)
    counted = _counted(tokens, mask, cfg.bos_token_id)
    model = build_model(cfg, 0)
    graphdef, params = nnx.split(model, nnx.Param)

    def lib(p):
        return loss_of(nnx.merge(graphdef, p), tokens, mask, average)

    def hand(p):
        nll = lib(p)[1]["token_nll"]
        return _by_hand(nll, counted, group, average)

    (loss, aux), g = jax.jit(jax.value_and_grad(lib, has_aux=True))(params)
    g_hand = jax.jit(jax.grad(hand))(params)
    nll64 = np.asarray(aux["token_nll"], np.float64)
    want = _by_hand(nll64, counted, group, average)
    np.testing.assert_allclose(float(loss), want, rtol=gamma(B * T))
    terms = B * T * max(cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size)
    assert_trees_close(g, g_hand, terms=terms, what=f"{mode}/{average} gradient ")


@pytest.mark.parametrize("mode", list(CASES))
def test_the_two_averages_differ_when_masks_are_uneven(mode):
    """So the test above can tell them apart: on this batch the weighting matters."""
    cfg = tiny(num_layers=2, suffix_len=1)
    loss_of, group = CASES[mode]
    tokens, mask = _batch(cfg)
    model = build_model(cfg, 0)
    chunk = float(loss_of(model, tokens, mask, "chunk")[0])
    token = float(loss_of(model, tokens, mask, "token")[0])
    assert abs(chunk - token) > 100 * gamma(B * T) * abs(token), (chunk, token)
    even = jnp.ones_like(mask)
    tokens_even = jnp.where(tokens == cfg.bos_token_id, 2, tokens)
    np.testing.assert_allclose(float(loss_of(model, tokens_even, even, "chunk")[0]),
                               float(loss_of(model, tokens_even, even, "token")[0]),
                               rtol=gamma(B * T))
