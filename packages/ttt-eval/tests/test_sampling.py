"""Sampling: greedy is the argmax; top-k and top-p keep exactly the tokens they should; the
sampled frequencies follow the filtered softmax; a seed reproduces a draw."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ttt_eval.errors import EvalError
from ttt_eval.sampling import Sampling, filtered_logits, next_tokens

LOGITS = jnp.log(jnp.asarray([[0.5, 0.25, 0.15, 0.1], [0.02, 0.08, 0.1, 0.8]]))


def test_greedy_is_the_argmax():
    got = next_tokens(LOGITS, jax.random.key(0), Sampling())
    assert got.tolist() == [0, 3]
    assert next_tokens(LOGITS, jax.random.key(1), Sampling(1.0, top_k=1)).tolist() == [0, 3]


def test_top_k_and_top_p_keep_the_right_tokens():
    kept = np.isfinite(np.asarray(filtered_logits(LOGITS, Sampling(1.0, top_k=2))))
    assert kept.tolist() == [[True, True, False, False], [False, False, True, True]]
    # row 0: masses 0.5, 0.25 reach 0.75 >= 0.7 -> keep 2; row 1: 0.8 >= 0.7 -> keep 1
    kept = np.isfinite(np.asarray(filtered_logits(LOGITS, Sampling(1.0, top_p=0.7))))
    assert kept.tolist() == [[True, True, False, False], [False, False, False, True]]
    kept = np.isfinite(np.asarray(filtered_logits(LOGITS, Sampling(1.0, top_p=1.0))))
    assert kept.all()


def test_sampled_frequencies_follow_the_filtered_softmax():
    n = 20000
    keys = jax.random.split(jax.random.key(3), n)
    draw = jax.jit(jax.vmap(lambda k: next_tokens(LOGITS, k, Sampling(1.0, top_k=3))))
    counts = np.stack([np.bincount(np.asarray(draw(keys))[:, r], minlength=4)
                       for r in range(2)])
    p = np.array([[0.5, 0.25, 0.15, 0.0], [0.0, 0.08, 0.1, 0.8]])  # top 3 of each row,
    p = p / p.sum(1, keepdims=True)  # renormalised
    # each count is binomial(n, p): 5 standard deviations
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts - n * p) <= 5 * sd + 1e-9), (counts, n * p)
    hot = next_tokens(LOGITS, jax.random.key(5), Sampling(temperature=1e-4, seed=0))
    assert hot.tolist() == [0, 3]  # a tiny temperature is (almost surely) greedy


def test_a_seed_reproduces_a_draw_and_bad_settings_are_refused():
    s = Sampling(0.8, top_k=3, top_p=0.9)
    a = next_tokens(jnp.tile(LOGITS, (8, 1)), jax.random.key(7), s)
    b = next_tokens(jnp.tile(LOGITS, (8, 1)), jax.random.key(7), s)
    assert a.tolist() == b.tolist()
    for kw in ({"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(EvalError):
            Sampling(**{"temperature": 1.0, **kw})
