"""RULER's synthetic retrieval tasks and their defaults, in one table.

Field names are RULER's own (``scripts/synthetic.yaml`` arguments and the generator
flags), so a configuration can be checked against the benchmark line by line. The
``tokens_to_generate`` budgets are those of RULER's ``data/synthetic/constants.py``;
they are not part of the prompt length (see ``generate_sample``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HaystackKind = Literal["noise", "essay", "needle"]
ValueKind = Literal["words", "numbers", "uuids"]

# RULER's needle depths when none is requested: 40 evenly spaced percentages, 0..100.
DEPTH_GRID: tuple[float, ...] = tuple(round(100 * i / 39) / 100 for i in range(40))


@dataclass(frozen=True)
class NiahTask:
    """Needle in a haystack: ``num_needle_k`` keys with ``num_needle_v`` values each are
    hidden; the values of ``num_needle_q`` of the keys are asked for."""

    name: str
    type_haystack: HaystackKind
    type_needle_k: ValueKind
    type_needle_v: ValueKind
    num_needle_k: int
    num_needle_v: int
    num_needle_q: int
    tokens_to_generate: int = 128


@dataclass(frozen=True)
class VariableTrackingTask:
    """Variable tracking: ``num_chains`` chains of ``num_hops`` assignments
    (``VAR B = VAR A``) from a 5-digit value; all names holding the first chain's value
    are asked for. A one-shot example of at most ``example_budget`` tokens (prompt,
    answer and ``tokens_to_generate``, as RULER sizes it) comes first."""

    name: str
    num_chains: int
    num_hops: int
    type_haystack: Literal["noise", "essay"] = "noise"
    tokens_to_generate: int = 30
    example_budget: int = 500


@dataclass(frozen=True)
class CommonWordsTask:
    """Common words extraction: a numbered list where ``num_cw`` words occur
    ``freq_cw`` times and the rest ``freq_ucw`` times; the common ones are asked for.
    Below ``short_context`` tokens (prompt plus generation) RULER uses frequencies 6 and 1
    and a smaller one-shot example."""

    name: str
    freq_cw: int
    freq_ucw: int
    num_cw: int
    tokens_to_generate: int = 120
    short_context: int = 4096


@dataclass(frozen=True)
class FrequentWordsTask:
    """Frequent words extraction: coded words of ``coded_wordlen`` letters drawn with
    Zipf (zeta) frequencies of exponent ``alpha``; the top-ranked word is the '...' noise,
    and ranks 2 to 4 are asked for. ``vocab_size`` None means RULER's default: one coded
    word per 50 tokens of prompt plus generation."""

    name: str
    alpha: float
    coded_wordlen: int = 6
    vocab_size: int | None = None
    tokens_to_generate: int = 50


RulerTask = NiahTask | VariableTrackingTask | CommonWordsTask | FrequentWordsTask


def _niah(
    name: str, haystack: HaystackKind, key: ValueKind, value: ValueKind, k: int, v: int, q: int
) -> NiahTask:
    return NiahTask(name, haystack, key, value, k, v, q)


TASKS: dict[str, RulerTask] = {
    t.name: t
    for t in (
        _niah("niah_single_1", "noise", "words", "numbers", 1, 1, 1),
        _niah("niah_single_2", "essay", "words", "numbers", 1, 1, 1),
        _niah("niah_single_3", "essay", "words", "uuids", 1, 1, 1),
        _niah("niah_multikey_1", "essay", "words", "numbers", 4, 1, 1),
        _niah("niah_multikey_2", "needle", "words", "numbers", 1, 1, 1),
        _niah("niah_multikey_3", "needle", "uuids", "uuids", 1, 1, 1),
        _niah("niah_multivalue", "essay", "words", "numbers", 1, 4, 1),
        _niah("niah_multiquery", "essay", "words", "numbers", 1, 1, 4),
        VariableTrackingTask("vt", num_chains=1, num_hops=4),
        CommonWordsTask("cwe", freq_cw=30, freq_ucw=3, num_cw=10),
        FrequentWordsTask("fwe", alpha=2.0),
    )
}
