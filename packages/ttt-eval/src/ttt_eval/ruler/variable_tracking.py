"""RULER's variable tracking task (``vt``).

Each chain assigns a 5-digit value to a variable and passes it on ``num_hops`` times
("VAR B = VAR A"); the question asks for every variable holding the first chain's value.
Statements keep chain order, each on its own line in the noise haystack or as a sentence
ending in "." in an essay. Without a requested depth a chain's statements take sorted
uniform depths (RULER's sorted random positions); with one, the first chain's value
assignment sits at that depth and its hops follow at sorted depths between it and the
end. A one-shot example (3-letter names, at most 10 hops) precedes the prompt, as in
RULER; it uses the same template, followed by its answer and a blank line.
"""

from __future__ import annotations

import random
import string
from collections.abc import Collection

from ttt_eval.ruler.candidates import build_candidates
from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.haystack import FixedUnits, RepeatedUnits, UnitSource, split_sentences
from ttt_eval.ruler.layout import Insert, build_haystack_prompt
from ttt_eval.ruler.sample import Sample
from ttt_eval.ruler.tasks import VariableTrackingTask
from ttt_eval.ruler.templates import NOISE_SENTENCE, VT_ANSWER_PREFIX, VT_TEMPLATE, Frame, frame
from ttt_eval.ruler.tokens import TokenCounter
from ttt_eval.ruler.values import draw_distinct, random_letters, random_number

_NAME_LENGTH = 5
_EXAMPLE_NAME_LENGTH = 3
_EXAMPLE_MAX_HOPS = 10


def join_names(names: list[str] | tuple[str, ...]) -> str:
    """The candidate format (and RULER's example answer): names separated by spaces."""
    return " ".join(names)


def generate_variable_tracking(
    task: VariableTrackingTask,
    counter: TokenCounter,
    length: int,
    seed: int,
    depth: float | None,
    essay: str | None,
    num_distractors: int,
) -> Sample:
    if task.num_chains < 1 or task.num_hops < 1:
        raise RulerError(f"{task.name}: num_chains and num_hops must be >= 1, got "
                         f"{task.num_chains} and {task.num_hops}")
    rng = random.Random(seed)
    units, separator = _haystack(task, essay)
    example_hops = min(_EXAMPLE_MAX_HOPS, task.num_hops)
    example_chains = _chains(rng, task.num_chains, example_hops, _EXAMPLE_NAME_LENGTH)
    # The answer prefix ends in a space, so the example's answer follows it directly.
    example_answer = join_names(example_chains[0][0]) + "\n\n"
    example_length = (task.example_budget - task.tokens_to_generate
                      - (counter.count(example_answer) - counter.count("")))
    end = "." if task.type_haystack == "essay" else ""
    example = build_haystack_prompt(
        counter, example_length, _frame(example_chains, example_hops, ""), units, separator,
        _statements(example_chains, example_hops, None, rng, end),
        f"{task.name} one-shot example at {example_length} tokens")

    chains = _chains(rng, task.num_chains, task.num_hops, _NAME_LENGTH,
                     taken_values=[value for _, value in example_chains])
    built = build_haystack_prompt(
        counter, length, _frame(chains, task.num_hops, example.prompt + example_answer), units,
        separator, _statements(chains, task.num_hops, depth, rng, end),
        f"{task.name} at {length} tokens")
    answers = chains[0][0]
    other_names = [name for names, _ in chains[1:] for name in names]
    candidates, true_index = build_candidates(
        rng, answers, other_names,
        lambda r: random_letters(r, _NAME_LENGTH, string.ascii_uppercase),
        num_distractors, join_names)
    return Sample(task.name, task, length, seed, depth, built.prompt, built.token_ids,
                  tuple(answers), built.needles, candidates, true_index)


def _haystack(task: VariableTrackingTask, essay: str | None) -> tuple[UnitSource, str]:
    if task.type_haystack == "noise":
        return RepeatedUnits(NOISE_SENTENCE), "\n"
    if task.type_haystack == "essay":
        if not essay or not essay.strip():
            raise RulerError(f"{task.name} uses an essay haystack: pass essay=<text>")
        return FixedUnits(split_sentences(essay), f"{task.name}: the essay"), " "
    raise RulerError(f"{task.name}: unknown type_haystack {task.type_haystack!r}; expected "
                     "'noise' or 'essay'")


def _chains(
    rng: random.Random,
    num_chains: int,
    num_hops: int,
    name_length: int,
    taken_values: Collection[str] = (),
) -> list[tuple[list[str], str]]:
    """(variable names in assignment order, value) per chain; names and values distinct,
    and values unlike the example's so its chain cannot answer the question."""
    names = draw_distinct(
        rng, lambda r: random_letters(r, name_length, string.ascii_uppercase),
        num_chains * (num_hops + 1))
    values = draw_distinct(rng, lambda r: random_number(r, digits=5), num_chains, taken_values)
    return [(names[c * (num_hops + 1):(c + 1) * (num_hops + 1)], values[c])
            for c in range(num_chains)]


def _statements(
    chains: list[tuple[list[str], str]],
    num_hops: int,
    depth: float | None,
    rng: random.Random,
    end: str,
) -> list[Insert]:
    """Every chain's assignments, in chain order, with their depths."""
    inserts: list[Insert] = []
    for c, (names, value) in enumerate(chains):
        statements = [f"VAR {names[0]} = {value}"]
        statements += [f"VAR {names[j + 1]} = VAR {names[j]}" for j in range(num_hops)]
        if c == 0 and depth is not None:
            depths = [depth] + sorted(rng.uniform(depth, 1.0) for _ in range(num_hops))
        else:
            depths = sorted(rng.random() for _ in statements)
        inserts += [Insert(s + end, d, c == 0) for s, d in zip(statements, depths, strict=True)]
    return inserts


def _frame(chains: list[tuple[list[str], str]], num_hops: int, preamble: str) -> Frame:
    """The task template asking for the first chain's value, after ``preamble``."""
    task_frame = frame(VT_TEMPLATE, VT_ANSWER_PREFIX, query=chains[0][1], num_v=num_hops + 1)
    return Frame(preamble + task_frame.head, task_frame.tail)
