"""RULER's needle-in-a-haystack tasks (``niah_*``).

Needles read "One of the special magic {numbers} for {key} is: {value}."; the question
asks for the values of some keys. Haystacks: the noise block repeated, one per line; the
sentences of a supplied essay, space-joined; or distractor needles with other keys, one
per line. Without a requested depth each needle takes a depth from RULER's 40-point grid;
with one, every needle holding an answer sits there and the distractor needles (the keys
not asked about) keep grid depths.
"""

from __future__ import annotations

import random

from ttt_eval.ruler.candidates import build_candidates
from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.haystack import (
    FixedUnits,
    GeneratedUnits,
    RepeatedUnits,
    UnitSource,
    split_sentences,
)
from ttt_eval.ruler.layout import Insert, build_haystack_prompt
from ttt_eval.ruler.sample import Sample
from ttt_eval.ruler.tasks import DEPTH_GRID, NiahTask
from ttt_eval.ruler.templates import (
    NEEDLE_SENTENCE,
    NIAH_ANSWER_PREFIX,
    NIAH_SINGLE_ANSWER_PREFIX,
    NIAH_SINGLE_TEMPLATE,
    NIAH_TEMPLATE,
    NOISE_SENTENCE,
    frame,
)
from ttt_eval.ruler.tokens import TokenCounter
from ttt_eval.ruler.values import MakeValue, draw_distinct, value_maker


def join_values(values: list[str] | tuple[str, ...]) -> str:
    """The candidate format: values in order, comma separated."""
    return ", ".join(values)


def query_phrase(keys: list[str]) -> str:
    """RULER's list of asked keys: "a", "a, and b", "a, b, and c"."""
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]


def generate_niah(
    task: NiahTask,
    counter: TokenCounter,
    length: int,
    seed: int,
    depth: float | None,
    essay: str | None,
    num_distractors: int,
) -> Sample:
    what = f"{task.name} at {length} tokens"
    for field in ("num_needle_k", "num_needle_v", "num_needle_q"):
        if getattr(task, field) < 1:
            raise RulerError(f"{task.name}: {field} must be >= 1, got {getattr(task, field)}")
    rng = random.Random(seed)
    make_key, make_value = value_maker(task.type_needle_k), value_maker(task.type_needle_v)
    num_keys = max(task.num_needle_k, task.num_needle_q)  # as RULER: every asked key exists
    keys = draw_distinct(rng, make_key, num_keys)
    flat_values = draw_distinct(rng, make_value, num_keys * task.num_needle_v)
    values = [flat_values[i * task.num_needle_v:(i + 1) * task.num_needle_v]
              for i in range(num_keys)]
    needles = [(key, value) for key, vals in zip(keys, values, strict=True) for value in vals]
    rng.shuffle(needles)
    asked = rng.sample(range(num_keys), task.num_needle_q)
    queries = [keys[i] for i in asked]
    answers = [value for i in asked for value in values[i]]
    grid = _grid_depths(rng, len(needles))

    inserts = [
        Insert(NEEDLE_SENTENCE.format(type_needle_v=task.type_needle_v, key=key, value=value),
               depth if depth is not None and key in queries else grid_depth,
               key in queries)
        for (key, value), grid_depth in zip(needles, grid, strict=True)
    ]
    single = task.num_needle_q * task.num_needle_v == 1
    kind = task.type_needle_v[:-1] if single else task.type_needle_v
    prompt_frame = frame(NIAH_SINGLE_TEMPLATE if single else NIAH_TEMPLATE,
                         NIAH_SINGLE_ANSWER_PREFIX if single else NIAH_ANSWER_PREFIX,
                         kind=kind, query=query_phrase(queries))

    units, separator, haystack_values = _haystack(task, essay, random.Random(rng.getrandbits(64)),
                                                  make_key, make_value, set(keys))
    built = build_haystack_prompt(counter, length, prompt_frame, units, separator, inserts, what)
    pool = [v for key, v in needles if key not in queries] + haystack_values[:built.units_used]
    candidates, true_index = build_candidates(rng, answers, pool, make_value, num_distractors,
                                              join_values)
    return Sample(task.name, task, length, seed, depth, built.prompt, built.token_ids,
                  tuple(answers), built.needles, candidates, true_index)


def _grid_depths(rng: random.Random, count: int) -> list[float]:
    """RULER's draw: distinct grid depths while the grid has enough, else with repeats."""
    if count <= len(DEPTH_GRID):
        return rng.sample(DEPTH_GRID, count)
    return [rng.choice(DEPTH_GRID) for _ in range(count)]


def _haystack(
    task: NiahTask,
    essay: str | None,
    rng: random.Random,
    make_key: MakeValue,
    make_value: MakeValue,
    real_keys: set[str],
) -> tuple[UnitSource, str, list[str]]:
    """The task's haystack units and separator, and a list that collects the values of
    distractor needles as they are drawn (hard negatives for the candidates)."""
    drawn_values: list[str] = []
    if task.type_haystack == "noise":
        return RepeatedUnits(NOISE_SENTENCE), "\n", drawn_values
    if task.type_haystack == "essay":
        if not essay or not essay.strip():
            raise RulerError(f"{task.name} uses an essay haystack: pass essay=<text> "
                             "(RULER uses Paul Graham's essays)")
        return FixedUnits(split_sentences(essay), f"{task.name}: the essay"), " ", drawn_values
    if task.type_haystack == "needle":
        def distractor() -> str:
            key = draw_distinct(rng, make_key, 1, exclude=real_keys)[0]
            value = make_value(rng)
            drawn_values.append(value)
            return NEEDLE_SENTENCE.format(type_needle_v=task.type_needle_v, key=key, value=value)
        return GeneratedUnits(distractor), "\n", drawn_values
    raise RulerError(f"{task.name}: unknown type_haystack {task.type_haystack!r}; expected "
                     "'noise', 'essay' or 'needle'")
