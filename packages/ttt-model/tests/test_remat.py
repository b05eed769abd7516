"""`ModelConfig.remat_block`: each block's forward rematerialised in the training losses.

Rematerialisation must leave the loss and its gradients as they are (up to float rounding)
and shrink what the backward pass keeps; an unknown policy is refused in one line.
"""

from __future__ import annotations

import jax
import pytest
from flax import nnx

from conftest import random_tokens, tiny
from ttt_model.config import REMAT_POLICIES, ConfigError, tiny_config
from ttt_model.layers import run_block
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import assert_close, assert_trees_close, forward_terms, ttt_terms
from ttt_model.ttt import meta_loss

REMAT = "nothing_saveable"


def _with_and_without(cfg, loss, field: str = "remat_block"):
    """The loss as a function of the parameters, for the model without and with remat
    (the same parameters: remat changes the graph, never the weights)."""
    params = nnx.split(build_model(cfg, seed=0))[1]
    fns = []
    for r in ("", REMAT):
        graphdef = nnx.split(build_model(cfg.replace(**{field: r}), seed=0))[0]
        fns.append(lambda p, g=graphdef: loss(nnx.merge(g, p)))
    return params, fns


def _remat_count(fn, *args) -> int:
    """How many rematerialised calls the traced `fn` holds, sub-jaxprs included."""
    remat_p = jax.make_jaxpr(jax.checkpoint(lambda x: x))(1.0).jaxpr.eqns[0].primitive

    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            n += eqn.primitive is remat_p
            for v in eqn.params.values():
                for sub in v if isinstance(v, list | tuple) else (v,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        n += count(inner)
        return n

    return count(jax.make_jaxpr(fn)(*args).jaxpr)


# (a) the numbers do not move. Remat recomputes the same operations in the same order, so
# any difference comes from XLA fusing or ordering the recomputed sums differently; fp32
# rounding then bounds it (ttt_model.testing): the loss by the forward pass's longest chain
# of sums, each gradient by T times the widest contraction (as test_meta does for the
# other remat, remat_every). In practice the two agree far inside that bound.

@pytest.mark.parametrize("chunked", [False, True], ids=["one-shot-fa", "chunked-swa"])
def test_remat_keeps_pretrain_loss_and_gradients(chunked):
    cfg = (tiny(suffix_len=0, prime=False) if chunked else
           tiny(attention="full", suffix_len=0, prime=False))
    tokens = random_tokens(0, (2, 33), cfg.vocab_size)
    params, (plain, remat) = _with_and_without(
        cfg, lambda m: pretrain_loss(m, tokens, chunked=chunked)[0])
    assert _remat_count(remat, params) > _remat_count(plain, params)
    (l0, g0), (l1, g1) = (jax.jit(jax.value_and_grad(f))(params) for f in (plain, remat))
    assert_close(l1, l0, terms=forward_terms(cfg, 32), statistical=True)
    assert_trees_close(g1, g0, terms=32 * max(cfg.hidden_size, cfg.intermediate_size,
                                              cfg.vocab_size), what="remat vs none ")


@pytest.mark.parametrize("field", ["remat_block", "remat_prefix_block"])
def test_remat_keeps_meta_loss_and_gradients(field):
    """The meta loss rematerialises each suffix block inside the inner loop (where the
    official code applies remat_block), or each prefix block (remat_prefix_block); its
    gradients go through the inner updates."""
    cfg = tiny()
    tokens = random_tokens(1, (1, 33), cfg.vocab_size)
    params, (plain, remat) = _with_and_without(cfg, lambda m: meta_loss(m, tokens)[0], field)
    assert _remat_count(remat, params) > _remat_count(plain, params)
    (l0, g0), (l1, g1) = (jax.jit(jax.value_and_grad(f))(params) for f in (plain, remat))
    assert_close(l1, l0, terms=ttt_terms(cfg, 32), statistical=True)
    assert_trees_close(g1, g0, terms=32 * max(cfg.hidden_size, cfg.intermediate_size,
                                              cfg.vocab_size), what="remat vs none ")


# (b) memory. XLA's CPU compiler drops the optimisation barriers that pin a recomputation
# next to its use, so in straight-line code (the one-shot loss's loop over blocks) it is
# free to recompute early and the compiled temp size does not move; inside a loop (the
# chunked loss scans over chunks) it cannot, and the temp size falls. What remat controls
# everywhere is what the forward pass keeps for the backward pass: the residuals, which
# are the outputs of a compiled `jax.vjp` forward.

def test_remat_shrinks_what_the_backward_pass_keeps():
    cfg = tiny_config("fa")  # hidden 64, intermediate 128, 4 layers
    tokens = random_tokens(2, (2, 513), cfg.vocab_size)
    params, fns = _with_and_without(cfg, lambda m: pretrain_loss(m, tokens)[0])
    plain, remat = (jax.jit(lambda p, f=f: jax.vjp(f, p)[1]).lower(params).compile()
                    .memory_analysis().output_size_in_bytes for f in fns)
    assert remat < plain / 2, (plain, remat)


def test_remat_shrinks_compiled_temp_memory_of_the_chunked_loss():
    cfg = tiny_config("swa", mini_batch_size=64, sliding_window=64, attention_block_size=64)
    tokens = random_tokens(3, (2, 513), cfg.vocab_size)
    # one remat group over all 8 chunks: the scan keeps every chunk's residuals
    params, fns = _with_and_without(
        cfg, lambda m: pretrain_loss(m, tokens, chunked=True, remat_every=8)[0])
    plain, remat = (jax.jit(jax.grad(f)).lower(params).compile()
                    .memory_analysis().temp_size_in_bytes for f in fns)
    assert remat < plain / 2, (plain, remat)


# (c) an unknown policy

def test_an_unknown_policy_is_refused_in_one_line():
    with pytest.raises(ConfigError) as e:
        tiny(remat_block="save_everything")
    msg = str(e.value)
    assert "remat_block" in msg and "'save_everything'" in msg and "\n" not in msg
    assert all(name in msg for name in REMAT_POLICIES)
    blk = build_model(tiny(), seed=0).prefix_blocks[0]
    with pytest.raises(ValueError, match="remat_block"):
        run_block(blk, jax.numpy.zeros((1, 4, 32)), remat="save_everything")


def test_every_known_policy_is_a_jax_policy():
    for name in REMAT_POLICIES:
        assert callable(getattr(jax.checkpoint_policies, name))
        assert tiny(remat_block=name).remat_block == name
