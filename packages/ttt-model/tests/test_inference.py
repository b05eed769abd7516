"""Prefill and decoding reproduce the meta loss token for token, in constant memory."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest

from conftest import random_tokens, tiny
from ttt_model.costs import compiled_costs
from ttt_model.inference import TTTRunner
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import assert_close, forward_terms, ttt_terms
from ttt_model.ttt import meta_loss


@pytest.fixture(scope="module")
def model():
    return build_model(tiny(), seed=2)



@pytest.fixture(scope="module")
def tokens():
    return random_tokens(7, (2, 65), 61).at[0, 30].set(0)  # one BOS target inside


def test_prefill_nll_equals_meta_loss_nll(model, tokens):
    _, meta = meta_loss(model, tokens, inner_lr=1.0)
    _, nll = jax.jit(TTTRunner(model).prefill)(tokens)
    assert_close(nll, meta["token_nll"], terms=ttt_terms(model.cfg, 64), statistical=True)
    # the inner loop changes NLLs by far more than that bound (it is not skipped)
    _, no_ttt = meta_loss(model, tokens, inner_lr=0.0)
    assert float(jnp.abs(no_ttt["token_nll"] - meta["token_nll"]).max()) > 0.1


def test_prefill_then_decode_equals_meta_loss(model, tokens):
    """Prefill a prompt ending mid-chunk, then feed the rest one token at a time: every
    prediction, including those after inner steps taken while decoding, matches."""
    _, meta = meta_loss(model, tokens, inner_lr=1.0)
    runner = TTTRunner(model)
    state, nll_prompt = jax.jit(runner.prefill)(tokens[:, :21])
    step = jax.jit(runner.decode_step)
    got = [nll_prompt]
    for j in range(21, tokens.shape[1]):
        logits = state.seq.last_logits_V
        got.append(jax.nn.logsumexp(logits, -1)[:, None]
                   - jnp.take_along_axis(logits, tokens[:, j : j + 1], -1))
        state = step(state, tokens[:, j])
    assert_close(jnp.concatenate(got, 1), meta["token_nll"], terms=ttt_terms(model.cfg, 64),
                 statistical=True)
    assert step._cache_size() == 1
    assert state.position.tolist() == [tokens.shape[1]] * 2  # per sequence


def test_runner_without_ttt_equals_chunked_swa(model, tokens):
    """Prefill and then decoding, with the inner weights frozen (no inner weights to
    carry), reproduce the one-shot sliding-window pass."""
    _, swa = pretrain_loss(model, tokens, chunked=True)
    runner = TTTRunner(model, ttt=False)
    _, nll = jax.jit(runner.prefill)(tokens)
    assert_close(nll, swa["token_nll"], terms=forward_terms(model.cfg, 64), statistical=True)
    state, _ = jax.jit(runner.prefill)(tokens[:, :40])
    got = []
    for j in range(40, tokens.shape[1]):
        logits = runner.next_logits(state)
        got.append(jax.nn.logsumexp(logits, -1) - logits[jnp.arange(2), tokens[:, j]])
        state = runner.decode_step(state, tokens[:, j])
    assert_close(jnp.stack(got, 1), swa["token_nll"][:, 39:],
                 terms=forward_terms(model.cfg, 64), statistical=True)


@pytest.mark.slow
def test_prefill_memory_does_not_grow_with_length(model):
    """XLA's compiled memory analysis at 4 prompt lengths: temp memory is constant, while
    the meta loss (which keeps the whole sequence) grows - so the measure can tell."""
    runner = TTTRunner(model)
    prefill_sum = functools.partial(runner.prefill, per_token=False)
    b = model.cfg.mini_batch_size
    temps, meta_temps = [], []
    for n_chunks in (4, 8, 16, 32):
        spec = jax.ShapeDtypeStruct((1, n_chunks * b + 1), jnp.int32)
        temps.append(compiled_costs(prefill_sum, spec).temp_bytes)
        meta_temps.append(compiled_costs(lambda t: meta_loss(model, t)[0], spec).temp_bytes)
    assert len(set(temps)) == 1, temps
    assert meta_temps == sorted(meta_temps), meta_temps
    # at least the extra chunks' hidden states (28 chunks x b x hidden x 4 bytes)
    assert meta_temps[-1] - meta_temps[0] > 28 * b * model.cfg.hidden_size * 4, meta_temps


def test_prefill_of_a_full_attention_model_is_refused():
    fa = build_model(tiny(attention="full", suffix_len=0, prime=False), seed=0)
    with pytest.raises(ValueError, match="layer 0 uses full attention"):
        TTTRunner(fa, ttt=False).prefill(random_tokens(0, (1, 20), 61))


@pytest.mark.parametrize("n", [1, 9, 16])
def test_prompts_of_at_most_one_chunk_are_all_pending(model, tokens, n):
    """No inner step can happen yet: prefill equals the plain forward pass."""
    state, nll = jax.jit(TTTRunner(model).prefill)(tokens[:, :n])
    _, swa = pretrain_loss(model, tokens[:, : n + 1])
    assert nll.shape == (2, n - 1) and state.n_pending.tolist() == [n, n]
    terms = forward_terms(model.cfg, n)
    assert_close(nll, swa["token_nll"][:, : n - 1], terms=terms, statistical=True)
    assert_close(state.seq.last_logits_V, model(tokens[:, :n])[:, -1], terms=terms,
                 statistical=True)
