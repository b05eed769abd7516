"""What the bundle says about itself: one line per checkpoint, the notes and failures a
reader must see, what was written; and the spec a user's choices make (defaults filled in
the way the CLI documents them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttt_eval.bundle import (
    bundle_spec,
    bundle_summary,
    describe_written,
    failure_lines,
    skip_notes,
)
from ttt_eval.errors import EvalError
from ttt_eval.retrieval import DEFAULT_DEPTHS
from ttt_eval.ruler import TASKS
from ttt_eval.sweep import DEFAULT_CONTEXTS

BUNDLE = {"failed": True, "models": [
    {"name": "swa", "kind": "swa", "failures": [], "skipped": [
        {"measure": "ruler", "reason": "no tokenizer given"}],
     "sweep": {"contexts": [
         {"context": 64, "mean_nll": 2.5, "beyond_window": {"count": 0}},
         {"context": 128, "mean_nll": 2.25, "beyond_window": {"count": 9, "mean_nll": 2.75}},
         {"context": 256, "mean_nll": None}]},
     "trend": {"decode_nll_slope": {"per_1k_tokens": -0.0125}}},
    {"name": "e2e", "kind": "e2e", "skipped": [],
     "failures": [{"measure": "sweep@256", "reason": "non-finite NLL"}],
     "ruler": {"tasks": {"vt": {"rank": {"accuracy": 0.5}, "generation": {"accuracy": 0.25}},
                         "fwe": {"rank": {"accuracy": 1.0}}}},
     "free_trend": {"decode_nll_slope": {"per_1k_tokens": 0.5}}}]}


def test_summary_is_one_line_per_checkpoint_with_the_numbers_measured():
    swa, e2e = bundle_summary(BUNDLE).split("\n")
    assert swa == ("swa (swa)  64: 2.500  128: 2.250 (beyond window 2.750)  "
                   "decode slope -0.0125/1K")
    # rank averages both tasks, generation the one task that generated
    assert e2e == "e2e (e2e)  RULER rank 0.750  RULER generation 0.250  " \
                  "free-generation slope +0.5000/1K"


def test_notes_and_failures_name_model_measure_and_reason():
    assert skip_notes(BUNDLE) == ["swa: ruler not run: no tokenizer given"]
    assert failure_lines(BUNDLE) == ["e2e sweep@256: non-finite NLL"]
    assert failure_lines({"models": [{"name": "a", "failures": []}]}) == []


def test_written_line_counts_plots_and_ledger_records():
    paths = {"json": Path("o/x.json"), "csv": Path("o/x.csv"), "plots": [1, 2, 3]}
    assert describe_written(paths) == "wrote o/x.json, o/x.csv and 3 plots"
    assert describe_written({**paths, "ledger_records": 0}) == \
        "wrote o/x.json, o/x.csv and 3 plots; 0 ledger eval records"


def test_spec_defaults_follow_the_sweep_contexts():
    spec = bundle_spec()
    assert spec.contexts == DEFAULT_CONTEXTS
    assert spec.retrieval.tasks == tuple(TASKS) and spec.retrieval.lengths == DEFAULT_CONTEXTS
    assert spec.retrieval.depths == DEFAULT_DEPTHS and spec.memory_limit_bytes is None
    spec = bundle_spec(contexts=[64, 128], ruler_tasks=["vt"], memory_limit_gib=1.5, seed=7,
                       efficiency_contexts=[64])
    assert spec.retrieval.lengths == (64, 128) and spec.retrieval.tasks == ("vt",)
    assert spec.retrieval.seed == spec.seed == 7 and spec.efficiency_contexts == (64,)
    assert spec.memory_limit_bytes == 3 * 2**29
    assert bundle_spec(ruler=False).retrieval is None


def test_spec_refuses_an_unknown_ruler_task():
    with pytest.raises(EvalError, match="unknown RULER task"):
        bundle_spec(ruler_tasks=["no_such_task"])
