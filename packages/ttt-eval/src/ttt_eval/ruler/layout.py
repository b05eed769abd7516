"""Needles into a haystack at requested depths, in a prompt of an exact token length.

Needles sit between haystack units (RULER inserts them between sentences). The first
fit puts each needle at the unit boundary nearest its depth counted in units; then the
boundaries are re-chosen by bisection on the token count of the haystack text before
them (so uneven sentences do not skew the depth) and the prompt is fitted again with them
fixed, until refitting no longer moves them (at most three times). So each needle starts
at the boundary nearest to ``depth * H`` haystack tokens: off by at most half a unit, plus
a few tokens of tokenizer boundary effects. The depth reached is measured on the final
prompt and reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ttt_eval.ruler.fitting import Fitted, fit_exact_length
from ttt_eval.ruler.haystack import UnitSource
from ttt_eval.ruler.sample import NeedlePlacement
from ttt_eval.ruler.templates import Frame
from ttt_eval.ruler.tokens import TokenCounter

_END = -1  # the slot after the last haystack piece, whatever the final count of pieces
_PAD_UNITS = 3  # units of continuation text offered for padding
_REFITS = 3  # refits with token-chosen boundaries, until the boundaries no longer move


@dataclass(frozen=True)
class Insert:
    """A sentence to hide at ``depth`` (a fraction of the haystack's tokens before it)."""

    text: str
    depth: float
    holds_answer: bool


@dataclass(frozen=True)
class HaystackPrompt:
    prompt: str
    token_ids: tuple[int, ...]
    units_used: int
    needles: tuple[NeedlePlacement, ...]


@dataclass(frozen=True)
class _Assembled:
    prompt: str
    context_span: tuple[int, int]
    insert_spans: list[tuple[int, int]]


def build_haystack_prompt(
    counter: TokenCounter,
    length: int,
    frame: Frame,
    units: UnitSource,
    separator: str,
    inserts: Sequence[Insert],
    what: str,
) -> HaystackPrompt:
    """Fit ``frame`` around haystack units and inserts to exactly ``length`` tokens."""

    def pieces(size: int, pad: str) -> list[str]:
        return units.take(size) + ([pad] if pad else [])

    def renderer(slots_for: Callable[[int], list[int]]) -> Callable[[int, str], str]:
        def render(size: int, pad: str) -> str:
            hay = pieces(size, pad)
            return _assemble(frame, hay, separator, inserts, slots_for(len(hay))).prompt
        return render

    def pad_stream(size: int) -> str:
        available = size + _PAD_UNITS if units.limit is None else min(units.limit,
                                                                       size + _PAD_UNITS)
        return separator.join(units.take(available)[size:])

    def fit(slots_for: Callable[[int], list[int]], hint: int) -> Fitted:
        return fit_exact_length(renderer(slots_for), pad_stream, counter, length, min_size=0,
                                max_size=units.limit, size_hint=hint, what=what)

    fitted = fit(_by_units(inserts), _size_hint(counter, length, frame, units, separator))
    depths = [ins.depth for ins in inserts]
    slots = _token_slots(counter, pieces(fitted.size, fitted.pad), separator, depths)
    for attempt in range(_REFITS):
        fitted = fit(_fixed(slots), fitted.size)
        settled = _token_slots(counter, pieces(fitted.size, fitted.pad), separator, depths)
        if settled == slots or attempt == _REFITS - 1:
            break
        slots = settled
    hay = pieces(fitted.size, fitted.pad)
    assembled = _assemble(frame, hay, separator, inserts, _fixed(slots)(len(hay)))
    return HaystackPrompt(fitted.prompt, fitted.token_ids, fitted.size,
                          _measure(counter, assembled, fitted.token_ids, inserts))


def _by_units(inserts: Sequence[Insert]) -> Callable[[int], list[int]]:
    """Slots for a haystack of n pieces: the boundary nearest each depth counted in pieces."""
    return lambda n: [round(ins.depth * n) for ins in inserts]


def _fixed(slots: list[int]) -> Callable[[int], list[int]]:
    """The given slots, kept inside a haystack of n pieces (``_END`` stays last)."""
    return lambda n: [n if s == _END else min(s, n) for s in slots]


def _size_hint(
    counter: TokenCounter, length: int, frame: Frame, units: UnitSource, separator: str
) -> int:
    """Units expected to fill the length, from the tokens of the first few."""
    probe = 8 if units.limit is None else min(8, units.limit)
    if probe == 0:
        return 0
    per_unit = (counter.count(separator.join(units.take(probe))) - counter.count("")) / probe
    room = length - counter.count(frame.render(""))
    return max(0, int(room / max(per_unit, 1.0)))


def _assemble(
    frame: Frame, pieces: list[str], separator: str, inserts: Sequence[Insert],
    slots: list[int],
) -> _Assembled:
    at_slot: dict[int, list[int]] = {}
    for i, slot in enumerate(slots):
        at_slot.setdefault(slot, []).append(i)
    segments: list[str] = []
    owners: list[int | None] = []  # insert index of each segment, None for haystack
    for b in range(len(pieces) + 1):
        for i in at_slot.get(b, []):
            segments.append(inserts[i].text)
            owners.append(i)
        if b < len(pieces):
            segments.append(pieces[b])
            owners.append(None)
    spans: list[tuple[int, int]] = [(0, 0)] * len(inserts)
    pos = len(frame.head)
    for k, (segment, owner) in enumerate(zip(segments, owners, strict=True)):
        if k:
            pos += len(separator)
        if owner is not None:
            spans[owner] = (pos, pos + len(segment))
        pos += len(segment)
    context = separator.join(segments)
    return _Assembled(frame.render(context), (len(frame.head), len(frame.head) + len(context)),
                      spans)


def _token_slots(
    counter: TokenCounter, pieces: list[str], separator: str, depths: list[float]
) -> list[int]:
    """For each depth, the piece boundary whose preceding haystack tokens are nearest to
    that fraction of the haystack's tokens (``_END`` for the boundary after the last)."""
    hay = separator.join(pieces)
    starts = [0]
    for piece in pieces[:-1]:
        starts.append(starts[-1] + len(piece) + len(separator))
    if pieces:
        starts.append(len(hay))
    base = counter.count("")

    def before(b: int) -> int:
        return counter.count(hay[: starts[b]]) - base

    total = before(len(starts) - 1)
    slots: list[int] = []
    for depth in depths:
        target = depth * total
        lo, hi = 0, len(starts) - 1  # smallest b with before(b) >= target lies in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if before(mid) < target:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0 and target - before(lo - 1) < before(lo) - target:
            lo -= 1
        slots.append(_END if lo == len(starts) - 1 else lo)
    return slots


def _measure(
    counter: TokenCounter, assembled: _Assembled, ids: tuple[int, ...], inserts: Sequence[Insert]
) -> tuple[NeedlePlacement, ...]:
    prompt = assembled.prompt

    def token_at(pos: int) -> int:
        """Index of the first token holding text from ``pos`` on: where the tokens of the
        text before ``pos`` stop agreeing with the prompt's (a token that glues the space
        before a word to it counts as that word's)."""
        head = counter.ids(prompt[:pos])
        agree = 0
        for a, b in zip(head, ids, strict=False):
            if a != b:
                break
            agree += 1
        return agree

    start, end = assembled.context_span
    order = sorted(range(len(inserts)), key=lambda i: assembled.insert_spans[i][0])
    offsets = {i: token_at(assembled.insert_spans[i][0]) for i in order}
    sizes = {i: token_at(assembled.insert_spans[i][1]) - offsets[i] for i in order}
    context_start = token_at(start)
    haystack_tokens = token_at(end) - context_start - sum(sizes.values())
    depths: dict[int, float] = {}
    earlier = 0
    for i in order:
        hay_before = offsets[i] - context_start - earlier
        depths[i] = min(1.0, max(0.0, hay_before / haystack_tokens)) if haystack_tokens else 0.0
        earlier += sizes[i]
    return tuple(NeedlePlacement(ins.text, offsets[i], depths[i], ins.holds_answer)
                 for i, ins in enumerate(inserts))
