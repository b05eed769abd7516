"""SQLite store: every field round-trips, the stage lifecycle, clear errors, schema guard."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import QWEN
from ttt_ledger import (
    SCHEMA_VERSION,
    EvalResult,
    Ledger,
    LedgerError,
    LedgerNotFoundError,
    MetricPoint,
    RecordError,
    RestoreStatus,
    RunExistsError,
    RunNotFoundError,
    RunRecord,
    RunStateError,
    RunStatus,
    build_stage_plan,
    config_hash,
    git_commit,
    load_record_json,
    package_versions,
    save_record_json,
)

REQUIRED = dict(run_id="Q-A4", exp_folder="fold", family="qwen2_5_0_5b", path="adapter",
                stage="adapt", model_kind="e2e", train_mode="meta", context_length=8192)


def every_field_record() -> RunRecord:
    """A record where every field differs from its default (checked below)."""
    return RunRecord(
        run_id="Q-A5", exp_folder="external_phase1", family="smollm2_360m", path="scratch",
        stage="ext", model_kind="swa", train_mode="pretrain", context_length=32768,
        checkpoint_source="adapt-qwen05-e2e-8K-from-import",
        output_checkpoint="ext-qwen05-e2e-32K-from-import-bridge", recipe="ttt",
        config_name="external/qwen2_5_0_5b/ext-e2e-32K-from-import-bridge",
        data_root="/data/books", parent_run_ids=("Q-A4", "Q-X9"), planned_steps=300,
        steps_completed=123, tokens_seen=4_030_464, wall_clock_s=5123.25,
        device_kind="nvidia-h100", device_count=8, restore=RestoreStatus.resumed(120),
        final_metrics={"loss": 2.7182, "tokens_per_s": 812.5},
        best_metrics={"loss": 2.70, "val_loss": 2.81},
        eval_results=(
            EvalResult("books_32k", {"loss": 2.75, "ms_per_token": 3.5}, 32768,
                       (4.0, 3.5, 3.25), "2026-01-02T03:04:05.000+00:00"),
            EvalResult("niah", {"accuracy": 0.875}, 65536, (), "2026-01-02T03:05:00.000+00:00"),
        ),
        status=RunStatus.FAILED, failure_reason="OOM at step 124",
        interrupt_reason="SIGTERM at step 120; resume with training.load_part=all",
        config_hash="ab" * 32, git_commit="0123456789abcdef0123456789abcdef01234567-dirty",
        package_versions={"ttt-model": "0.1.0", "jax": "0.8.1"},
        created_at="2026-01-01T00:00:00.000+00:00", started_at="2026-01-01T00:01:00.000+00:00",
        finished_at="2026-01-01T01:26:00.000+00:00", updated_at="2026-01-01T01:26:01.000+00:00")


def test_test_record_sets_every_field():
    full, default = every_field_record(), RunRecord(**REQUIRED)
    same = [f.name for f in dataclasses.fields(RunRecord)
            if getattr(full, f.name) == getattr(default, f.name)]
    assert same == [], f"round-trip record leaves fields at their default: {same}"


def test_every_field_round_trips_through_sqlite(tmp_path):
    record = every_field_record()
    with Ledger.open(tmp_path) as ledger:
        assert ledger.add_run(record) == record
    with Ledger.open(tmp_path, create=False) as reopened:  # a new connection
        back = reopened.get_run("external_phase1", "Q-A5")
    assert back == record
    for f in dataclasses.fields(RunRecord):
        assert getattr(back, f.name) == getattr(record, f.name), f.name
    assert back.device_hours == pytest.approx(5123.25 * 8 / 3600)
    assert back.restore.label == "resumed@120"


def test_record_json_file_round_trip(tmp_path):
    record = every_field_record()
    path = save_record_json(record, tmp_path / "run")
    assert path.name == "ledger_record.json"
    assert load_record_json(path) == record
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_stage_lifecycle_as_the_training_app_uses_it(tmp_path):
    ledger = Ledger.open(tmp_path / "experiments")
    plan = build_stage_plan(QWEN, "pilot", budget="pilot")
    assert len(ledger.add_plan(plan)) == 10
    assert ledger.add_plan(plan) == []  # idempotent: a rerun keeps recorded rows
    assert all(r.status is RunStatus.PLANNED for r in ledger.runs("pilot"))

    started = ledger.start_run("pilot", "Q-A1", restore=RestoreStatus.params(),
                               device_kind="cpu", device_count=1, config_hash="c" * 64,
                               git_commit="abc", package_versions={"ttt-ledger": "0.1.0"})
    assert started.status is RunStatus.RUNNING and started.started_at is not None
    ledger.record_progress("pilot", "Q-A1", steps_completed=4, tokens_seen=4 * 2 * 8192,
                           wall_clock_s=10.0, points=[
                               MetricPoint("loss", 2, 32768, 5.0, 3.5),
                               MetricPoint("loss", 4, 65536, 10.0, 3.3),
                               MetricPoint("tokens_per_s", 4, 65536, 10.0, 6553.6)])
    mid = ledger.get_run("pilot", "Q-A1")
    assert (mid.steps_completed, mid.tokens_seen, mid.wall_clock_s) == (4, 65536, 10.0)
    assert mid.best_metrics == {"loss": 3.3}  # running min of loss-like metrics only

    done = ledger.complete_run("pilot", "Q-A1", final_metrics={"loss": 3.4},
                               steps_completed=8, tokens_seen=131072, wall_clock_s=21.0)
    assert done.status is RunStatus.COMPLETED and done.finished_at is not None
    assert done.best_metrics == {"loss": 3.3}  # the final 3.4 is worse than the logged 3.3
    assert [p.step for p in ledger.curve("pilot", "Q-A1", "loss")] == [2, 4]

    ledger.append_eval("pilot", "Q-A1", EvalResult("books_8k", {"loss": 3.6}, 8192))
    ledger.append_eval("pilot", "Q-A1", EvalResult("books_32k", {"loss": 3.9}, 32768))
    evals = ledger.get_run("pilot", "Q-A1").eval_results
    assert [e.name for e in evals] == ["books_8k", "books_32k"]
    assert all(e.recorded_at for e in evals)

    with pytest.raises(RunStateError, match="already completed"):
        ledger.start_run("pilot", "Q-A1", restore=RestoreStatus.fresh(), device_kind="cpu")

    ledger.start_run("pilot", "Q-A3", restore=RestoreStatus.params(), device_kind="cpu")
    failed = ledger.fail_run("pilot", "Q-A3", "missing source checkpoint pretrain-qwen05-"
                                              "fa-import-8K")
    assert failed.status is RunStatus.FAILED and "missing source" in failed.failure_reason
    # a failed stage leaves earlier rows intact, and may be restarted (resumed)
    assert ledger.get_run("pilot", "Q-A1").final_metrics == {"loss": 3.4}
    again = ledger.start_run("pilot", "Q-A3", restore=RestoreStatus.resumed(2),
                             device_kind="cpu")
    assert again.failure_reason is None and again.restore.label == "resumed@2"
    assert ledger.exp_folders() == ["pilot"]
    assert [r.run_id for r in ledger.runs("pilot", status="completed")] == ["Q-A1"]


def test_interrupted_run_round_trips_and_resumes(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.add_run(RunRecord(**REQUIRED))
    ledger.start_run("fold", "Q-A4", restore=RestoreStatus.params(), device_kind="cpu")
    ledger.record_progress("fold", "Q-A4", steps_completed=10, tokens_seen=81920,
                           wall_clock_s=30.0, points=[MetricPoint("loss", 10, 81920, 30.0, 3.5)])
    reason = "SIGTERM at step 12; resume with training.load_part=all"
    stopped = ledger.interrupt_run("fold", "Q-A4", reason=reason, steps_completed=12,
                                   tokens_seen=98304, wall_clock_s=36.5)
    assert stopped.status is RunStatus.INTERRUPTED and stopped.interrupt_reason == reason
    assert (stopped.steps_completed, stopped.tokens_seen, stopped.wall_clock_s) == (12, 98304,
                                                                                    36.5)
    assert stopped.finished_at is not None and stopped.failure_reason is None
    ledger.close()

    with Ledger.open(tmp_path, create=False) as reopened:  # a new connection
        back = reopened.get_run("fold", "Q-A4")
        assert back == stopped
        assert [r.run_id for r in reopened.runs("fold", status="interrupted")] == ["Q-A4"]
        assert load_record_json(save_record_json(back, tmp_path / "run")) == stopped
        # the interrupted attempt's curve stays; the resumed attempt continues at step 13
        resumed = reopened.start_run("fold", "Q-A4", restore=RestoreStatus.resumed(12),
                                     device_kind="cpu", rerun=True)
        assert resumed.status is RunStatus.RUNNING and resumed.interrupt_reason is None
        assert (resumed.restore.label, resumed.steps_completed) == ("resumed@12", 12)
        assert [p.step for p in reopened.curve("fold", "Q-A4", "loss")] == [10]
        done = reopened.complete_run("fold", "Q-A4", final_metrics={"loss": 3.25},
                                     steps_completed=20, tokens_seen=163840, wall_clock_s=60.0)
        assert done.status is RunStatus.COMPLETED and done.interrupt_reason is None


def test_interrupt_refuses_bad_input_and_keeps_the_row(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.add_run(RunRecord(**REQUIRED))
    budgets = dict(steps_completed=2, tokens_seen=16384, wall_clock_s=4.0)
    with pytest.raises(RunStateError, match="fold/Q-A4 is planned, not running"):
        ledger.interrupt_run("fold", "Q-A4", reason="SIGTERM", **budgets)
    ledger.start_run("fold", "Q-A4", restore=RestoreStatus.fresh(), device_kind="cpu")
    with pytest.raises(LedgerError, match="an interruption needs a reason"):
        ledger.interrupt_run("fold", "Q-A4", reason="", **budgets)
    with pytest.raises(RecordError, match=r"steps_completed must be an integer, got '2' \(str\)"):
        ledger.interrupt_run("fold", "Q-A4", reason="SIGTERM",
                             **{**budgets, "steps_completed": "2"})
    with pytest.raises(RecordError, match="wall_clock_s must be a number of seconds"):
        ledger.interrupt_run("fold", "Q-A4", reason="SIGTERM", **{**budgets, "wall_clock_s": None})
    assert ledger.get_run("fold", "Q-A4").status is RunStatus.RUNNING  # nothing was written
    # the runner's numpy counters are welcome and stored as plain numbers
    stopped = ledger.interrupt_run("fold", "Q-A4", reason="SIGTERM", steps_completed=np.int64(2),
                                   tokens_seen=np.int64(16384), wall_clock_s=np.float32(4.0))
    assert type(stopped.steps_completed) is int and type(stopped.wall_clock_s) is float
    ledger.start_run("fold", "Q-A4", restore=RestoreStatus.resumed(2), device_kind="cpu")
    ledger.complete_run("fold", "Q-A4", final_metrics={"loss": 3.0})
    with pytest.raises(RunStateError, match="is completed, not running"):
        ledger.interrupt_run("fold", "Q-A4", reason="SIGTERM", **budgets)
    assert ledger.get_run("fold", "Q-A4").final_metrics == {"loss": 3.0}
    with pytest.raises(RecordError, match="an interrupted run needs an interrupt_reason"):
        RunRecord(**REQUIRED, status=RunStatus.INTERRUPTED)


def test_ledger_written_before_interrupts_still_opens(tmp_path):
    # data/ledger_schema_v1.sql: a dump of a ledger that ttt-ledger 0.1.0 wrote before the
    # interrupted status and the interrupt_reason field existed.
    dump = (Path(__file__).parent / "data" / "ledger_schema_v1.sql").read_text()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    conn.executescript(dump)
    conn.close()
    with Ledger.open(tmp_path, create=False) as ledger:
        assert ledger.schema_version() == 1 == SCHEMA_VERSION
        assert {r.run_id: r.status.value for r in ledger.runs("old")} == {
            "Q-A1": "failed", "Q-S3": "completed", "Q-S4": "running"}
        s3 = ledger.get_run("old", "Q-S3")
        assert s3.final_metrics == {"loss": 5.375, "heldout_loss": 5.25}
        assert s3.eval_results[0].metrics == {"loss": 5.25, "tokens": 2048.0, "sequences": 2.0}
        assert s3.interrupt_reason is None
        stopped = ledger.interrupt_run("old", "Q-S4", reason="SIGTERM at step 3",
                                       steps_completed=3, tokens_seen=3072, wall_clock_s=2.25)
        assert stopped.status is RunStatus.INTERRUPTED
        assert ledger.start_run("old", "Q-S4", restore=RestoreStatus.resumed(3),
                                device_kind="cpu").status is RunStatus.RUNNING
        assert [p.value for p in ledger.curve("old", "Q-S4", "loss")] == [5.125]
        assert ledger.integrity_ok()


def test_clear_errors_name_what_and_where(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(LedgerNotFoundError, match="nowhere/ledger.sqlite"):
        Ledger.open(missing, create=False)
    assert not missing.exists()  # reading never creates a ledger

    ledger = Ledger.open(tmp_path)
    with pytest.raises(RunNotFoundError, match=r"no run 'Q-Z1' in experiment folder 'f'"):
        ledger.get_run("f", "Q-Z1")
    ledger.add_run(RunRecord(**REQUIRED))
    with pytest.raises(RunExistsError, match="fold/Q-A4 already exists"):
        ledger.add_run(RunRecord(**REQUIRED))
    with pytest.raises(RecordError, match="needs a failure_reason"):
        ledger.update_run("fold", "Q-A4", status=RunStatus.FAILED)
    with pytest.raises(LedgerError, match="a failure needs a reason"):
        ledger.fail_run("fold", "Q-A4", "")
    with pytest.raises(LedgerError, match="no_such_field"):
        ledger.update_run("fold", "Q-A4", no_such_field=1)
    with pytest.raises(RecordError, match="train_mode 'metaa'"):
        RunRecord(**{**REQUIRED, "train_mode": "metaa"})
    with pytest.raises(RecordError, match="resumed.*needs a step"):
        RestoreStatus("resumed")
    # a rejected update leaves the stored row as it was
    assert ledger.get_run("fold", "Q-A4").status is RunStatus.PLANNED


def test_non_finite_loss_is_stored(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.add_run(RunRecord(**REQUIRED))
    ledger.start_run("fold", "Q-A4", restore=RestoreStatus.fresh(), device_kind="cpu")
    ledger.fail_run("fold", "Q-A4", "loss diverged")
    ledger.update_run("fold", "Q-A4", final_metrics={"loss": float("nan")})
    assert math.isnan(ledger.get_run("fold", "Q-A4").final_metrics["loss"])


def test_schema_is_versioned_and_wal(tmp_path):
    with Ledger.open(tmp_path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("UPDATE ledger_meta SET value = ? WHERE key = 'schema_version'",
                 (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Ledger.open(tmp_path)


def test_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "ledger.sqlite").write_text("this is not sqlite\n" * 100)
    with pytest.raises(LedgerError, match="not a usable ledger database"):
        Ledger.open(tmp_path)


def test_provenance_helpers(tmp_path):
    assert config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    with pytest.raises(LedgerError, match="not JSON-serialisable"):
        config_hash({"a": object()})
    versions = package_versions(["ttt-ledger", "surely-not-a-package-xyz"])
    assert versions == {"ttt-ledger": "0.1.0", "surely-not-a-package-xyz": "not installed"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_reads_head_and_dirty_state(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # never see an outer repo
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) is None  # not a repository

    repo = tmp_path / "repo"
    repo.mkdir()
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("one\n")
    subprocess.run(["git", "add", "f.txt"], cwd=repo, check=True)
    subprocess.run(["git", *env, "commit", "-qm", "c"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()
    assert git_commit(repo) == head
    (repo / "f.txt").write_text("two\n")
    assert git_commit(repo) == f"{head}-dirty"
