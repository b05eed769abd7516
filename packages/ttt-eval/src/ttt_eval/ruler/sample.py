"""What a generator returns: one prompt of an exact token length with its answers, where
its needles ended up, and candidate answers for log-likelihood ranking."""

from __future__ import annotations

from dataclasses import dataclass

from ttt_eval.ruler.tasks import RulerTask


@dataclass(frozen=True)
class NeedlePlacement:
    """Where one inserted sentence (needle, distractor needle or assignment) landed.

    ``token_offset`` is the index in ``Sample.token_ids`` of the first token holding any of
    its text (with BPE that token may also hold the space before it). ``depth`` is the
    fraction of the haystack's tokens (inserted sentences excluded) that come before it:
    0 is the start of the context, 1 its end.
    """

    text: str
    token_offset: int
    depth: float
    holds_answer: bool


@dataclass(frozen=True)
class Sample:
    """One RULER sample.

    ``candidates`` are possible completions of the prompt (the answers joined as
    ``candidate_format`` of the task says) with the true one at ``true_candidate``; the
    others are answers of the same kind, taken from the haystack where it has some.
    """

    task: str
    config: RulerTask
    length: int
    seed: int
    requested_depth: float | None
    prompt: str
    token_ids: tuple[int, ...]
    answers: tuple[str, ...]
    needles: tuple[NeedlePlacement, ...]
    candidates: tuple[str, ...]
    true_candidate: int
