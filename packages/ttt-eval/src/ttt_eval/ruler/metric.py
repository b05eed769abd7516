"""RULER's score for the synthetic tasks: ``string_match_all``, the share of reference
strings found in the prediction, case-insensitive, averaged over samples.

RULER reports it times 100, rounded to two decimals; here it is a plain fraction so
cells can be combined and given intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttt_eval.ruler.errors import RulerError


def match_fraction(prediction: str, references: Sequence[str]) -> float:
    """Fraction of ``references`` contained in ``prediction``, ignoring case."""
    if isinstance(references, str) or not references:
        raise RulerError(f"references must be a non-empty list of strings, got {references!r}")
    if not isinstance(prediction, str):
        raise RulerError(f"prediction must be a string, got {type(prediction).__name__}")
    text = prediction.lower()
    return sum(ref.lower() in text for ref in references) / len(references)


def string_match_all(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean over samples of ``match_fraction`` (RULER's metric, as a fraction)."""
    if len(predictions) != len(references) or not predictions:
        raise RulerError(f"string_match_all needs as many predictions as reference lists, at "
                         f"least one; got {len(predictions)} and {len(references)}")
    return sum(match_fraction(p, r) for p, r in zip(predictions, references, strict=True)) / len(
        predictions)
