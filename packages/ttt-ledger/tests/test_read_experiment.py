"""Reading one folder for a report: never creates a ledger, and a folder without runs (a
typo) is an error that lists the folders the ledger does hold."""

from __future__ import annotations

import pytest

from conftest import QWEN
from ttt_ledger import Ledger, LedgerError, LedgerNotFoundError, build_stage_plan
from ttt_ledger.store import read_experiment


def test_read_experiment_returns_the_folders_runs(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.add_plan(build_stage_plan(QWEN, "pilot", budget="pilot"))
    experiment = read_experiment(tmp_path, "pilot")
    assert experiment.exp_folder == "pilot" and len(experiment.runs) == 10


def test_an_empty_folder_names_the_folders_there(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        ledger.add_plan(build_stage_plan(QWEN, "pilot", budget="pilot"))
    with pytest.raises(LedgerError, match=r"no runs in experiment folder 'pilt' of "
                                          r".*ledger.sqlite \(folders there: pilot\)"):
        read_experiment(tmp_path, "pilt")


def test_a_missing_ledger_is_not_created(tmp_path):
    with pytest.raises(LedgerNotFoundError):
        read_experiment(tmp_path / "nowhere", "pilot")
    assert not (tmp_path / "nowhere").exists()
