"""RULER's metric, Wilson intervals, candidate ranking and the length x depth grid,
checked against values worked out by hand."""

from __future__ import annotations

import pytest

from ttt_eval.ruler import (
    GridPoint,
    RulerError,
    grid_points,
    match_fraction,
    rank_accuracy,
    rank_credit,
    string_match_all,
    summarize_cells,
    wilson_interval,
)


def test_string_match_all_is_the_mean_share_of_references_found() -> None:
    predictions = ["The numbers are 1234567 and 7654321.", "I do not know", "maybe 42"]
    references = [["1234567", "7654321"], ["9999999"], ["42", "43", "44", "45"]]
    # (2/2 + 0/1 + 1/4) / 3
    assert string_match_all(predictions, references) == pytest.approx(1.25 / 3)


def test_string_match_ignores_case() -> None:
    assert match_fraction("Variables: ABCDE fghij", ["abcde", "FGHIJ", "KLMNO"]) == pytest.approx(
        2 / 3)


def test_string_match_rejects_mismatched_inputs() -> None:
    with pytest.raises(RulerError, match="as many predictions"):
        string_match_all(["a", "b"], [["a"]])
    with pytest.raises(RulerError, match="non-empty list"):
        match_fraction("a", [])
    with pytest.raises(RulerError, match="non-empty list"):
        match_fraction("abc", "abc")


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # p = 1/2, z = 1.96: centre 1/2, half width 1.96*sqrt(.025 + .0096)/1.3841 = 0.2634
        (5, 10, 0.2366, 0.7634),
        # none of 10: upper bound z^2 / (n + z^2) = 3.8415 / 13.8415
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        # 9 of 12: centre (0.75 + 0.16)/1.32 = 0.6894, half width 0.2217
        (9, 12, 0.4677, 0.9111),
    ],
)
def test_wilson_interval_matches_hand_computed_values(
    successes: int, n: int, low: float, high: float
) -> None:
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=5e-4)
    assert hi == pytest.approx(high, abs=5e-4)


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(RulerError, match="n >= 1"):
        wilson_interval(0, 0)
    with pytest.raises(RulerError, match="outside"):
        wilson_interval(11, 10)


def test_rank_credit_counts_ties_as_chance() -> None:
    assert rank_credit([-3.0, -1.0, -2.0], 1) == 1.0
    assert rank_credit([-3.0, -1.0, -2.0], 0) == 0.0
    assert rank_credit([-1.0, -1.0, -2.0, -1.0], 1) == pytest.approx(1 / 3)
    assert rank_accuracy([[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]], [1, 1, 0]) == pytest.approx(0.5)
    with pytest.raises(RulerError, match="NaN"):
        rank_credit([float("nan"), 0.0], 0)
    with pytest.raises(RulerError, match="outside"):
        rank_credit([0.0, 1.0], 2)


def test_grid_points_pair_the_same_seeds_across_cells() -> None:
    points = grid_points([1024, 2048], [0.0, 1.0], samples_per_cell=3, base_seed=10)
    assert len(points) == 12
    cells = {}
    for p in points:
        cells.setdefault((p.length, p.depth), []).append(p.seed)
    assert set(cells) == {(1024, 0.0), (1024, 1.0), (2048, 0.0), (2048, 1.0)}
    assert all(seeds == [10, 11, 12] for seeds in cells.values())


def test_summarize_cells_gives_accuracy_and_wilson_interval_per_cell() -> None:
    scored = [(GridPoint(1024, 0.5, s), score) for s, score in enumerate([1, 1, 1, 0, 1, 0, 1,
                                                                          0, 1, 0])]
    scored += [(GridPoint(512, None, s), 0.5) for s in range(4)]
    first, second = summarize_cells(scored)
    assert (first.length, first.depth, first.n, first.accuracy) == (512, None, 4, 0.5)
    assert (second.length, second.depth, second.n) == (1024, 0.5, 10)
    assert second.accuracy == pytest.approx(0.6)
    # 6 of 10: centre (0.6 + 0.1921)/1.3841 = 0.5723, half width 0.3593/1.3841 = 0.2596
    assert (second.low, second.high) == pytest.approx((0.3127, 0.8318), abs=5e-4)
    with pytest.raises(RulerError, match="outside 0..1"):
        summarize_cells([(GridPoint(512, None, 0), 1.5)])
