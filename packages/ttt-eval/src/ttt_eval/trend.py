"""Decode trend: how the NLL of a reference continuation moves as a model decodes further
past its prompt (TTT-E2E keeps learning from what it decodes; a sliding window forgets; a
full-attention cache keeps everything at a cost that grows).

The prompt is prefilled, then the continuation is teacher-forced through decode steps
(`Generator.teacher_force`: the same loop as generation, TTT inner steps included), giving
the NLL of every continuation token by generated position. Reported: per-position NLL,
binned means, and the OLS slope of NLL against generated position (per 1K tokens) with its
95% t interval; every number carries its sample count. Targets equal to BOS are not
counted, as training and scoring count them.

On free generation (`free_decode_trend`) the model writes its own continuation (greedy or
sampled) and a reference model, sharing its vocabulary, teacher-forces it: the trend then
says whether what the model writes stays plausible as it goes on, not how well it predicts
given text.

The interval treats tokens as independent draws around a line. Neighbouring tokens' NLLs
are correlated (same document, same topic), so on one document it is optimistic; a slope
over many documents (rows) is the firmer evidence.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ttt_eval.errors import EvalError
from ttt_eval.generate import GREEDY, Generator
from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop
from ttt_eval.sampling import Sampling
from ttt_model.model import Transformer

_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical
    Recipes §6.4), converging for x < (a + 1) / (a + b + 2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge "
                          f"(a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
    """P(T <= t) for Student's t with `dof` degrees of freedom."""
    tail = 0.5 * betainc(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, dof: float) -> float:
    """The p-quantile of Student's t (bisection on `t_cdf` to double precision)."""
    if not 0.0 < p < 1.0 or not dof > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and dof > 0, got p={p}, dof={dof}")
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_cdf(mid, dof) < p else (lo, mid)
    return 0.5 * (lo + hi)


def ols_slope(x_N: np.ndarray, y_N: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Least-squares line y = a + s x: {slope, intercept, se, ci, n, dof}, the interval
    slope ± t_{(1+level)/2, n-2} se (exact under independent normal residuals)."""
    x = np.asarray(x_N, np.float64)
    y = np.asarray(y_N, np.float64)
    n = x.size
    if n < 3 or np.ptp(x) == 0:
        raise EvalError(f"a slope with an interval needs >= 3 points at >= 2 positions, got "
                        f"{n} point(s) at {np.unique(x).size} position(s)")
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    resid = y - intercept - slope * x
    se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
    half = t_quantile((1.0 + level) / 2.0, n - 2) * se
    return {"slope": slope, "intercept": intercept, "se": se,
            "ci": (slope - half, slope + half), "n": int(n), "dof": int(n - 2)}


def summarize_trend(nll_BxK: np.ndarray, counted_BxK: np.ndarray | None = None,
                    bin_tokens: int = 256) -> dict[str, Any]:
    """The trend of continuation NLLs (row b, generated position j): per-position and
    binned means over counted targets, overall mean, slope per 1K generated tokens."""
    nll = np.asarray(nll_BxK, np.float64)
    if nll.ndim != 2 or nll.shape[1] < 1:
        raise EvalError(f"expected continuation NLLs [B, K], got shape {list(nll.shape)}")
    counted = (np.ones(nll.shape, bool) if counted_BxK is None
               else np.asarray(counted_BxK, bool))
    if bin_tokens < 1:
        raise EvalError(f"bin_tokens must be >= 1, got {bin_tokens}")
    bad = counted & ~np.isfinite(nll)
    if bad.any():
        row, pos = (int(i) for i in np.argwhere(bad)[0])
        raise EvalError(f"non-finite NLL ({nll[row, pos]}) at generated position {pos} of "
                        f"sequence {row} ({int(bad.sum())} such positions)")
    K = nll.shape[1]
    count_K = counted.sum(0)
    sum_K = np.where(counted, nll, 0.0).sum(0)
    position_mean = [float(s / c) if c else None for s, c in zip(sum_K, count_K, strict=True)]
    bins = []
    for start in range(0, K, bin_tokens):
        end = min(start + bin_tokens, K)
        c = int(count_K[start:end].sum())
        bins.append({"start": start, "end": end, "n": c,
                     "mean_nll": float(sum_K[start:end].sum() / c) if c else None})
    rows, positions = np.nonzero(counted)
    fit = ols_slope(positions, nll[rows, positions])
    n_counted = int(counted.sum())
    return {
        "position_mean_nll": position_mean, "position_count": count_K.tolist(),
        "bin_tokens": bin_tokens, "bins": bins,
        "mean_nll": float(nll[counted].mean()), "n": n_counted,
        "decode_nll_slope": {"per_1k_tokens": 1000.0 * fit["slope"],
                             "ci95": [1000.0 * fit["ci"][0], 1000.0 * fit["ci"][1]],
                             "intercept": fit["intercept"], "n": fit["n"],
                             "dof": fit["dof"]},
    }


def _sequences(tokens_N: np.ndarray, what: str) -> np.ndarray:
    tokens = np.asarray(tokens_N)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise EvalError(f"{what} must be integer ids [N] or [B, N], got {tokens.dtype} of "
                        f"shape {list(tokens.shape)}")
    return tokens


def _generator_for(model: Transformer, generator: Generator | None, inner: InnerLoop,
                   n_new: int, ttt: bool | None) -> Generator:
    if generator is None:
        return Generator(model, inner, n_new, ttt=ttt)
    if generator.cfg != model.cfg:
        raise EvalError(f"the generator given decodes model {generator.cfg.name!r}, not "
                        f"{model.cfg.name!r}")
    return generator


def decode_trend(model: Transformer, tokens_N: np.ndarray, n_prompt: int,
                 inner: InnerLoop = PAPER_INNER_LOOP, bin_tokens: int = 256, *,
                 ttt: bool | None = None, generator: Generator | None = None
                 ) -> dict[str, Any]:
    """Prefill tokens [:n_prompt], teacher-force the rest through decode steps; the trend of
    the continuation's NLL by generated position. `tokens_N` is one sequence [N] or several
    [B, N] sharing the prompt length. Pass a `generator` (for this model, built for at
    least N - n_prompt new tokens) to reuse its compiled functions across calls; its inner
    loop and ttt setting are then the ones used."""
    tokens = _sequences(tokens_N, "tokens")
    N = tokens.shape[1]
    if not 1 <= n_prompt < N:
        raise EvalError(f"n_prompt must lie in [1, {N - 1}] to leave a continuation, "
                        f"got {n_prompt}")
    K = N - n_prompt
    gen = _generator_for(model, generator, inner, K, ttt)
    nll = gen.teacher_force(tokens[:, :n_prompt], tokens[:, n_prompt:])
    bos = model.cfg.bos_token_id
    counted = np.ones(nll.shape, bool) if bos is None else tokens[:, n_prompt:] != bos
    out = summarize_trend(nll, counted, bin_tokens)
    return {"model": model.cfg.name, "ttt": gen.ttt,
            "inner_lr": float(gen.inner.lr) if gen.ttt else 0.0,
            "num_sequences": int(tokens.shape[0]), "prompt_tokens": int(n_prompt),
            "continuation_tokens": int(K), "token_nll": nll.tolist(), **out}


def free_decode_trend(model: Transformer, prompts_N: np.ndarray, n_new: int,
                      reference: Transformer, inner: InnerLoop = PAPER_INNER_LOOP,
                      reference_inner: InnerLoop = PAPER_INNER_LOOP, bin_tokens: int = 256,
                      *, sampling: Sampling = GREEDY, ttt: bool | None = None,
                      reference_ttt: bool | None = None, generator: Generator | None = None,
                      reference_generator: Generator | None = None) -> dict[str, Any]:
    """`model` writes `n_new` tokens after each prompt (no stop ids: every row runs the full
    length); `reference` teacher-forces prompt + generation through its own decode steps;
    the trend of the reference NLL of the generated tokens by generated position."""
    prompts = _sequences(prompts_N, "prompts")
    if n_new < 1:
        raise EvalError(f"n_new must be >= 1, got {n_new}")
    if reference.cfg.vocab_size != model.cfg.vocab_size:
        raise EvalError(f"reference model {reference.cfg.name!r} has vocabulary "
                        f"{reference.cfg.vocab_size}, model {model.cfg.name!r} has "
                        f"{model.cfg.vocab_size}: a reference must share the tokenizer")
    gen = _generator_for(model, generator, inner, n_new, ttt)
    ref = _generator_for(reference, reference_generator, reference_inner, n_new,
                         reference_ttt)
    written = gen.generate(prompts, sampling=sampling)
    cont_BxK = np.array([w.tokens[:n_new] for w in written], np.int32)
    if cont_BxK.shape[1] != n_new:  # generators built for fewer tokens stop early
        raise EvalError(f"the generator wrote {cont_BxK.shape[1]} tokens, not {n_new}: build "
                        f"it for at least {n_new} new tokens")
    nll = ref.teacher_force(prompts, cont_BxK)
    bos = reference.cfg.bos_token_id
    counted = np.ones(nll.shape, bool) if bos is None else cont_BxK != bos
    out = summarize_trend(nll, counted, bin_tokens)
    return {"model": model.cfg.name, "ttt": gen.ttt,
            "inner_lr": float(gen.inner.lr) if gen.ttt else 0.0,
            "reference": reference.cfg.name, "reference_ttt": ref.ttt,
            "sampling": {"temperature": sampling.temperature, "top_k": sampling.top_k,
                         "top_p": sampling.top_p, "seed": sampling.seed},
            "num_sequences": int(prompts.shape[0]), "prompt_tokens": int(prompts.shape[1]),
            "continuation_tokens": int(n_new), "tokens": cont_BxK.tolist(),
            "token_nll": nll.tolist(), **out}
