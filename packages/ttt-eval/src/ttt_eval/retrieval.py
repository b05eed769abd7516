"""RULER retrieval of a model: the synthetic suite's samples on a length × depth grid,
scored two ways — by greedy generation (RULER's `string_match_all`: the fraction of the
answers found in the output) and by the log-likelihood rank of the true answer among
candidates of the same kind (which still tells small models apart when they cannot yet
produce an answer).

Each prompt is built with the model's own tokenizer to the exact cell length, so nothing
is ever truncated. A candidate's score is the summed log-probability of its tokens after
the prompt, all candidates decoded at once from one prefill of the prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ttt_eval.errors import EvalError
from ttt_eval.generate import Generator
from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop
from ttt_eval.ruler import (
    TASKS,
    GridPoint,
    RulerError,
    Sample,
    generate_sample,
    grid_points,
    match_fraction,
    rank_credit,
    summarize_cells,
)
from ttt_eval.ruler.tasks import CommonWordsTask, FrequentWordsTask
from ttt_eval.sampling import Sampling
from ttt_model.decoding import repeat_rows
from ttt_model.inference import decoder_for
from ttt_model.model import Transformer

DEFAULT_DEPTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


class RetrievalError(EvalError):
    """A sample that cannot be built or scored (one line)."""


@dataclass(frozen=True)
class RetrievalSpec:
    """Which cells to fill. Tasks without needles (cwe, fwe) have one depth (None).
    `max_new_tokens` caps each task's RULER generation budget (None: RULER's)."""

    tasks: tuple[str, ...] = tuple(TASKS)
    lengths: tuple[int, ...] = (4096,)
    depths: tuple[float, ...] = DEFAULT_DEPTHS
    samples_per_cell: int = 4
    num_distractors: int = 4
    generation: bool = True
    max_new_tokens: int | None = None
    seed: int = 0
    essay: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise RetrievalError(f"unknown RULER task(s) {unknown}; known: {', '.join(TASKS)}")
        if not self.tasks or not self.lengths or self.samples_per_cell < 1:
            raise RetrievalError("retrieval needs at least one task, one length and "
                                 f"samples_per_cell >= 1, got {self}")


def task_depths(task: str, depths: Sequence[float]) -> tuple[float | None, ...]:
    config = TASKS[task]
    if isinstance(config, CommonWordsTask | FrequentWordsTask):
        return (None,)
    return tuple(depths)


def continuation_ids(tokenizer: Any, prompt: str, prompt_ids: Sequence[int],
                     text: str) -> tuple[int, ...]:
    """The tokens `text` adds after the prompt, as the model would read them: the tail of
    encoding prompt + " " + text when its head is the prompt's tokens (BPE merges at the
    seam are then the real ones), else the text encoded alone."""
    joined = tokenizer.encode(prompt + " " + text).ids
    n = len(prompt_ids)
    if tuple(joined[:n]) == tuple(prompt_ids) and len(joined) > n:
        return tuple(joined[n:])
    return tuple(tokenizer.encode(" " + text, add_special_tokens=False).ids)


class CandidateScorer:
    """Summed log-probabilities of continuations after a prompt: one prefill, then every
    continuation teacher-forced as one row of a decode batch."""

    def __init__(self, model: Transformer, inner: InnerLoop):
        self.model, self.inner = model, inner
        self._fns: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def _compiled(self, n_prompt: int, n_cont: int):
        key = (n_prompt, n_cont)
        if key not in self._fns:
            dec = decoder_for(self.model, max_len=n_prompt + n_cont, inner_lr=self.inner.lr,
                              inner_clip=self.inner.clip, spec=self.inner.spec)
            self._fns[key] = (dec, jax.jit(dec.prefill, static_argnames="per_token"),
                              jax.jit(dec.decode_step, donate_argnums=0))
        return self._fns[key]

    def logprobs(self, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
                 ) -> list[float]:
        n_cont = max(len(c) for c in continuations)
        if min(len(c) for c in continuations) == 0:
            raise RetrievalError("a candidate continuation has no tokens")
        dec, prefill, step = self._compiled(len(prompt_ids), n_cont)
        state, _ = prefill(jnp.asarray([prompt_ids], jnp.int32), per_token=False)
        state = repeat_rows(state, len(continuations))
        toks_CxM = np.zeros((len(continuations), n_cont), np.int32)
        valid_CxM = np.zeros((len(continuations), n_cont), bool)
        for i, c in enumerate(continuations):
            toks_CxM[i, : len(c)], valid_CxM[i, : len(c)] = c, True
        total_C = jnp.zeros(len(continuations), jnp.float32)
        for t in range(n_cont):
            logp_CxV = jax.nn.log_softmax(dec.next_logits(state).astype(jnp.float32), -1)
            tok_C = jnp.asarray(toks_CxM[:, t])
            picked = jnp.take_along_axis(logp_CxV, tok_C[:, None], axis=1)[:, 0]
            total_C = total_C + jnp.where(jnp.asarray(valid_CxM[:, t]), picked, 0.0)
            if t + 1 < n_cont:
                state = step(state, tok_C)
        out = [float(x) for x in np.asarray(total_C)]
        if not all(math.isfinite(x) for x in out):
            raise RetrievalError(f"model {self.model.cfg.name!r} gives a non-finite "
                                 f"log-likelihood to a candidate: {out}")
        return out


def _samples(task: str, tokenizer: Any, spec: RetrievalSpec) -> list[tuple[GridPoint, Sample]]:
    points = grid_points(spec.lengths, task_depths(task, spec.depths), spec.samples_per_cell,
                         spec.seed)
    out = []
    for p in points:
        try:
            s = generate_sample(task, tokenizer, p.length, seed=p.seed, depth=p.depth,
                                essay=spec.essay, num_distractors=spec.num_distractors)
        except RulerError as e:
            where = f"{task} at {p.length} tokens"  # said once, whoever says it
            raise RetrievalError(str(e) if str(e).startswith(where) else f"{where}: {e}"
                                 ) from None
        out.append((p, s))
    return out


def _cells(scored: list[tuple[GridPoint, float]]) -> list[dict[str, Any]]:
    return [{"length": c.length, "depth": c.depth, "n": c.n, "accuracy": c.accuracy,
             "low": c.low, "high": c.high} for c in summarize_cells(scored)]


def _overall(scored: list[tuple[GridPoint, float]]) -> dict[str, Any]:
    from ttt_eval.ruler import wilson_interval

    total, n = sum(s for _, s in scored), len(scored)
    low, high = wilson_interval(total, n)
    return {"accuracy": total / n, "n": n, "low": low, "high": high}


def evaluate_retrieval(model: Transformer, tokenizer: Any, spec: RetrievalSpec, *,
                       inner: InnerLoop = PAPER_INNER_LOOP, eos_id: int | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Per task: cells of the length × depth grid (accuracy, 95% Wilson interval, n) and
    the task's overall accuracy, for `rank` (log-likelihood) and, when asked, `generation`
    (greedy, string_match_all). Chance of `rank` is 1 / (num_distractors + 1)."""
    vocab = model.cfg.vocab_size
    if tokenizer.get_vocab_size(with_added_tokens=True) > vocab:
        raise RetrievalError(f"tokenizer has {tokenizer.get_vocab_size(with_added_tokens=True)}"
                             f" tokens but model {model.cfg.name!r} has a vocabulary of {vocab}")
    scorer = CandidateScorer(model, inner)
    per_task = {t: _samples(t, tokenizer, spec) for t in spec.tasks}
    total = sum(len(v) for v in per_task.values())
    bar = tqdm(total=total, desc="RULER", unit="sample", disable=not progress, mininterval=5)
    results: dict[str, Any] = {}
    for task, samples in per_task.items():
        ranked: list[tuple[GridPoint, float]] = []
        matched: list[tuple[GridPoint, float]] = []
        budget = TASKS[task].tokens_to_generate
        if spec.max_new_tokens is not None:
            budget = min(budget, spec.max_new_tokens)
        generator = Generator(model, inner, max_new_tokens=budget) if spec.generation else None
        for point, sample in samples:
            conts = [continuation_ids(tokenizer, sample.prompt, sample.token_ids, c)
                     for c in sample.candidates]
            scores = scorer.logprobs(sample.token_ids, conts)
            ranked.append((point, rank_credit(scores, sample.true_candidate)))
            if generator is not None:
                (gen,) = generator.generate([sample.token_ids], sampling=Sampling(),
                                            stop_ids=() if eos_id is None else (eos_id,))
                text = tokenizer.decode(list(gen.tokens), skip_special_tokens=True)
                matched.append((point, match_fraction(text, sample.answers)))
            bar.update(1)
        results[task] = {"rank": {"cells": _cells(ranked), **_overall(ranked),
                                  "chance": 1.0 / (spec.num_distractors + 1)}}
        if matched:
            results[task]["generation"] = {"cells": _cells(matched), **_overall(matched),
                                           "max_new_tokens": budget}
    bar.close()
    return {"tasks": results, "lengths": list(spec.lengths), "depths": list(spec.depths),
            "samples_per_cell": spec.samples_per_cell, "num_distractors": spec.num_distractors,
            "seed": spec.seed, "model": model.cfg.name}
