"""Confidence intervals for accuracies measured on few samples."""

from __future__ import annotations

import math

from ttt_eval.ruler.errors import RulerError

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``.

    Unlike the normal approximation it stays inside 0..1 and is not empty at 0 or n
    successes, which matters for cells of a few dozen samples. ``successes`` may be
    fractional (a sum of partial-credit scores).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RulerError(f"wilson_interval needs a sample count n >= 1, got {n!r}")
    if not 0 <= successes <= n:
        raise RulerError(f"wilson_interval: successes {successes!r} is outside 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)
