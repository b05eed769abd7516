"""Accuracy of ranking candidate answers by a model's scores (log-likelihoods): the
caller scores each ``Sample.candidates`` entry; these helpers say how often the true one
came first."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttt_eval.ruler.errors import RulerError


def rank_credit(scores: Sequence[float], true_index: int) -> float:
    """1 if the true candidate has the highest score, 0 if not; a tie for the highest
    gives 1/k for k tied, the expected credit of breaking ties at random (so constant
    scores earn chance, not a win)."""
    if len(scores) < 2:
        raise RulerError(f"rank_credit needs scores for at least 2 candidates, got {len(scores)}")
    if not 0 <= true_index < len(scores):
        raise RulerError(f"true_index {true_index} is outside the {len(scores)} candidates")
    if any(math.isnan(s) for s in scores):
        raise RulerError(f"candidate scores hold NaN: {list(scores)}")
    best = max(scores)
    if scores[true_index] < best:
        return 0.0
    return 1.0 / sum(s == best for s in scores)


def rank_accuracy(
    scores_per_candidate: Sequence[Sequence[float]], true_index: Sequence[int]
) -> float:
    """Mean ``rank_credit`` over samples: row i scores sample i's candidates."""
    if len(scores_per_candidate) != len(true_index) or not true_index:
        raise RulerError(f"rank_accuracy needs one true index per row of scores, at least "
                         f"one; got {len(scores_per_candidate)} rows and {len(true_index)}")
    credits = [rank_credit(s, t) for s, t in zip(scores_per_candidate, true_index, strict=True)]
    return sum(credits) / len(credits)
