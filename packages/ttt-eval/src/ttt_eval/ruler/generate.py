"""One entry point for every RULER task: checks the request, then hands it to the task's
generator."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttt_eval.ruler.common_words import generate_common_words
from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.frequent_words import generate_frequent_words
from ttt_eval.ruler.niah import generate_niah
from ttt_eval.ruler.sample import Sample
from ttt_eval.ruler.tasks import (
    TASKS,
    CommonWordsTask,
    FrequentWordsTask,
    NiahTask,
    RulerTask,
    VariableTrackingTask,
)
from ttt_eval.ruler.tokens import Encoder, TokenCounter
from ttt_eval.ruler.variable_tracking import generate_variable_tracking


def generate_sample(
    task: str | RulerTask,
    tokenizer: Encoder,
    length: int,
    *,
    seed: int,
    depth: float | None = None,
    essay: str | None = None,
    words: Sequence[str] | None = None,
    num_distractors: int = 4,
) -> Sample:
    """A sample of ``task`` (a name in ``TASKS`` or a task dataclass) whose prompt encodes
    to exactly ``length`` tokens with ``tokenizer``.

    ``length`` is the prompt alone: RULER's ``max_seq_length`` also holds the task's
    ``tokens_to_generate``. ``depth`` (0..1) places the needles that hold the answer;
    None draws depths as RULER does, and tasks without needles (cwe, fwe) take only None.
    ``essay`` is the text of essay haystacks; ``words`` replaces cwe's vocabulary.
    The same arguments always give the same sample.
    """
    config = _resolve(task)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise RulerError(f"{config.name}: length must be a positive int, got {length!r}")
    if depth is not None and not (isinstance(depth, int | float) and math.isfinite(depth)
                                  and 0.0 <= depth <= 1.0):
        raise RulerError(f"{config.name}: depth must be a fraction in 0..1 or None, "
                         f"got {depth!r}")
    counter = TokenCounter(tokenizer)
    if isinstance(config, NiahTask):
        return generate_niah(config, counter, length, seed, depth, essay, num_distractors)
    if isinstance(config, VariableTrackingTask):
        return generate_variable_tracking(config, counter, length, seed, depth, essay,
                                          num_distractors)
    if depth is not None:
        raise RulerError(f"{config.name} hides no needle, so it takes no depth; pass None")
    if isinstance(config, CommonWordsTask):
        return generate_common_words(config, counter, length, seed, words, num_distractors)
    return generate_frequent_words(config, counter, length, seed, num_distractors)


def _resolve(task: str | RulerTask) -> RulerTask:
    if isinstance(task, str):
        if task not in TASKS:
            raise RulerError(f"unknown RULER task {task!r}; known: {', '.join(TASKS)}")
        return TASKS[task]
    if not isinstance(task, NiahTask | VariableTrackingTask | CommonWordsTask
                      | FrequentWordsTask):
        raise RulerError(f"task must be a RULER task name or config, got "
                         f"{type(task).__name__}")
    return task
