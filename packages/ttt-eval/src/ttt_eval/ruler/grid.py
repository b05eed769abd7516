"""The evaluation grid: context lengths × needle depths, a few seeds per cell, and the
per-cell accuracy with its Wilson interval.

Every cell uses the same seeds, so cells differ only in length and depth (a paired
design: the same keys and values move through the context).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.stats import wilson_interval


@dataclass(frozen=True)
class GridPoint:
    """One sample to generate: ``generate_sample(task, tok, length, seed=, depth=)``."""

    length: int
    depth: float | None
    seed: int


@dataclass(frozen=True)
class Cell:
    """Accuracy of one (length, depth) cell over ``n`` samples, with a 95% interval."""

    length: int
    depth: float | None
    n: int
    accuracy: float
    low: float
    high: float


def grid_points(
    lengths: Sequence[int],
    depths: Sequence[float | None],
    samples_per_cell: int,
    base_seed: int = 0,
) -> list[GridPoint]:
    """Every length × depth cell with seeds ``base_seed .. base_seed + samples_per_cell - 1``."""
    if not lengths or not depths or samples_per_cell < 1:
        raise RulerError(f"grid_points needs lengths, depths and samples_per_cell >= 1; got "
                         f"{len(lengths)} lengths, {len(depths)} depths, {samples_per_cell}")
    return [GridPoint(length, depth, base_seed + i)
            for length in lengths for depth in depths for i in range(samples_per_cell)]


def summarize_cells(scored: Iterable[tuple[GridPoint, float]]) -> list[Cell]:
    """Cells from (point, score) pairs, a score being 0..1 (``match_fraction`` or
    ``rank_credit``), sorted by length then depth (None first)."""
    totals: dict[tuple[int, float | None], list[float]] = {}
    for point, score in scored:
        if not 0.0 <= score <= 1.0:
            raise RulerError(f"score {score!r} for {point} is outside 0..1")
        totals.setdefault((point.length, point.depth), []).append(score)
    if not totals:
        raise RulerError("summarize_cells got no scored samples")
    cells = []
    for (length, depth), scores in totals.items():
        low, high = wilson_interval(sum(scores), len(scores))
        cells.append(Cell(length, depth, len(scores), sum(scores) / len(scores), low, high))
    return sorted(cells, key=lambda c: (c.length, c.depth is not None, c.depth or 0.0))
