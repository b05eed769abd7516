"""Tolerances that follow from the arithmetic, not from what passed once.

A float32 sum of n terms computed in two different orders (another blocking, another
fusion, another CPU's vector width) differs by at most about gamma_n * sum|terms|, with
gamma_n = n*u / (1 - n*u) and u = eps/2 the unit roundoff (Higham, Accuracy and Stability
of Numerical Algorithms, §3.1). Comparisons here bound the difference of two fp32
computations of the same quantity by gamma_n times the scale of the compared values, with n
the longest chain of sums the value went through. This is a worst-case bound: typical
errors are ~sqrt(n) times smaller, so a genuine bug (a wrong weight, a dropped
micro-batch, a missing term) still shows as a difference many times larger.
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


def assert_trees_close(got, want, *, terms: int, what: str = "") -> None:
    """Leaf by leaf: |got - want| <= gamma(terms) * max|want| of that leaf.

    The scale is the leaf's largest magnitude, not each entry's: a near-zero entry is a sum
    of terms of the leaf's ordinary size whose rounding does not shrink with the result.
    """
    tol = gamma(terms)
    flat_g = jax.tree_util.tree_flatten_with_path(got)[0]
    flat_w = jax.tree.leaves(want)
    assert len(flat_g) == len(flat_w), f"{what}: trees differ in structure"
    for (path, g), w in zip(flat_g, flat_w, strict=True):
        g64, w64 = np.asarray(g, np.float64), np.asarray(w, np.float64)
        scale = float(np.max(np.abs(w64))) if w64.size else 0.0
        err = float(np.max(np.abs(g64 - w64))) if w64.size else 0.0
        assert err <= tol * max(scale, np.finfo(np.float32).tiny), (
            f"{what}{jax.tree_util.keystr(path)}: max |diff| {err:.3e} > "
            f"gamma({terms}) = {tol:.2e} x scale {scale:.3e}")
