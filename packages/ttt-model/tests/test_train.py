"""The train step: it learns, accumulates exactly, and compiles once."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import random_tokens, tiny
from ttt_model.config import TrainConfig
from ttt_model.model import build_model
from ttt_model.optim import lr_schedule
from ttt_model.train import init_train_state, make_train_step


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


def test_gradient_accumulation_equals_the_full_batch():
    cfg = tiny(num_layers=2, suffix_len=1)
    tokens = random_tokens(1, (2, 33), cfg.vocab_size)
    out = {}
    for accum in (1, 2):
        tc = TrainConfig(train_mode="meta", total_steps=4, warmup_steps=0, grad_accum=accum)
        graphdef, state = init_train_state(build_model(cfg, 0), tc)
        state, m = make_train_step(graphdef, tc)(state, tokens.reshape(accum, 2 // accum, 33))
        out[accum] = (m, state.params)
    (m1, p1), (m2, p2) = out[1], out[2]
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-6)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)


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
