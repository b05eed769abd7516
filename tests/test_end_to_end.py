"""The `ttt` command end to end on a corpus of its own: tokenizer, token store, FA, SWA and
TTT-E2E stages, the evaluation bundle over the three and the ledger report; then a warm
start from a Hugging Face snapshot: import, then a TTT-E2E stage that adds prime MLPs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ttt_app_testlib import E2E, tiny_overrides

from ttt_cli.main import main
from ttt_ledger import Ledger, RunStatus, ledger_path

KINDS = {"fa": {}, "swa": {"model.seq_modeling_block": "SWA",
                           "model.sliding_window_size": 32}, "e2e": E2E}


def _ttt(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


def _own_corpus_store(work: Path) -> Path:
    """The README's way: a corpus, a tokenizer trained on it, its token store."""
    _ttt("data", "synth", "--out", work / "corpus.jsonl", "--docs", 60)
    _ttt("data", "train-tokenizer", "--input", work / "corpus.jsonl", "--out", work / "tok",
         "--vocab-size", 512)
    _ttt("data", "tokenize", "--tokenizer", work / "tok", "--input", work / "corpus.jsonl",
         "--out", work / "store")
    return work / "store"


def test_three_kinds_train_evaluate_and_report(tmp_path: Path, capsys: pytest.CaptureFixture):
    work = tmp_path
    store = _own_corpus_store(work)
    for kind, extra in KINDS.items():
        _ttt("train", *tiny_overrides(work, store, name=kind, **extra))
    with Ledger(ledger_path(work / "experiments"), create=False) as ledger:
        runs = {r.run_id: r for r in ledger.runs("t")}
    assert {k: runs[k].model_kind for k in KINDS} == {"fa": "fa", "swa": "swa", "e2e": "e2e"}
    assert all(r.status is RunStatus.COMPLETED for r in runs.values())
    assert all(np.isfinite(r.final_metrics["heldout_loss"]) for r in runs.values())
    capsys.readouterr()
    _ttt("eval", "bundle", "--checkpoint", *(work / "checkpoints" / "t" / k for k in KINDS),
         "--dataset", store, "--tokenizer", work / "tok", "--contexts", "64,128",
         "--tokens-per-context", 512, "--ruler-tasks", "niah_single_1",
         "--ruler-lengths", 512, "--samples-per-cell", 1, "--max-new-tokens", 4,
         "--efficiency-contexts", 64, "--repeats", 1, "--no-progress", "--out", work / "eval")
    bundle = json.loads(next((work / "eval").glob("*.json")).read_text())
    assert len(bundle["models"]) == 3 and not bundle["failed"]
    for model in bundle["models"]:
        losses = [c["mean_nll"] for c in model["sweep"]["contexts"]]
        assert len(losses) == 2 and all(np.isfinite(losses))
    _ttt("report", "--exp-dir", work / "experiments", "--exp-folder", "t")
    report = capsys.readouterr().out
    assert all(k in report for k in KINDS)


def test_warm_start_from_a_hugging_face_snapshot(tmp_path: Path):
    from ttt_import.families import get_family
    from ttt_import.standins import build_hf_snapshot
    from ttt_train.pilot_assets import pilot_model_config

    work = tmp_path
    store = _own_corpus_store(work)
    cfg = pilot_model_config("smollm2_360m").replace(vocab_size=512)
    snapshot = build_hf_snapshot(work / "hf", get_family("llama").config_to_hf(cfg))
    _ttt("import", "--hf-dir", snapshot, "--out", work / "checkpoints" / "t" / "import-base")
    _ttt("train", *tiny_overrides(work, store, name="warm", **{
        **E2E, "training.load_part": "params", "training.resume_exp_name": "import-base",
        "training.warmstart_recipe": "ttt"}))
    with Ledger(ledger_path(work / "experiments"), create=False) as ledger:
        warm = ledger.get_run("t", "warm")
    assert warm.status is RunStatus.COMPLETED and warm.restore.label == "params"
    assert warm.model_kind == "e2e" and np.isfinite(warm.final_metrics["heldout_loss"])
