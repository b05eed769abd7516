"""Tolerances that follow from the arithmetic, not from what passed once (for tests of this
package and of packages built on it).

A float32 sum of n terms computed in two different orders (another blocking, another
fusion, another CPU's vector width) differs by at most about gamma_n * sum|terms|, with
gamma_n = n*u / (1 - n*u) and u = eps/2 the unit roundoff (Higham, Accuracy and Stability
of Numerical Algorithms, §3.1). Comparisons here bound the difference of two fp32
computations of the same quantity by gamma_n times the scale of the compared values, with n
the longest chain of sums the value went through. That worst case suits short chains
(a loss over a batch, one gradient). For deep chains (a whole forward pass, an inner loop)
it is loose by ~sqrt(n): rounding errors of many operations add like a random walk, to about
sqrt(n)*u times the scale (Higham §2.8), and `statistical=True` allows ten times that. Each
test that uses a bound also shows the effect it guards is far larger than the bound.
"""

from __future__ import annotations

import jax
import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
UNIT_ROUNDOFF32 = EPS32 / 2


def gamma(n_terms: int, u: float = UNIT_ROUNDOFF32) -> float:
    """Relative error bound of a float sum of `n_terms` terms, in any order."""
    nu = n_terms * u
    if nu >= 1:
        raise ValueError(f"{n_terms} terms: the bound is vacuous at unit roundoff {u}")
    return nu / (1 - nu)


def typical_error(n_terms: int, u: float = UNIT_ROUNDOFF32) -> float:
    """Ten times the typical (random-walk) relative rounding error of `n_terms` operations."""
    return 10.0 * n_terms ** 0.5 * u


def tolerance(n_terms: int, statistical: bool = False) -> float:
    """The relative bound used by the assertions below."""
    return typical_error(n_terms) if statistical else gamma(n_terms)


def assert_trees_close(got, want, *, terms: int, what: str = "",
                       statistical: bool = False) -> None:
    """Leaf by leaf: |got - want| <= tolerance(terms) * max|want| of that leaf.

    The scale is the leaf's largest magnitude, not each entry's: a near-zero entry is a sum
    of terms of the leaf's ordinary size whose rounding does not shrink with the result.
    """
    tol = tolerance(terms, statistical)
    flat_g = jax.tree_util.tree_flatten_with_path(got)[0]
    flat_w = jax.tree.leaves(want)
    assert len(flat_g) == len(flat_w), f"{what}: trees differ in structure"
    for (path, g), w in zip(flat_g, flat_w, strict=True):
        g64, w64 = np.asarray(g, np.float64), np.asarray(w, np.float64)
        scale = float(np.max(np.abs(w64))) if w64.size else 0.0
        err = float(np.max(np.abs(g64 - w64))) if w64.size else 0.0
        assert err <= tol * max(scale, np.finfo(np.float32).tiny), (
            f"{what}{jax.tree_util.keystr(path)}: max |diff| {err:.3e} > "
            f"tolerance({terms}) = {tol:.2e} x scale {scale:.3e}")


def forward_terms(cfg, seq_len: int) -> int:
    """The longest chain of fp32 sums a forward pass of `cfg` puts a value through: per
    layer, the projections (hidden), the MLP (intermediate), attention over up to `seq_len`
    keys and the RMSNorm mean (hidden), each counted 4x for the exp, division, square root and
    RoPE rounding around them (each within one ulp); then the logits (hidden) and the
    log-sum-exp over the vocabulary."""
    per_layer = 4 * (2 * cfg.hidden_size + cfg.intermediate_size + seq_len)
    return cfg.num_layers * per_layer + cfg.hidden_size + cfg.vocab_size


def attention_terms(head_dim: int, n_keys: int) -> int:
    """Sums in one attention output: the q.k score (head_dim), the softmax normaliser and
    the weighted sum of values (n_keys each), 4x for exp/divide/sqrt/RoPE rounding."""
    return 4 * (head_dim + 2 * n_keys)


def ttt_terms(cfg, seq_len: int) -> int:
    """Each inner step before a chunk adds a backward pass (about twice a forward) to the
    chain its NLL goes through: 1 + 2 * (T/b - 1) forward passes by the last chunk."""
    return forward_terms(cfg, seq_len) * (1 + 2 * (seq_len // cfg.mini_batch_size - 1))


def assert_close(got, want, *, terms: int, what: str = "", statistical: bool = False) -> None:
    """Arrays equal up to tolerance(terms) times the scale of `want` (assert_trees_close)."""
    assert_trees_close([got], [want], terms=terms, what=what, statistical=statistical)
