"""The train step: it learns, accumulates exactly, and compiles once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from conftest import random_tokens, tiny
from ttt_model.config import TrainConfig
from ttt_model.model import build_model
from ttt_model.optim import lr_schedule
from ttt_model.testing import assert_trees_close, gamma
from ttt_model.train import init_train_state, loss_fn_for, make_batch_grads, make_train_step


@pytest.mark.parametrize("mode", ["pretrain", "meta"])
def test_steps_lower_the_loss_and_compile_once(mode):
    cfg = tiny(num_layers=2, suffix_len=1)
    tc = TrainConfig(train_mode=mode, total_steps=8, warmup_steps=1, lr=1e-2,
                     ilr_warmup_steps=4)
    graphdef, state = init_train_state(build_model(cfg, 0), tc)
    step = make_train_step(graphdef, tc)
    tokens = random_tokens(0, (1, 2, 33), cfg.vocab_size)
    losses = []
    for _ in range(8):
        state, m = step(state, tokens)
        losses.append(float(m["loss"]))
        assert np.isfinite(losses[-1]) and m["token_nll"].shape == (32,)
    assert losses[-1] < losses[0] - 0.1, losses
    assert int(state.step) == 8
    assert step._cache_size() == 1
    if mode == "meta":
        assert float(m["inner_lr"]) == pytest.approx(1.0)


def _uneven_batch(cfg, B: int = 4, T: int = 32):
    """B windows with BOS targets and masked spans spread unevenly over sequences and chunks,
    so that every weighting of chunks, sequences and tokens gives a different loss."""
    tokens = np.array(random_tokens(1, (B, T + 1), cfg.vocab_size))
    bos = cfg.bos_token_id
    tokens[0, [3, 4, 5, 9]] = bos          # 4 BOS targets in sequence 0, chunk 0
    tokens[2, 30] = bos                    # 1 in sequence 2, chunk 1
    mask = np.ones((B, T), bool)
    mask[1, 16:29] = False                 # a document boundary: most of chunk 1 masked
    mask[3, :7] = False
    return jnp.asarray(tokens), jnp.asarray(mask)


@pytest.mark.parametrize(("average", "mode"), [
    ("chunk", "pretrain"), ("token", "pretrain"), ("chunk", "meta"),
    pytest.param("token", "meta", marks=pytest.mark.slow)])
def test_gradient_accumulation_equals_the_full_batch(mode, average):
    """What accumulation must preserve: the batch loss, its gradient, and so any update
    rule's step. (Parameters after an AdamW step are not compared: Adam divides by sqrt(v),
    which turns fp32 rounding of near-zero gradients into lr-sized differences.)"""
    cfg = tiny(num_layers=2, suffix_len=1)
    tokens_BxT1, mask_BxT = _uneven_batch(cfg)
    B, T = mask_BxT.shape
    params = nnx.state(build_model(cfg, 0), nnx.Param)
    graphdef = nnx.graphdef(build_model(cfg, 0))
    out = {}
    for accum in (1, 4):
        tc = TrainConfig(train_mode=mode, grad_accum=accum, loss_average=average)
        grads = jax.jit(make_batch_grads(graphdef, tc))
        loss, g, aux = grads(params, tokens_BxT1.reshape(accum, B // accum, T + 1),
                             mask_BxT.reshape(accum, B // accum, T), 0)
        out[accum] = (loss, g)
        assert int(aux["n_tokens"]) == int(mask_BxT.sum()) - 5
    # the reference: the loss of the whole batch, differentiated in one go
    tc = TrainConfig(train_mode=mode, loss_average=average)
    ref_loss, ref_g = jax.jit(jax.value_and_grad(
        lambda p: loss_fn_for(tc)(nnx.merge(graphdef, p), tokens_BxT1, mask_BxT, 0)[0]))(params)
    terms = B * T * max(cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size)
    lr = 0.1
    for accum, (loss, g) in out.items():
        np.testing.assert_allclose(loss, ref_loss, rtol=gamma(B * T))
        assert_trees_close(g, ref_g, terms=terms, what=f"grad accum={accum} ")
        sgd = jax.tree.map(lambda p, d: p - lr * d, params, g)
        sgd_ref = jax.tree.map(lambda p, d: p - lr * d, params, ref_g)
        assert_trees_close(jax.tree.map(lambda a, b: (a - b) / lr, sgd, params),
                           jax.tree.map(lambda a, b: (a - b) / lr, sgd_ref, params),
                           terms=terms, what=f"SGD step accum={accum} ")


def test_train_step_uses_the_accumulated_gradient():
    """The compiled step reports the accumulated loss and the norm of its gradient."""
    cfg = tiny(num_layers=2, suffix_len=1)
    tokens_BxT1, mask_BxT = _uneven_batch(cfg)
    tc = TrainConfig(train_mode="meta", total_steps=4, warmup_steps=0, grad_accum=2)
    graphdef, state = init_train_state(build_model(cfg, 0), tc)
    loss, g, _ = jax.jit(make_batch_grads(graphdef, tc))(
        state.params, tokens_BxT1.reshape(2, 2, -1), mask_BxT.reshape(2, 2, -1), 0)
    _, m = make_train_step(graphdef, tc)(state, tokens_BxT1.reshape(2, 2, -1),
                                          mask_BxT.reshape(2, 2, -1))
    np.testing.assert_allclose(m["loss"], loss, rtol=gamma(64))
    np.testing.assert_allclose(m["grad_norm"], optax.tree.norm(g), rtol=gamma(64))


def test_lr_schedule_warms_up_then_decays_to_end_lr():
    s = lr_schedule(TrainConfig(lr=1e-3, end_lr=1e-5, warmup_steps=10, total_steps=110))
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(5e-4)
    assert float(s(10)) == pytest.approx(1e-3)
    assert float(s(60)) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-4)
    assert float(s(110)) == pytest.approx(1e-5)


def test_lr_schedule_with_init_lr_and_separate_decay_horizon():
    s = lr_schedule(TrainConfig(lr=1e-3, init_lr=1e-4, end_lr=1e-5, warmup_steps=10,
                                total_steps=20, decay_steps=110))
    assert float(s(0)) == pytest.approx(1e-4)
    assert float(s(60)) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-4)
    assert float(s(500)) == pytest.approx(1e-5)
