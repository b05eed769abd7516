"""The errors ttt-eval raises on bad input; a CLI prints each as one line."""

from __future__ import annotations


class EvalError(ValueError):
    """Bad input to an evaluation: a checkpoint, tokens, a tokenizer or a setting."""


class ScoreError(EvalError):
    """Tokens or a checkpoint that cannot be scored, or a score that is not a number."""
