"""Candidate answers for ranking by log-likelihood: the true answer among distractors of
the same kind, so a model that scores completions can be tested without generating.

Distractors are built from ``pool`` first (values that really occur in the haystack, the
hard negatives) and then from fresh draws, all from the sample's RNG; the true answer's
position is drawn too, so always picking one index scores at chance.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.values import MakeValue

Joiner = Callable[[Sequence[str]], str]


def build_candidates(
    rng: random.Random,
    answers: Sequence[str],
    pool: Sequence[str],
    fresh: MakeValue,
    num_distractors: int,
    join: Joiner,
) -> tuple[tuple[str, ...], int]:
    """``num_distractors + 1`` distinct completions and the index of the true one."""
    if num_distractors < 0:
        raise RulerError(f"num_distractors must be >= 0, got {num_distractors}")
    taken = set(answers)
    remaining = [item for item in dict.fromkeys(pool) if item not in taken]
    rng.shuffle(remaining)
    true_text = join(answers)
    distractors: list[str] = []
    seen = {true_text}
    draws, limit = 0, 100 * (num_distractors + 1) * (len(answers) + 1)
    while len(distractors) < num_distractors:
        items: list[str] = []
        while len(items) < len(answers):
            draws += 1
            if draws > limit:
                raise RulerError(f"could not draw {num_distractors} distinct distractors for "
                                 f"{true_text!r}: the value space is too small")
            item = remaining.pop() if remaining else fresh(rng)
            if item not in taken and item not in items:
                items.append(item)
        text = join(items)
        if text not in seen:
            seen.add(text)
            distractors.append(text)
    true_index = rng.randrange(num_distractors + 1)
    distractors.insert(true_index, true_text)
    return tuple(distractors), true_index
