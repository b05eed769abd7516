"""The eval results an evaluation bundle (`ttt eval bundle`) records, by name, and the
columns a report shows for them: one home for the names both sides use.

* `ctx<N>`: the context sweep at N tokens; keys `loss`, `inside_window`,
  `beyond_window` (mean NLL over those target positions) and `tokens` (targets counted).
* `ruler`: RULER retrieval; keys `rank` and `generation` (mean accuracy over tasks and
  cells), `<task>/rank`, `<task>/generation`, and `samples`.
* `decode`: the decode trend; keys `nll_slope_per_1k`, `low`, `high` (its 95% interval)
  and `tokens`; with a reference checkpoint, `free_nll_slope_per_1k` (the reference's NLL
  slope on the model's own free generation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ttt_ledger.records import EvalResult, RunRecord

RULER_EVAL = "ruler"
DECODE_EVAL = "decode"
_CONTEXT = re.compile(r"^ctx(\d+)$")


def context_eval_name(context: int) -> str:
    return f"ctx{int(context)}"


def context_of(name: str) -> int | None:
    """N for an eval named `ctx<N>`, else None."""
    m = _CONTEXT.match(name)
    return int(m.group(1)) if m else None


def latest_evals(record: RunRecord) -> dict[str, EvalResult]:
    """The most recent eval result of each name."""
    out: dict[str, EvalResult] = {}
    for result in record.eval_results:
        out[result.name] = result
    return out


def sweep_contexts(runs: Sequence[RunRecord]) -> list[int]:
    """Every context some run has a sweep result for, ascending."""
    found = {context_of(e.name) for r in runs for e in r.eval_results}
    return sorted(c for c in found if c is not None)


def has_external_evals(runs: Sequence[RunRecord]) -> bool:
    names = {e.name for r in runs for e in r.eval_results}
    return bool(names & {RULER_EVAL, DECODE_EVAL}) or bool(sweep_contexts(runs))


def external_columns(runs: Sequence[RunRecord]) -> list[tuple[str, str, str]]:
    """(header, eval name, key) of every column with a value in some run: the loss at each
    context, the beyond-window loss at the longest, RULER accuracies, the decode slope."""
    contexts = sweep_contexts(runs)
    cols = [(f"loss@{c}", context_eval_name(c), "loss") for c in contexts]
    if contexts:
        c = contexts[-1]
        cols.append((f"beyond-window@{c}", context_eval_name(c), "beyond_window"))
    cols += [("RULER rank", RULER_EVAL, "rank"), ("RULER gen", RULER_EVAL, "generation"),
             ("decode slope/1K", DECODE_EVAL, "nll_slope_per_1k")]
    present = []
    for header, name, key in cols:
        if any(key in latest_evals(r).get(name, EvalResult(name)).metrics for r in runs):
            present.append((header, name, key))
    return present


def external_value(record: RunRecord, name: str, key: str) -> float | None:
    result = latest_evals(record).get(name)
    return None if result is None else result.metrics.get(key)
