"""Random needle keys and values of RULER's three kinds, drawn from a seeded
``random.Random`` so every sample is reproducible.

- words: ``adjective-noun`` (RULER joins wonderwords adjectives and nouns the same way)
- numbers: 7-digit integers
- uuids: version-4 UUIDs built from 128 random bits
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable, Collection

from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.tasks import ValueKind
from ttt_eval.ruler.vocabulary import ADJECTIVES, NOUNS

MakeValue = Callable[[random.Random], str]


def random_word_pair(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def random_number(rng: random.Random, digits: int = 7) -> str:
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1))


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_letters(rng: random.Random, length: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choices(alphabet, k=length))


def value_maker(kind: ValueKind) -> MakeValue:
    """The draw function of a key or value kind."""
    makers: dict[str, MakeValue] = {
        "words": random_word_pair, "numbers": random_number, "uuids": random_uuid,
    }
    if kind not in makers:
        raise RulerError(f"unknown needle kind {kind!r}; expected one of {sorted(makers)}")
    return makers[kind]


def draw_distinct(
    rng: random.Random, make: MakeValue, count: int, exclude: Collection[str] = ()
) -> list[str]:
    """``count`` distinct draws that avoid ``exclude``, so no two needles share a key or
    value (RULER does not check; a clash would make the answer ambiguous)."""
    drawn: list[str] = []
    seen = set(exclude)
    attempts = 0
    while len(drawn) < count:
        attempts += 1
        if attempts > 1000 * (count + 1):
            raise RulerError(f"could not draw {count} distinct values avoiding {len(exclude)} "
                             "taken ones: the value space is too small")
        value = make(rng)
        if value not in seen:
            seen.add(value)
            drawn.append(value)
    return drawn
