"""RULER's frequent words extraction task (``fwe``).

Random coded words (``coded_wordlen`` lowercase letters) are ranked; rank k occurs
``int(N * k**-alpha / zeta(alpha))`` times (a Zipf law), rank 1 is the noise word '...',
and ranks 2 to 4 are the answer. Length is reached by the scale N; the gap left is
padded with more '...' (the last possibly cut to '.' or '..'), which only adds to the
noise word, already the most frequent, so the answer is unchanged.
"""

from __future__ import annotations

import random
import string

from ttt_eval.ruler.candidates import build_candidates
from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.fitting import fit_exact_length
from ttt_eval.ruler.sample import Sample
from ttt_eval.ruler.tasks import FrequentWordsTask
from ttt_eval.ruler.templates import FWE_ANSWER_PREFIX, FWE_TEMPLATE, frame
from ttt_eval.ruler.tokens import TokenCounter
from ttt_eval.ruler.values import draw_distinct, random_letters

NOISE_WORD = "..."
_PAD_WORDS = 8
_TOKENS_PER_VOCAB_WORD = 50  # RULER's default vocabulary: one coded word per 50 tokens


def join_words(words: list[str] | tuple[str, ...]) -> str:
    """The candidate format: words comma separated."""
    return ", ".join(words)


def zipf_counts(total: int, vocab_size: int, alpha: float) -> list[int]:
    """Occurrences of ranks 1..vocab_size for a scale ``total``, as RULER computes them."""
    norm = _riemann_zeta(alpha)
    return [int(total * k**-alpha / norm) for k in range(1, vocab_size + 1)]


def _riemann_zeta(s: float, terms: int = 20) -> float:
    """zeta(s) for s > 1 by Euler-Maclaurin summation (error below 1e-10 for s >= 1.1)."""
    head = sum(k**-s for k in range(1, terms))
    n = float(terms)
    tail = (n ** (1 - s) / (s - 1) + n**-s / 2 + s * n ** (-s - 1) / 12
            - s * (s + 1) * (s + 2) * n ** (-s - 3) / 720)
    return head + tail


def generate_frequent_words(
    task: FrequentWordsTask,
    counter: TokenCounter,
    length: int,
    seed: int,
    num_distractors: int,
) -> Sample:
    what = f"{task.name} at {length} tokens"
    if task.alpha <= 1:
        raise RulerError(f"{task.name}: alpha must be > 1 for the zeta law, got {task.alpha}")
    vocab_size = (task.vocab_size if task.vocab_size is not None
                  else (length + task.tokens_to_generate) // _TOKENS_PER_VOCAB_WORD)
    if vocab_size < 4:
        raise RulerError(f"{what}: a vocabulary of {vocab_size} coded words is below the 4 "
                         "needed (noise plus three answers); ask for more tokens or set "
                         "vocab_size")
    rng = random.Random(seed)
    def coded_word(r: random.Random) -> str:
        return random_letters(r, task.coded_wordlen, string.ascii_lowercase)

    ranked = draw_distinct(rng, coded_word, vocab_size)
    ranked[0] = NOISE_WORD
    answers = ranked[1:4]
    list_seed = rng.getrandbits(64)
    task_frame = frame(FWE_TEMPLATE, FWE_ANSWER_PREFIX)

    def render(scale: int, pad: str) -> str:
        listed = [w for w, n in zip(ranked, zipf_counts(scale, vocab_size, task.alpha),
                                    strict=True) for _ in range(n)]
        random.Random(f"{list_seed}:{scale}").shuffle(listed)
        return task_frame.render(" ".join(listed) + (" " + pad if pad else ""))

    per_word = (counter.count(" ".join(ranked[1:9])) - counter.count("")) / len(ranked[1:9])
    room = length - counter.count(render(0, ""))
    fitted = fit_exact_length(render, lambda _: " ".join([NOISE_WORD] * _PAD_WORDS), counter,
                              length, min_size=0, max_size=None,
                              size_hint=max(0, int(room / max(per_word, 1.0))), what=what)
    counts = zipf_counts(fitted.size, vocab_size, task.alpha)
    if counts[3] < 1 or (vocab_size > 4 and counts[3] <= counts[4]):
        raise RulerError(f"{what}: too short for distinct top frequencies (ranks 2-5 occur "
                         f"{counts[1:5]} times); ask for more tokens")
    candidates, true_index = build_candidates(rng, answers, ranked[4:], coded_word,
                                              num_distractors, join_words)
    return Sample(task.name, task, length, seed, None, fitted.prompt, fitted.token_ids,
                  tuple(answers), (), candidates, true_index)
