"""Decoding (FA, SWA, mixed, TTT-E2E) reproduces the one-shot and meta losses token for token,
in place, for batches of prompts of different lengths, compiled once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params

from conftest import random_tokens, tiny
from ttt_model.attention import (
    RingCache,
    attend,
    attend_token,
    exact_rope_angles,
    rope_angles,
    rotate,
)
from ttt_model.inference import TTTRunner, decoder_for
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import (
    assert_close,
    attention_terms,
    forward_terms,
    tolerance,
    ttt_terms,
)
from ttt_model.ttt import meta_loss

PARITY = 1e-4  # the relative decode parity asked for in fp32; every bound below is under it


def jitted(decoder):
    return jax.jit(decoder.prefill), jax.jit(decoder.decode_step, donate_argnums=0)


def teacher_forced(decoder, fns, tokens_BxT, n_prompt: int, lengths_B=None):
    """Prefill the first n_prompt tokens (row i: lengths_B[i] of them), then feed each row
    its own next tokens: (prompt NLL, NLL of every later target from the decoded logits)."""
    prefill, step = fns
    state, nll = prefill(tokens_BxT[:, :n_prompt], lengths_B)
    lengths = np.full(tokens_BxT.shape[0], n_prompt) if lengths_B is None else lengths_B
    rows = np.arange(tokens_BxT.shape[0])
    got = []
    for j in range(tokens_BxT.shape[1] - int(max(lengths))):
        logits = decoder.next_logits(state)
        tgt = tokens_BxT[rows, np.asarray(lengths) + j]
        got.append(jax.nn.logsumexp(logits, -1)
                   - jnp.take_along_axis(logits, tgt[:, None], -1)[:, 0])
        state = step(state, tgt)
    return nll, jnp.stack(got, 1)


def chained_terms(cfg, T: int) -> int:
    """ttt_terms with attention sums of at most window + b keys (masked keys add exact
    zeros), for configs whose window is far shorter than the sequence."""
    return ttt_terms(cfg, T) // forward_terms(cfg, T) * forward_terms(
        cfg, cfg.sliding_window + cfg.mini_batch_size)


CONFIGS = {  # window 8: prompts and continuations wrap the sliding rings many times
    "full": dict(attention="full"),
    "sliding": dict(attention="sliding", sliding_window=8),
    "mixed": dict(attention_kinds=("sliding", "full", "sliding"), sliding_window=8),
}


@pytest.mark.parametrize("kind", CONFIGS)
def test_teacher_forced_decoding_equals_one_shot(kind):
    model = build_model(tiny(suffix_len=0, prime=False, **CONFIGS[kind]), seed=1)
    tokens = random_tokens(3, (2, 97), 61)
    _, ref = pretrain_loss(model, tokens)
    decoder = decoder_for(model, max_len=128)
    fns = jitted(decoder)
    nll, decoded = teacher_forced(decoder, fns, tokens, 21)
    terms = forward_terms(model.cfg, 96)
    assert tolerance(terms, statistical=True) < PARITY
    assert_close(jnp.concatenate([nll, decoded], 1), ref["token_nll"], terms=terms,
                 statistical=True)
    assert fns[1]._cache_size() == 1
    # the attention kind matters far more than the bound: the check can tell them apart
    other = build_model(tiny(suffix_len=0, prime=False, attention="sliding" if kind == "full"
                             else "full", sliding_window=8), seed=1)
    scale = float(jnp.abs(ref["token_nll"]).max())
    diff = jnp.abs(pretrain_loss(other, tokens)[1]["token_nll"] - ref["token_nll"]).max()
    assert float(diff) > 100 * tolerance(terms, statistical=True) * scale


def test_ttt_decoding_across_ring_wraps_and_chunks_equals_meta_loss():
    """b = window = 8: the prompt ends mid-chunk, six inner steps are taken while decoding,
    the prefix rings (8 slots) wrap six times and the suffix rings (16) three times."""
    model = build_model(tiny(sliding_window=8, mini_batch_size=8), seed=2)
    tokens = random_tokens(7, (2, 65), 61).at[1, 40].set(0)  # a BOS target while decoding
    _, meta = meta_loss(model, tokens, inner_lr=1.0)
    runner = TTTRunner(model)
    fns = jitted(runner)
    nll, decoded = teacher_forced(runner, fns, tokens, 13)
    terms = chained_terms(model.cfg, 64)
    assert tolerance(terms, statistical=True) < PARITY
    assert_close(jnp.concatenate([nll, decoded], 1), meta["token_nll"], terms=terms,
                 statistical=True)
    assert fns[1]._cache_size() == 1
    _, no_ttt = meta_loss(model, tokens, inner_lr=0.0)
    assert float(jnp.abs(no_ttt["token_nll"] - meta["token_nll"])[:, 16:].max()) > 0.1


@pytest.mark.parametrize("kind", ["sliding", "full", "ttt"])
def test_mixed_length_batch_equals_one_at_a_time(kind):
    """Three prompts (5, 21, 13 tokens: different chunk phases for b = 8) right-padded into
    one bucket of 24 give what each gives alone; other lengths in that bucket, and another
    bucket, reuse the same compiled prefill and decode step."""
    if kind == "ttt":
        model = build_model(tiny(sliding_window=8, mini_batch_size=8), seed=4)
    else:
        model = build_model(tiny(suffix_len=0, prime=False, attention=kind, sliding_window=8),
                            seed=4)
    decoder = decoder_for(model, max_len=64)
    fns = jitted(decoder)
    tokens = random_tokens(5, (3, 45), 61)
    lengths = np.array([5, 21, 13])
    n_steps = 45 - 21
    nll, decoded = teacher_forced(decoder, fns, tokens, 24, lengths)
    terms = chained_terms(model.cfg, 40) if kind == "ttt" else forward_terms(model.cfg, 45)
    assert tolerance(terms, statistical=True) < PARITY
    for i, n in enumerate(lengths):
        alone = teacher_forced(decoder, jitted(decoder), tokens[i : i + 1, : n + n_steps], n)
        assert_close(nll[i, : n - 1], alone[0][0], terms=terms, statistical=True)
        assert float(jnp.abs(nll[i, n - 1 :]).max()) == 0.0  # padding counts nothing
        assert_close(decoded[i], alone[1][0], terms=terms, statistical=True)
    teacher_forced(decoder, fns, tokens, 24, np.array([24, 1, 9]))
    assert fns[0]._cache_size() == 1
    teacher_forced(decoder, fns, tokens, 40)  # another bucket: its own prefill, same step
    assert fns[1]._cache_size() == 1


def test_full_attention_past_max_len_is_nan_not_wrong():
    model = build_model(tiny(attention="full", suffix_len=0, prime=False), seed=1)
    decoder = decoder_for(model, max_len=12)
    state, _ = decoder.prefill(random_tokens(1, (1, 10), 61))
    for tok in (3, 4):  # ticks 10 and 11 fit
        state = decoder.decode_step(state, jnp.array([tok]))
        assert bool(jnp.isfinite(decoder.next_logits(state)).all())
    state = decoder.decode_step(state, jnp.array([5]))  # tick 12 would overwrite tick 0
    assert bool(jnp.isnan(decoder.next_logits(state)).all())
    with pytest.raises(ValueError, match="needs max_len"):
        decoder_for(model)


def test_ttt_inner_step_is_a_real_conditional():
    """The inner step sits behind one cond on a scalar ("any sequence completes a chunk"),
    outside the vmap: a batched predicate would make it a select, run on every token."""
    model = build_model(tiny(sliding_window=8, mini_batch_size=8), seed=2)
    runner = TTTRunner(model)
    state, _ = runner.prefill(random_tokens(7, (2, 13), 61))
    jaxpr = jax.make_jaxpr(runner.decode_step)(state, jnp.array([3, 4])).jaxpr

    def dot_flops(eqns) -> int:
        total = 0
        for e in eqns:
            if e.primitive.name == "dot_general":
                (contract, _), _ = e.params["dimension_numbers"]
                lhs = e.invars[0].aval.shape
                total += 2 * np.prod(e.outvars[0].aval.shape) * np.prod([lhs[d] for d in contract])
            total += sum(dot_flops(j.eqns) for j in jaxprs_in_params(e.params))
        return int(total)

    conds = [e for e in jaxpr.eqns if e.primitive.name == "cond"]
    assert len(conds) == 1 and conds[0].invars[0].aval.shape == ()
    inside = dot_flops(conds[0].params["branches"][1].jaxpr.eqns)
    outside = dot_flops([e for e in jaxpr.eqns if e is not conds[0]])
    # forward and backward of the suffix over a chunk of b = 8 vs one token's forward
    assert inside > 4 * outside
    hlo = jax.jit(runner.decode_step).lower(state, jnp.array([3, 4])).compile().as_text()
    assert " conditional(" in hlo


@pytest.mark.parametrize("kind", ["sliding", "full", "ttt"])
def test_decode_step_updates_every_ring_in_place(kind):
    """The compiled (donated) step copies no ring: each token is one slot write. Without
    the write's dependency on the read, XLA copies every ring to allow either order."""
    if kind == "ttt":
        model = build_model(tiny(sliding_window=8, mini_batch_size=8), seed=1)
    else:
        model = build_model(tiny(suffix_len=0, prime=False, attention=kind, sliding_window=8),
                            seed=1)
    decoder = decoder_for(model, max_len=64)
    state, _ = decoder.prefill(random_tokens(1, (2, 13), 61))
    hlo = jax.jit(decoder.decode_step, donate_argnums=0).lower(
        state, jnp.array([3, 4])).compile().as_text()
    entry = hlo[hlo.index("\nENTRY"):]
    rings = state.seq.caches if kind == "ttt" else state.caches
    shapes = {"[" + ",".join(map(str, c.k_BxKxSxD.shape)) + "]" for c in rings}
    copies = [line for line in entry.splitlines()
              if " copy(" in line and any(shape in line for shape in shapes)]
    assert not copies, copies[:2]


@pytest.mark.parametrize("impl", ["reference", "pallas"])
@pytest.mark.parametrize("size,filled", [(64, 64), (40, 7)])
def test_ring_attention_equals_reference(size, filled, impl):
    """One query over a ring (wrapped, or partly filled with full attention) and its own
    key equals `attend` over the same keys at their ticks; with the jnp softmax and with
    the decode kernel (`flash.decode_attention`, interpret mode here)."""
    B, H, K, D = 2, 4, 2, 8
    ks = jax.random.split(jax.random.key(0), 5)
    k_BxSxKxD = jax.random.normal(ks[0], (B, size, K, D))
    v_BxSxKxD = jax.random.normal(ks[1], (B, size, K, D))
    q, k_new, v_new = (jax.random.normal(kk, (B, 1, n, D)) for kk, n in
                       zip(ks[2:], (H, K, K), strict=True))
    t = filled + 3 * size if filled == size else filled  # a full ring has wrapped
    start_B = jnp.array([0, t - 5])  # the second row owns only its last 5 ticks
    window = None if filled < size else size
    ring = RingCache.build(k_BxSxKxD, v_BxSxKxD, t, start_B, 1e4)
    got, new = attend_token(q, k_new, v_new, ring, window=window, theta=1e4, impl=impl)
    # reference: slot r's key at the tick it holds, the new key at tick t, dense scores
    ticks = np.append((t - 1) - np.mod(t - 1 - np.arange(size), size), t)
    cos, sin = exact_rope_angles(jnp.asarray(np.maximum(ticks, 0)), D, 1e4)
    k_all = rotate(jnp.concatenate([k_BxSxKxD, k_new], 1), cos, sin)
    v_all = jnp.concatenate([v_BxSxKxD, v_new], 1)
    q_rot = rotate(q, cos[-1:], sin[-1:])
    for b in range(B):
        want = attend(q_rot[b : b + 1], k_all[b : b + 1], v_all[b : b + 1],
                      q_pos_T=jnp.array([t]), k_pos_S=jnp.asarray(ticks), window=window,
                      k_valid_S=jnp.asarray(ticks >= int(start_B[b])))
        assert_close(got[b : b + 1], want, terms=attention_terms(D, size + 1))
    assert int(new.length) == t + 1
    np.testing.assert_array_equal(new.v_BxKxSxD[:, :, t % size], v_new[:, 0])


def test_exact_rope_angles_stay_accurate_at_large_positions():
    """Within a few float32 ulps of float64 cos/sin up to position 2**31 - 1, where float32
    angles (`rope_angles`) are off by orders of magnitude more."""
    pos = np.array([0, 1, 255, 256, 40_000, 1_234_567, 2**24 + 3, 2**31 - 1])
    inv_freq = 1.0 / (1e4 ** (np.arange(0, 64, 2) / 64))
    ang = np.mod(pos[:, None].astype(np.float64) * inv_freq, 2 * np.pi)
    cos, sin = exact_rope_angles(jnp.asarray(pos, jnp.int32), 64, 1e4)
    err = max(np.abs(np.asarray(cos) - np.cos(ang)).max(),
              np.abs(np.asarray(sin) - np.sin(ang)).max())
    # 4 digit rotations, 3 complex products, float64 reduction (pos * 1e-16 rad)
    bound = 8 * np.finfo(np.float32).eps + 2**31 * 1e-16
    assert err < bound
    cos32, _ = rope_angles(jnp.asarray(pos[:6], jnp.int32), 64, 1e4)
    assert np.abs(np.asarray(cos32) - np.cos(ang[:6])).max() > 100 * bound
