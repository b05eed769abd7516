"""Decode trend: the teacher-forced decode NLL is the one-shot (FA) or meta (TTT-E2E) NLL of
the continuation, token for token; the slope and its t interval are least squares' own,
and the interval covers the true slope 95% of the time where a normal one would not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # a dependency of jax: an independent reference, not used by src

from ttt_eval.errors import EvalError
from ttt_eval.generate import Generator
from ttt_eval.nll import InnerLoop
from ttt_eval.sampling import Sampling
from ttt_eval.trend import (
    decode_trend,
    free_decode_trend,
    ols_slope,
    summarize_trend,
    t_cdf,
    t_quantile,
)
from ttt_model.config import ModelConfig
from ttt_model.losses import pretrain_loss
from ttt_model.model import build_model
from ttt_model.testing import assert_close, forward_terms, tolerance, ttt_terms
from ttt_model.ttt import meta_loss

V, BOS = 61, 0
N_PROMPT = 13  # ends mid-chunk (b = 8): the inner steps while decoding start mid-way
INNER = InnerLoop(lr=0.5, clip=1.0)


def _model(kind: str):
    cfg = ModelConfig(name=f"trend-{kind}", vocab_size=V, hidden_size=32,
                      intermediate_size=48, num_layers=3, num_heads=4, num_kv_heads=2,
                      qk_norm=True, post_norm=True, sliding_window=8, mini_batch_size=8,
                      attention_block_size=16, bos_token_id=BOS, initializer_range=0.2,
                      **({"attention": "full"} if kind == "full" else
                         {"attention": "sliding", "suffix_len": 2, "prime": True}))
    return build_model(cfg, seed=1)


def _tokens() -> np.ndarray:
    x = np.random.default_rng(0).integers(2, V, size=(2, 49))
    x[1, 30] = BOS  # a BOS target while decoding: reported, not counted
    return x


@pytest.mark.parametrize("kind", ["full", "ttt"])
def test_teacher_forced_decode_nll_is_the_full_sequence_nll(kind):
    model = _model(kind)
    x = _tokens()
    trend = decode_trend(model, x, N_PROMPT, INNER, bin_tokens=10)
    got = np.asarray(trend["token_nll"])
    assert got.shape == (2, 49 - N_PROMPT) and trend["ttt"] == (kind == "ttt")
    if kind == "ttt":
        ref = meta_loss(model, x, inner_lr=INNER.lr, inner_clip=INNER.clip)[1]["token_nll"]
        terms = ttt_terms(model.cfg, 48)
        other = meta_loss(model, x, inner_lr=1.0, inner_clip=INNER.clip)[1]["token_nll"]
    else:
        ref = pretrain_loss(model, x)[1]["token_nll"]
        terms = forward_terms(model.cfg, 48)
        other = None
    ref = np.asarray(ref)[:, N_PROMPT - 1:]  # targets N_PROMPT.. (generated positions 0..)
    assert tolerance(terms, statistical=True) < 1e-4
    assert_close(got, ref, terms=terms, statistical=True)
    if other is not None:  # the run's inner lr is what decoding used: it shows
        diff = np.abs(np.asarray(other)[:, N_PROMPT - 1:] - ref).max()
        assert diff > 100 * tolerance(terms, statistical=True) * np.abs(ref).max()
    counted = x[:, N_PROMPT:] != BOS
    assert trend["n"] == counted.sum() == 2 * 36 - 1
    assert trend["position_count"][30 - N_PROMPT] == 1
    assert trend["mean_nll"] == pytest.approx(got[counted].mean(), rel=1e-12)
    assert [b["n"] for b in trend["bins"]] == [20, 19, 20, 12]
    assert trend["bins"][3] == {"start": 30, "end": 36, "n": 12,
                                "mean_nll": pytest.approx(got[:, 30:].mean(), rel=1e-12)}
    slope = trend["decode_nll_slope"]
    rows, pos = np.nonzero(counted)
    want = np.polyfit(pos, got[rows, pos], 1)[0] * 1000
    assert slope["n"] == trend["n"] and slope["per_1k_tokens"] == pytest.approx(want, rel=1e-9)


def test_free_generation_is_scored_by_the_reference_models_own_full_pass():
    """The TTT model writes 20 tokens (sampled, seeded); the FA reference's one-shot NLL of
    prompt + those tokens is what the trend reports, position by position."""
    writer, reference = _model("ttt"), _model("full")
    prompts = _tokens()[:, :N_PROMPT]
    sampling = Sampling(temperature=1.0, seed=3)
    trend = free_decode_trend(writer, prompts, 20, reference, INNER, bin_tokens=8,
                              sampling=sampling)
    written = np.asarray(trend["tokens"])
    again = Generator(writer, INNER, 20).generate(prompts, sampling=sampling)
    assert written.tolist() == [list(g.tokens) for g in again]  # the writer's own output
    x = np.concatenate([prompts, written], 1)
    terms = forward_terms(reference.cfg, x.shape[1] - 1)
    ref = np.asarray(pretrain_loss(reference, x)[1]["token_nll"])[:, N_PROMPT - 1:]
    got = np.asarray(trend["token_nll"])
    assert_close(got, ref, terms=terms, statistical=True)
    counted = written != BOS
    assert trend["n"] == counted.sum() and trend["reference"] == reference.cfg.name
    assert trend["ttt"] and not trend["reference_ttt"]
    assert trend["mean_nll"] == pytest.approx(got[counted].mean(), rel=1e-12)
    other = free_decode_trend(writer, prompts, 20, reference, INNER,
                              sampling=Sampling(temperature=1.0, seed=4))
    assert other["tokens"] != trend["tokens"]  # scored text is the generated text
    small = build_model(ModelConfig(name="other-vocab", vocab_size=V + 1, hidden_size=32,
                                    intermediate_size=48, num_layers=1, num_heads=4))
    with pytest.raises(EvalError, match="vocabulary 62, model 'trend-ttt' has 61"):
        free_decode_trend(writer, prompts, 4, small)


def _lstsq_reference(x, y, level=0.95):
    """Slope, its standard error and interval from numpy least squares on [1, x]."""
    X = np.stack([np.ones_like(x), x], 1)
    coef, rss, _, _ = np.linalg.lstsq(X, y, rcond=None)
    cov = rss[0] / (len(x) - 2) * np.linalg.inv(X.T @ X)
    se = math.sqrt(cov[1, 1])
    half = stats.t.ppf((1 + level) / 2, len(x) - 2) * se
    return coef[1], se, (coef[1] - half, coef[1] + half)


def test_slope_and_interval_equal_least_squares():
    rng = np.random.default_rng(1)
    x = np.arange(500, dtype=np.float64)
    y = 3.0 - 2e-3 * x + rng.normal(0, 0.5, x.size)  # -2 NLL per 1K tokens
    fit = ols_slope(x, y)
    slope, se, ci = _lstsq_reference(x, y)
    assert fit["slope"] == pytest.approx(slope, rel=1e-10)
    assert fit["se"] == pytest.approx(se, rel=1e-10)
    assert fit["ci"] == pytest.approx(ci, rel=1e-10)
    assert fit["n"] == 500 and fit["dof"] == 498
    assert fit["ci"][0] < -2e-3 < fit["ci"][1]
    trend = summarize_trend(y[None], bin_tokens=100)
    s = trend["decode_nll_slope"]
    assert s["per_1k_tokens"] == pytest.approx(1000 * slope, rel=1e-10)
    assert s["ci95"] == pytest.approx([1000 * ci[0], 1000 * ci[1]], rel=1e-10)
    assert [b["n"] for b in trend["bins"]] == [100] * 5
    means = y.reshape(5, 100).mean(1)
    assert [b["mean_nll"] for b in trend["bins"]] == pytest.approx(means, rel=1e-12)


def test_interval_covers_the_true_slope_95_percent_of_the_time():
    """On 5 points (3 dof) the t quantile is 3.18; the normal 1.96 would cover ~85%."""
    rng = np.random.default_rng(2)
    reps, x = 4000, np.arange(5, dtype=np.float64)
    covered = normal = 0
    for _ in range(reps):
        y = 1.0 + 0.3 * x + rng.normal(0, 1.0, x.size)
        fit = ols_slope(x, y)
        covered += fit["ci"][0] <= 0.3 <= fit["ci"][1]
        normal += abs(fit["slope"] - 0.3) <= 1.959963984540054 * fit["se"]
    sd = math.sqrt(0.95 * 0.05 / reps)  # binomial: 5 standard deviations
    assert abs(covered / reps - 0.95) < 5 * sd
    assert normal / reps < 0.95 - 10 * sd


def test_t_quantile_is_exact():
    for p in (0.6, 0.975, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)),
                                                 rel=1e-12)
        for dof in (3, 7, 30, 498, 10**5):
            assert t_quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-10)
    assert t_quantile(0.025, 10) == -t_quantile(0.975, 10)
    assert t_cdf(0.0, 4) == 0.5


def test_bad_inputs_are_named():
    nll = np.ones((2, 6))
    nll[1, 4] = np.nan
    with pytest.raises(EvalError, match="non-finite NLL .* at generated position 4 of "
                                        "sequence 1"):
        summarize_trend(nll)
    with pytest.raises(EvalError, match=">= 3 points at >= 2 positions"):
        ols_slope(np.zeros(5), np.arange(5.0))
    model = _model("full")
    with pytest.raises(EvalError, match=r"n_prompt must lie in \[1, 5\]"):
        decode_trend(model, np.arange(2, 8), 6)
