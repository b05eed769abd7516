"""The errors ttt-eval raises on bad input; a CLI prints each as one line."""

from __future__ import annotations


class EvalError(ValueError):
    """Bad input to an evaluation: a checkpoint, tokens, a tokenizer or a setting."""


class ScoreError(EvalError):
    """Tokens or a checkpoint that cannot be scored, or a score that is not a number."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (what a CLI prints and a bundle records)."""
    return " ".join(str(e).split()) or type(e).__name__
