"""Spread over seeds: every figure of the study is a mean with its sample standard
deviation and range, and a comparison says in how many seeds it held."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for one seed
    lo: float
    hi: float
    n: int

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "min": self.lo, "max": self.hi, "n": self.n}


def spread(values: Sequence[float]) -> Spread:
    """Refuses a missing or non-finite value: a table never averages a failure away."""
    xs = [float(v) for v in values]
    if not xs or not all(math.isfinite(x) for x in xs):
        raise ValueError(f"spread over seeds needs finite values, got {list(values)}")
    mean = math.fsum(xs) / len(xs)
    var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return Spread(mean, math.sqrt(var), min(xs), max(xs), len(xs))


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[Spread, int]:
    """Spread of the per-seed differences a - b, and the number of seeds where a < b."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs one value per seed on both sides, "
                         f"got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return spread(diffs), sum(d < 0 for d in diffs)
