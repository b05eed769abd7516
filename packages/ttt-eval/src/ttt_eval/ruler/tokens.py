"""Token counting with the caller's tokenizer, whatever its library.

Any object with ``encode(text)`` works: the result is used as the ids, or its ``.ids``
when it has them (a ``tokenizers.Tokenizer`` returns an ``Encoding``; its post-processor
decides special tokens such as BOS, and those count towards the length). Counts are
cached, because fitting a prompt to an exact length encodes the same texts repeatedly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ttt_eval.ruler.errors import RulerError

_CACHE_ENTRIES = 64


class Encoder(Protocol):
    def encode(self, text: str) -> Any: ...


class TokenCounter:
    """Ids and token counts of texts under one tokenizer."""

    def __init__(self, tokenizer: Encoder) -> None:
        if not callable(getattr(tokenizer, "encode", None)):
            raise RulerError(f"tokenizer {type(tokenizer).__name__} has no encode(text) method")
        self._tokenizer = tokenizer
        self._counts: dict[str, int] = {}

    def ids(self, text: str) -> tuple[int, ...]:
        encoded = self._tokenizer.encode(text)
        ids: Sequence[int] = getattr(encoded, "ids", encoded)
        return tuple(int(i) for i in ids)

    def count(self, text: str) -> int:
        if text not in self._counts:
            if len(self._counts) >= _CACHE_ENTRIES:
                self._counts.clear()
            self._counts[text] = len(self.ids(text))
        return self._counts[text]
