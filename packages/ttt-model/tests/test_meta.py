"""The TTT-E2E inner loop and meta loss: reduction to SWA, learning, and the meta gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import random_tokens, tiny
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import (
    assert_close,
    assert_trees_close,
    forward_terms,
    gamma,
    typical_error,
)
from ttt_model.ttt import (
    InnerSpecError,
    inner_lr_at,
    meta_loss,
    split_inner,
    suffix_chunk_step,
)


@pytest.fixture(scope="module")
def model():
    return build_model(tiny(), seed=0)


def test_meta_loss_with_zero_inner_lr_equals_swa_pretrain(model):
    tokens = random_tokens(1, (2, 65), 61)
    swa, a_swa = pretrain_loss(model, tokens)
    meta, a_meta = meta_loss(model, tokens, inner_lr=0.0)
    terms = forward_terms(model.cfg, 64)
    assert_close(a_meta["token_nll"], a_swa["token_nll"], terms=terms, statistical=True)
    assert_close(meta, swa, terms=terms, statistical=True)
    _, a_learned = meta_loss(model, tokens, inner_lr=1.0)
    # the inner loop does something, far beyond the rounding bound
    effect = jnp.abs(a_learned["token_nll"] - a_meta["token_nll"]).max()
    assert float(effect) > 100 * typical_error(terms) * float(a_swa["token_nll"].max())


def test_one_inner_step_lowers_the_loss_of_that_chunk(model):
    graphdef, W0, rest = split_inner(model, ("**.suffix_blocks.feed_forward_prime.**",))
    tokens = random_tokens(2, (17,), 61)
    h = model.embed_tokens(tokens[None, :16])
    for blk in model.prefix_blocks:
        h = blk(h)
    caches = model.empty_caches(1, "suffix")
    mask = jnp.ones(16)
    step = jax.jit(lambda W: suffix_chunk_step(graphdef, rest, W, caches, h, tokens[1:], mask,
                                               1.0, 1.0))
    W1, _, nll0 = step(W0)
    _, _, nll1 = step(W1)
    assert float(nll1.mean()) < float(nll0.mean()) - 1e-3


def test_inner_step_helps_a_repeated_copy_of_a_chunk(model):
    """Sequence = chunk, chunk: with TTT the second copy is predicted better than without."""
    c = random_tokens(3, (1, 16), 61)
    tokens = jnp.concatenate([c, c, c[:, :1]], axis=1)  # T+1 = 33, window 24 < 32
    _, no_ttt = meta_loss(model, tokens, inner_lr=0.0)
    _, ttt = meta_loss(model, tokens, inner_lr=1.0)
    assert_close(ttt["token_nll"][:, :16], no_ttt["token_nll"][:, :16],
                 terms=forward_terms(model.cfg, 32), statistical=True)
    assert float(ttt["token_nll"][:, 16:].mean()) < float(no_ttt["token_nll"][:, 16:].mean())


def test_bos_targets_are_not_counted(model):
    tokens = random_tokens(4, (2, 33), 61).at[:, 10].set(0).at[1, 20].set(0)
    loss, aux = meta_loss(model, tokens, inner_lr=1.0, average="token")
    assert int(aux["n_tokens"]) == 2 * 32 - 3
    nll = np.asarray(aux["token_nll"])
    keep = np.asarray(tokens[:, 1:]) != 0
    np.testing.assert_allclose(loss, nll[keep].mean(), rtol=gamma(keep.size))


@pytest.mark.slow
def test_remat_grouping_does_not_change_loss_or_gradient(model):
    tokens = random_tokens(5, (1, 33), 61)
    graphdef, params = nnx.split(model)

    def f(p, r):
        return meta_loss(nnx.merge(graphdef, p), tokens, remat_every=r)[0]

    vg = jax.jit(jax.value_and_grad(f), static_argnums=1)
    (l1, g1), (l2, g2) = (vg(params, r) for r in (1, 2))
    cfg = model.cfg
    assert_close(l2, l1, terms=forward_terms(cfg, 32), statistical=True)
    assert_trees_close(g2, g1, terms=32 * max(cfg.hidden_size, cfg.intermediate_size,
                                              cfg.vocab_size), what="remat 2 vs 1 ")


def test_inner_lr_warmup():
    assert float(inner_lr_at(0, 1.0, 0.1, 10)) == pytest.approx(0.1)
    assert float(inner_lr_at(5, 1.0, 0.1, 10)) == pytest.approx(0.55)
    assert float(inner_lr_at(50, 2.0, 0.1, 10)) == pytest.approx(2.0)
    assert float(inner_lr_at(3, 1.0, 0.1, 0)) == pytest.approx(1.0)


def test_bad_inner_specs_are_refused(model):
    with pytest.raises(InnerSpecError, match="selects no parameter"):
        split_inner(model, ("**.no_such_module.**",))
    with pytest.raises(InnerSpecError, match="outside the suffix"):
        split_inner(model, ("prefix_blocks.*.feed_forward.**",))


def test_meta_gradient_matches_finite_differences_and_needs_second_order():
    """float64: directional derivatives of the meta loss equal central differences, and the
    gradient with the inner update stopped is measurably different."""
    with jax.enable_x64(True):
        cfg = tiny(vocab_size=13, hidden_size=8, intermediate_size=8, num_layers=2,
                   num_heads=2, num_kv_heads=1, sliding_window=6, mini_batch_size=4,
                   suffix_len=1, param_dtype="float64", compute_dtype="float64",
                   initializer_range=0.3)
        model = build_model(cfg, seed=3)
        tokens = random_tokens(6, (2, 13), 13)
        graphdef, params = nnx.split(model)
        flat, unravel = jax.flatten_util.ravel_pytree(params)

        def loss(x, stop=False):
            m = nnx.merge(graphdef, unravel(x))
            return meta_loss(m, tokens, inner_lr=1.0, inner_clip=1e6, stop_inner_grad=stop)[0]

        loss_j = jax.jit(loss, static_argnums=1)
        grad = jax.jit(jax.grad(loss), static_argnums=1)
        g, g_stop = grad(flat), grad(flat, True)
        eps = 1e-7  # truncation error ~ eps^2 (checked: 1e-5 -> 4e-5 rel, 1e-6 -> 4e-7)
        dirs = [jax.random.normal(jax.random.key(i), flat.shape, jnp.float64) for i in range(3)]
        # and one direction that moves only the inner weights' initial value W(0)
        only_w = jax.tree_util.tree_map_with_path(
            lambda path, x: jnp.ones_like(x) * ("feed_forward_prime" in jax.tree_util.keystr(path)),
            params)
        w_dir = jax.flatten_util.ravel_pytree(only_w)[0] * dirs[0]
        assert 0 < int((w_dir != 0).sum()) < flat.size
        dirs.append(w_dir)
        for v in dirs:
            fd = (loss_j(flat + eps * v) - loss_j(flat - eps * v)) / (2 * eps)
            np.testing.assert_allclose(g @ v, fd, rtol=1e-6, atol=1e-9)
        rel = jnp.linalg.norm(g - g_stop) / jnp.linalg.norm(g)
        assert float(rel) > 1e-3, f"second-order term is negligible ({float(rel):.2e})"


def test_sequence_not_a_multiple_of_the_chunk_is_refused(model):
    with pytest.raises(ValueError, match="not a multiple of mini_batch_size 16"):
        meta_loss(model, random_tokens(0, (1, 30), 61))


def test_bfloat16_compute_tracks_float32():
    tokens = random_tokens(8, (2, 33), 61)
    l32, _ = meta_loss(build_model(tiny(), seed=4), tokens)
    l16, aux = meta_loss(build_model(tiny(compute_dtype="bfloat16"), seed=4), tokens)
    assert aux["token_nll"].dtype == jnp.float32
    assert abs(float(l16) - float(l32)) < 0.05 * float(l32)


def test_a_fully_masked_chunk_keeps_the_meta_gradient_finite(model):
    """Packed data masks whole chunks (a document ends early): the inner gradient of such a
    chunk is 0, and the clip's norm must not turn that into a NaN outer gradient."""
    tokens = random_tokens(7, (2, 33), 61)
    mask = jnp.ones((2, 32), bool).at[1, 16:].set(False)
    graphdef, params = nnx.split(model)
    g = jax.jit(jax.grad(lambda p: meta_loss(nnx.merge(graphdef, p), tokens, mask)[0]))(params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
    _, aux = meta_loss(model, tokens, mask)
    assert int(aux["n_tokens"]) == 2 * 32 - 16
