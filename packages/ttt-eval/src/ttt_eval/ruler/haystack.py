"""Haystack units: the pieces a context grows by, one at a time.

Three sources, after RULER's haystack kinds: one sentence repeated (the noise block),
the sentences of a text the caller supplies (an essay or any corpus), and an endless
stream drawn on demand (distractor needles). A generated stream keeps what it drew, so
asking for more units never changes the earlier ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from ttt_eval.ruler.errors import RulerError

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


class UnitSource(Protocol):
    limit: int | None  # how many units exist; None for endless

    def take(self, count: int) -> list[str]: ...


class RepeatedUnits:
    """The same text, as often as asked (RULER's noise haystack)."""

    limit: int | None = None

    def __init__(self, text: str) -> None:
        self._text = text

    def take(self, count: int) -> list[str]:
        return [self._text] * count


class FixedUnits:
    """A finite list, from the start (RULER reads its essay from the beginning)."""

    def __init__(self, units: list[str], name: str) -> None:
        self._units = units
        self._name = name
        self.limit: int | None = len(units)

    def take(self, count: int) -> list[str]:
        if count > len(self._units):
            raise RulerError(f"{self._name} has {len(self._units)} units, {count} were asked for")
        return self._units[:count]


class GeneratedUnits:
    """Units drawn one by one from ``make`` and remembered."""

    limit: int | None = None

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._units: list[str] = []

    def take(self, count: int) -> list[str]:
        while len(self._units) < count:
            self._units.append(self._make())
        return self._units[:count]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` with whitespace collapsed: a sentence ends at a word ending in
    . ! or ? (closing quotes and brackets allowed). RULER uses nltk's punkt; this simpler
    rule also splits after abbreviations such as "Mr.", which only moves needle slots."""
    sentences: list[str] = []
    words: list[str] = []
    for word in text.split():
        words.append(word)
        if _SENTENCE_END.search(word):
            sentences.append(" ".join(words))
            words = []
    if words:
        sentences.append(" ".join(words))
    return sentences
