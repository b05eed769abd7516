"""Fit a prompt to an exact token count.

A prompt is ``render(size, pad)``: ``size`` whole haystack units (sentences, list
entries, coded words) plus ``pad``, a prefix of the haystack text that would come next.
The fit first finds the largest ``size`` whose prompt does not exceed the length
(galloping from a hint, then bisecting), then the shortest prefix of the continuation,
cut at a character, that makes the count reach it; if tokenization jumps over the exact
count there, nearby cuts and one or two units fewer are tried. It never truncates the
fixed parts: if they alone are too long, or the exact count cannot be hit, it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.tokens import TokenCounter

Render = Callable[[int, str], str]
PadStream = Callable[[int], str]

_CUT_WINDOW = 16  # characters searched either side of the bisected cut
_SIZE_RETRIES = 3  # unit counts tried, the largest fitting one first


@dataclass(frozen=True)
class Fitted:
    """A prompt of exactly the requested token count."""

    size: int
    pad: str
    prompt: str
    token_ids: tuple[int, ...]


def fit_exact_length(
    render: Render,
    pad_stream: PadStream,
    counter: TokenCounter,
    length: int,
    *,
    min_size: int,
    max_size: int | None,
    size_hint: int,
    what: str,
) -> Fitted:
    """The prompt with as many whole units as fit, padded to exactly ``length`` tokens."""
    fixed = counter.count(render(min_size, ""))
    if fixed > length:
        raise RulerError(f"{what}: the fixed parts alone (template, needles, example) take "
                         f"{fixed} tokens, more than the requested {length}")

    def fits(size: int) -> bool:
        return counter.count(render(size, "")) <= length

    size = _largest_fitting(fits, min_size, size_hint, max_size)
    for candidate in range(size, max(min_size, size - _SIZE_RETRIES + 1) - 1, -1):
        pad = _pad_to_length(lambda p, s=candidate: counter.count(render(s, p)),
                             pad_stream(candidate), length)
        if pad is not None:
            prompt = render(candidate, pad)
            return Fitted(candidate, pad, prompt, counter.ids(prompt))
    if max_size is not None and size >= max_size:
        raise RulerError(f"{what}: the haystack runs out after {max_size} units, short of "
                         f"{length} tokens; supply more haystack text (essay=, words=) or ask for "
                         "fewer tokens")
    raise RulerError(f"{what}: no cut of the haystack gives exactly {length} tokens with this "
                     "tokenizer; try a neighbouring length")


def _largest_fitting(
    fits: Callable[[int], bool], lo: int, hint: int, max_size: int | None
) -> int:
    """Largest size that fits, given that ``lo`` does; gallops up from ``hint``."""
    probe = max(lo + 1, hint)
    step = max(1, probe - lo)
    hi: int | None = None
    while hi is None:
        if max_size is not None:
            probe = min(probe, max_size)
            if probe <= lo:
                return lo
        if fits(probe):
            lo = probe
            step *= 2
            probe = lo + step
        else:
            hi = probe
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _pad_to_length(count: Callable[[str], int], stream: str, length: int) -> str | None:
    """The prefix of ``stream`` that brings the count to exactly ``length``, if any."""
    if count("") == length:
        return ""
    if not stream or count(stream) < length:
        return None
    lo, hi = 0, len(stream)  # count(stream[:lo]) < length <= count(stream[:hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(stream[:mid]) < length:
            lo = mid
        else:
            hi = mid
    for cut in [hi, *range(max(1, hi - _CUT_WINDOW), min(len(stream), hi + _CUT_WINDOW) + 1)]:
        if count(stream[:cut]) == length:
            return stream[:cut]
    return None
