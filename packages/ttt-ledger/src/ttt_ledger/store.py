"""SQLite storage of run records: one embedded database per experiment directory.

Why SQLite: one file, no server, safe for several writer processes. WAL mode lets
readers see the last committed state while a writer works; every write is one
`BEGIN IMMEDIATE … COMMIT` transaction, so a process killed mid-write leaves the
previous rows intact (the uncommitted tail of the WAL is ignored on the next open).
Records are stored as JSON next to a few indexed columns, so adding a record field
(or a status: `status` is a text column) needs no table migration; the schema version
guards the table layout itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ttt_ledger.records import (
    EvalResult,
    Experiment,
    LedgerError,
    MetricPoint,
    RestoreStatus,
    RunRecord,
    RunStatus,
    is_lower_better,
)

LEDGER_FILENAME = "ledger.sqlite"
SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    family TEXT NOT NULL,
    status TEXT NOT NULL,
    record_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (exp_folder, run_id)
);
CREATE TABLE IF NOT EXISTS metric_points (
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    tokens_seen INTEGER NOT NULL,
    wall_clock_s REAL NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (exp_folder, run_id, name, step),
    FOREIGN KEY (exp_folder, run_id) REFERENCES runs (exp_folder, run_id)
);
CREATE TABLE IF NOT EXISTS eval_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    exp_folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    result_json TEXT NOT NULL,
    FOREIGN KEY (exp_folder, run_id) REFERENCES runs (exp_folder, run_id)
);
CREATE INDEX IF NOT EXISTS eval_results_by_run ON eval_results (exp_folder, run_id, seq);
"""


class LedgerNotFoundError(LedgerError, FileNotFoundError):
    """Opening a ledger for reading where none exists."""


class RunNotFoundError(LedgerError, KeyError):
    """A run id that the experiment folder does not hold."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class RunExistsError(LedgerError):
    """Adding a run id that the experiment folder already holds."""


class RunStateError(LedgerError):
    """A status change the run's current status does not allow."""


def utc_now() -> str:
    """ISO-8601 UTC timestamp with milliseconds: sortable as text."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def ledger_path(exp_dir: str | os.PathLike[str]) -> Path:
    """Where the ledger of an experiment directory lives: `<exp_dir>/ledger.sqlite`."""
    return Path(exp_dir) / LEDGER_FILENAME


class Ledger:
    """The run ledger of one experiment directory (all its experiment folders).

    Runs are keyed by (exp_folder, run_id). Use one `Ledger` per process or thread;
    several processes may open the same file at once. Every public write is one
    transaction; wrap several in `transaction()` to make them atomic together.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True,
                 busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise LedgerNotFoundError(f"no ledger at {self.path} (expected a file written by "
                                      f"ttt-ledger; run a stage first or check --exp-dir)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._depth = 0
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LedgerError(f"{self.path}: could not switch to WAL mode (got {mode!r})")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._ensure_schema()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise LedgerError(f"{self.path}: not a usable ledger database ({e})") from e
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, exp_dir: str | os.PathLike[str], *, create: bool = True) -> Ledger:
        """The ledger at `<exp_dir>/ledger.sqlite`, created when absent unless create=False."""
        return cls(ledger_path(exp_dir), create=create)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions and schema ------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        row = self._conn.execute(
            "SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def _ensure_schema(self) -> None:
        with self.transaction():
            has_meta = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'"
            ).fetchone()
            if not has_meta:
                for statement in _SCHEMA_V1.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),))
                self._conn.execute(
                    "INSERT INTO ledger_meta (key, value) VALUES ('created_at', ?)",
                    (utc_now(),))
                return
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path}: schema version {version} is newer than this ttt-ledger "
                    f"reads ({SCHEMA_VERSION}); upgrade ttt-ledger")
            # Future layouts: apply migrations version -> version + 1 here.

    # -- writes -----------------------------------------------------------------------

    def add_run(self, record: RunRecord) -> RunRecord:
        """Insert a new run (stamping created/updated times); an existing id is an error."""
        with self.transaction():
            if self._find(record.exp_folder, record.run_id) is not None:
                raise RunExistsError(f"{self.path}: run {record.exp_folder}/{record.run_id} "
                                     f"already exists")
            now = utc_now()
            record = dataclasses.replace(record, created_at=record.created_at or now,
                                         updated_at=record.updated_at or now)
            self._insert_row(record)
            for result in record.eval_results:
                self._insert_eval(record.exp_folder, record.run_id, result)
        return record

    def add_plan(self, records: Iterable[RunRecord]) -> list[RunRecord]:
        """Insert planned runs whose ids are absent, atomically; returns those inserted.

        Re-adding a plan (a pipeline restarted with --skip-existing) leaves existing
        rows, and whatever they recorded, untouched.
        """
        added = []
        with self.transaction():
            for record in records:
                if self._find(record.exp_folder, record.run_id) is None:
                    added.append(self.add_run(record))
        return added

    def update_run(self, exp_folder: str, run_id: str, **changes: Any) -> RunRecord:
        """Read, change the named fields, validate and write back, in one transaction."""
        if "eval_results" in changes:
            raise LedgerError("eval results are appended with append_eval, not replaced")
        with self.transaction():
            current = self.get_run(exp_folder, run_id)
            try:
                updated = dataclasses.replace(current, **changes)
            except TypeError as e:
                raise LedgerError(f"run {exp_folder}/{run_id}: {e}") from e
            return self._write(updated)

    def start_run(self, exp_folder: str, run_id: str, *, restore: RestoreStatus,
                  device_kind: str, device_count: int = 1, config_hash: str | None = None,
                  git_commit: str | None = None,
                  package_versions: Mapping[str, str] | None = None,
                  rerun: bool = False) -> RunRecord:
        """Mark a run as running at stage start, with how it restored and where it runs.

        A completed run is only restarted with rerun=True (so a finished result is not
        overwritten by accident); a failed or interrupted one may restart freely.
        """
        with self.transaction():
            current = self.get_run(exp_folder, run_id)
            if current.status is RunStatus.COMPLETED and not rerun:
                raise RunStateError(f"run {exp_folder}/{run_id} already completed at "
                                    f"{current.finished_at}; pass rerun=True to run it again")
            changes: dict[str, Any] = dict(
                status=RunStatus.RUNNING, failure_reason=None, interrupt_reason=None,
                restore=restore,
                device_kind=device_kind, device_count=device_count, started_at=utc_now(),
                finished_at=None)
            if config_hash is not None:
                changes["config_hash"] = config_hash
            if git_commit is not None:
                changes["git_commit"] = git_commit
            if package_versions is not None:
                changes["package_versions"] = dict(package_versions)
            return self.update_run(exp_folder, run_id, **changes)

    def log_metrics(self, exp_folder: str, run_id: str, points: Iterable[MetricPoint]) -> int:
        """Append curve points (a re-logged step replaces the old point); returns the count.

        Loss-like metrics (see `is_lower_better`) also update the record's best_metrics.
        """
        points = list(points)
        with self.transaction():
            current = self.get_run(exp_folder, run_id)
            self._conn.executemany(
                "INSERT OR REPLACE INTO metric_points (exp_folder, run_id, name, step, "
                "tokens_seen, wall_clock_s, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(exp_folder, run_id, p.name, p.step, p.tokens_seen, p.wall_clock_s, p.value)
                 for p in points])
            best = _merge_best(current.best_metrics, ((p.name, p.value) for p in points))
            if best != dict(current.best_metrics):
                self.update_run(exp_folder, run_id, best_metrics=best)
        return len(points)

    def record_progress(self, exp_folder: str, run_id: str, *, steps_completed: int,
                        tokens_seen: int, wall_clock_s: float,
                        points: Iterable[MetricPoint] = ()) -> RunRecord:
        """At a checkpoint: the run's budgets so far, plus any new curve points."""
        with self.transaction():
            self.log_metrics(exp_folder, run_id, points)
            return self.update_run(exp_folder, run_id, steps_completed=steps_completed,
                                   tokens_seen=tokens_seen, wall_clock_s=wall_clock_s)

    def complete_run(self, exp_folder: str, run_id: str, *,
                     final_metrics: Mapping[str, float],
                     best_metrics: Mapping[str, float] | None = None,
                     steps_completed: int | None = None, tokens_seen: int | None = None,
                     wall_clock_s: float | None = None) -> RunRecord:
        """Mark a run completed with its final metrics (and final budgets when given).

        Without explicit best_metrics, loss-like final values join the running best.
        """
        with self.transaction():
            current = self.get_run(exp_folder, run_id)
            if best_metrics is None:
                best = _merge_best(current.best_metrics, final_metrics.items())
            else:
                best = dict(best_metrics)
            changes: dict[str, Any] = dict(status=RunStatus.COMPLETED, failure_reason=None,
                                           interrupt_reason=None,
                                           final_metrics=dict(final_metrics),
                                           best_metrics=best, finished_at=utc_now())
            for name, value in (("steps_completed", steps_completed),
                                ("tokens_seen", tokens_seen), ("wall_clock_s", wall_clock_s)):
                if value is not None:
                    changes[name] = value
            return self.update_run(exp_folder, run_id, **changes)

    def fail_run(self, exp_folder: str, run_id: str, reason: str) -> RunRecord:
        """Mark a run failed; its budgets, curves and earlier rows stay as recorded."""
        if not reason:
            raise LedgerError(f"run {exp_folder}/{run_id}: a failure needs a reason")
        return self.update_run(exp_folder, run_id, status=RunStatus.FAILED,
                               failure_reason=reason, interrupt_reason=None,
                               finished_at=utc_now())

    def interrupt_run(self, exp_folder: str, run_id: str, *, reason: str,
                      steps_completed: int, tokens_seen: int,
                      wall_clock_s: float) -> RunRecord:
        """Mark a running run interrupted (a signal, the scheduler), with its budgets so far.

        Unlike a failure, the run stopped on purpose where it can resume: `reason` says how
        (e.g. "SIGTERM at step 12; resume with training.load_part=all"), and a later
        start_run resumes it. Only a running run can be interrupted, so an interrupt
        arriving late never overwrites a finished or failed result.
        """
        if not reason:
            raise LedgerError(f"run {exp_folder}/{run_id}: an interruption needs a reason")
        with self.transaction():
            current = self.get_run(exp_folder, run_id)
            if current.status is not RunStatus.RUNNING:
                raise RunStateError(f"run {exp_folder}/{run_id} is {current.status.value}, "
                                    f"not running; only a running run can be interrupted")
            return self.update_run(exp_folder, run_id, status=RunStatus.INTERRUPTED,
                                   interrupt_reason=reason, steps_completed=steps_completed,
                                   tokens_seen=tokens_seen, wall_clock_s=wall_clock_s,
                                   finished_at=utc_now())

    def append_eval(self, exp_folder: str, run_id: str, result: EvalResult) -> RunRecord:
        """Append one evaluation result (stamped with the time it arrived)."""
        if result.recorded_at is None:
            result = dataclasses.replace(result, recorded_at=utc_now())
        with self.transaction():
            self.get_run(exp_folder, run_id)
            self._insert_eval(exp_folder, run_id, result)
            self._conn.execute("UPDATE runs SET updated_at = ? WHERE exp_folder = ? AND "
                               "run_id = ?", (utc_now(), exp_folder, run_id))
            return self.get_run(exp_folder, run_id)

    # -- reads ------------------------------------------------------------------------

    def get_run(self, exp_folder: str, run_id: str) -> RunRecord:
        record = self._find(exp_folder, run_id)
        if record is None:
            raise RunNotFoundError(f"{self.path}: no run {run_id!r} in experiment folder "
                                   f"{exp_folder!r}")
        return record

    def runs(self, exp_folder: str | None = None, *, family: str | None = None,
             status: RunStatus | str | None = None) -> list[RunRecord]:
        """Records matching the filters, in insertion order."""
        sql = "SELECT exp_folder, run_id, record_json FROM runs WHERE 1=1"
        args: list[Any] = []
        for column, value in (("exp_folder", exp_folder), ("family", family),
                              ("status", None if status is None else RunStatus(status).value)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        rows = self._conn.execute(sql + " ORDER BY rowid", args).fetchall()
        return [self._decode(folder, run_id, text) for folder, run_id, text in rows]

    def exp_folders(self) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT DISTINCT exp_folder FROM runs ORDER BY exp_folder")]

    def curve(self, exp_folder: str, run_id: str, name: str) -> list[MetricPoint]:
        """The logged points of one metric of one run, by step."""
        return [MetricPoint(name, *row) for row in self._conn.execute(
            "SELECT step, tokens_seen, wall_clock_s, value FROM metric_points WHERE "
            "exp_folder = ? AND run_id = ? AND name = ? ORDER BY step",
            (exp_folder, run_id, name))]

    def curves(self, exp_folder: str) -> dict[str, dict[str, list[MetricPoint]]]:
        """Every curve of a folder: run id -> metric -> points by step."""
        out: dict[str, dict[str, list[MetricPoint]]] = {}
        for run_id, name, *rest in self._conn.execute(
                "SELECT run_id, name, step, tokens_seen, wall_clock_s, value FROM "
                "metric_points WHERE exp_folder = ? ORDER BY run_id, name, step",
                (exp_folder,)):
            out.setdefault(run_id, {}).setdefault(name, []).append(MetricPoint(name, *rest))
        return out

    def experiment(self, exp_folder: str) -> Experiment:
        """A consistent snapshot of one folder (records and curves read in one transaction)."""
        with self._read_snapshot():
            runs = {r.run_id: r for r in self.runs(exp_folder)}
            curves = self.curves(exp_folder)
        return Experiment(exp_folder, runs, curves)

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        if self._depth:  # already inside a transaction: its view is consistent
            yield
            return
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- internals --------------------------------------------------------------------

    def _find(self, exp_folder: str, run_id: str) -> RunRecord | None:
        row = self._conn.execute(
            "SELECT record_json FROM runs WHERE exp_folder = ? AND run_id = ?",
            (exp_folder, run_id)).fetchone()
        return None if row is None else self._decode(exp_folder, run_id, row[0])

    def _decode(self, exp_folder: str, run_id: str, text: str) -> RunRecord:
        data = json.loads(text)
        data["eval_results"] = [json.loads(r[0]) for r in self._conn.execute(
            "SELECT result_json FROM eval_results WHERE exp_folder = ? AND run_id = ? "
            "ORDER BY seq", (exp_folder, run_id))]
        try:
            return RunRecord.from_dict(data)
        except (LedgerError, KeyError, TypeError) as e:
            raise LedgerError(f"{self.path}: stored run {exp_folder}/{run_id} does not "
                              f"decode ({e})") from e

    def _row_json(self, record: RunRecord) -> str:
        data = record.to_dict()
        del data["eval_results"]  # kept in their own append-only table
        return json.dumps(data, sort_keys=True)

    def _insert_row(self, record: RunRecord) -> None:
        self._conn.execute(
            "INSERT INTO runs (exp_folder, run_id, family, status, record_json, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.exp_folder, record.run_id, record.family, record.status.value,
             self._row_json(record), record.created_at, record.updated_at))

    def _write(self, record: RunRecord) -> RunRecord:
        record = dataclasses.replace(record, updated_at=utc_now())
        self._conn.execute(
            "UPDATE runs SET family = ?, status = ?, record_json = ?, updated_at = ? "
            "WHERE exp_folder = ? AND run_id = ?",
            (record.family, record.status.value, self._row_json(record), record.updated_at,
             record.exp_folder, record.run_id))
        return self.get_run(record.exp_folder, record.run_id)

    def _insert_eval(self, exp_folder: str, run_id: str, result: EvalResult) -> None:
        self._conn.execute(
            "INSERT INTO eval_results (exp_folder, run_id, result_json) VALUES (?, ?, ?)",
            (exp_folder, run_id, json.dumps(result.to_dict())))


def read_experiment(exp_dir: str | os.PathLike[str], exp_folder: str) -> Experiment:
    """One folder of `<exp_dir>/ledger.sqlite` for reading: never creates the ledger, and
    a folder without runs (a typo, most often) is an error naming the folders there."""
    with Ledger.open(exp_dir, create=False) as ledger:
        experiment = ledger.experiment(exp_folder)
        if not experiment.runs:
            folders = ", ".join(ledger.exp_folders()) or "none"
            raise LedgerError(f"no runs in experiment folder {exp_folder!r} of {ledger.path} "
                              f"(folders there: {folders})")
    return experiment


def _merge_best(best: Mapping[str, float], values: Iterable[tuple[str, float]]
                ) -> dict[str, float]:
    """Running minimum of loss-like metrics; other metrics are left to the caller."""
    merged = dict(best)
    for name, value in values:
        if is_lower_better(name) and value == value:  # NaN never becomes the best
            merged[name] = min(merged.get(name, value), float(value))
    return merged
