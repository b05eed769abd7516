"""RULER's common words extraction task (``cwe``).

A numbered list ("1. word 2. word ...") holds ``num_cw`` common words ``freq_cw``
times each and other words ``freq_ucw`` times each, shuffled; the question asks for the
common ones. Length is reached by the number of distinct words; the gap left is padded
with further entries of words not yet in the list (once each, the last possibly cut
mid-word), which cannot change which words are common because frequencies are checked
to leave room (``freq_cw > freq_ucw + 2``). A one-shot example with its answer comes
first, as in RULER (40 words at frequencies 10 and 3, or 20 words at 3 and 1 below
``short_context``, where the list itself uses 6 and 1).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ttt_eval.ruler.candidates import build_candidates
from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.fitting import fit_exact_length
from ttt_eval.ruler.sample import Sample
from ttt_eval.ruler.tasks import CommonWordsTask
from ttt_eval.ruler.templates import CWE_ANSWER_PREFIX, CWE_TEMPLATE, frame
from ttt_eval.ruler.tokens import TokenCounter
from ttt_eval.ruler.vocabulary import COMMON_WORDS

_PAD_ENTRIES = 3


def numbered(words: Sequence[str], start: int = 1) -> str:
    """RULER's list format, also the candidate format: "1. a 2. b"."""
    return " ".join(f"{i}. {word}" for i, word in enumerate(words, start=start))


def generate_common_words(
    task: CommonWordsTask,
    counter: TokenCounter,
    length: int,
    seed: int,
    words: Sequence[str] | None,
    num_distractors: int,
) -> Sample:
    what = f"{task.name} at {length} tokens"
    vocabulary = list(dict.fromkeys(words)) if words is not None else list(COMMON_WORDS)
    short = length + task.tokens_to_generate < task.short_context
    example_words, example_cw, example_ucw = (20, 3, 1) if short else (40, 10, 3)
    freq_cw, freq_ucw = (6, 1) if short else (task.freq_cw, task.freq_ucw)
    if task.num_cw < 1 or freq_ucw < 1 or freq_cw <= freq_ucw + 2:
        raise RulerError(f"{task.name}: needs num_cw >= 1 and freq_cw > freq_ucw + 2 >= 3, "
                         f"got num_cw={task.num_cw}, freq_cw={freq_cw}, freq_ucw={freq_ucw}")
    if len(vocabulary) < max(example_words, task.num_cw + _PAD_ENTRIES):
        raise RulerError(f"{task.name}: the vocabulary has {len(vocabulary)} words, too few "
                         "for the example and the list")
    rng = random.Random(seed)
    task_frame = frame(CWE_TEMPLATE, CWE_ANSWER_PREFIX, num_cw=task.num_cw)

    example_pick = rng.sample(vocabulary, example_words)
    example_common = example_pick[:task.num_cw]
    example_list = example_common * example_cw + example_pick[task.num_cw:] * example_ucw
    rng.shuffle(example_list)
    example = task_frame.render(numbered(example_list)) + " " + numbered(example_common) + "\n"

    order = rng.sample(vocabulary, len(vocabulary))
    common = order[:task.num_cw]
    list_seed = rng.getrandbits(64)

    def entries(size: int) -> list[str]:
        listed = common * freq_cw + order[task.num_cw:size] * freq_ucw
        random.Random(f"{list_seed}:{size}").shuffle(listed)
        return listed

    def render(size: int, pad: str) -> str:
        return example + task_frame.render(numbered(entries(size)) + (" " + pad if pad else ""))

    def pad_stream(size: int) -> str:
        return numbered(order[size:size + _PAD_ENTRIES], start=len(entries(size)) + 1)

    per_entry = (counter.count(numbered(order[:20])) - counter.count("")) / 20
    room = length - counter.count(render(task.num_cw, ""))
    hint = task.num_cw + max(0, int(room / (per_entry * freq_ucw)))
    fitted = fit_exact_length(render, pad_stream, counter, length, min_size=task.num_cw,
                              max_size=len(vocabulary) - _PAD_ENTRIES, size_hint=hint, what=what)
    candidates, true_index = build_candidates(
        rng, common, order[task.num_cw:fitted.size], lambda r: r.choice(vocabulary),
        num_distractors, numbered)
    return Sample(task.name, task, length, seed, None, fitted.prompt, fitted.token_ids,
                  tuple(common), (), candidates, true_index)
