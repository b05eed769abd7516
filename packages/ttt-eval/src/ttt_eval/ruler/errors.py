"""The one exception the RULER generators raise on bad input, so callers can tell a bad
request (a length too short for the template, an unknown task) from a bug."""

from __future__ import annotations


class RulerError(ValueError):
    """A RULER sample cannot be built as asked; the message names the task, the value at
    fault and what would work."""
