"""Run records: what the ledger knows about one training stage, as plain, validated data.

A record is immutable; the store produces updated copies with `dataclasses.replace`, so
a half-applied update can never be observed. Metric curves live beside the records
(`MetricPoint`, many per run) rather than inside them, to keep a record small.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRAIN_MODES = ("pretrain", "meta")
PATHS = ("adapter", "scratch")
MODEL_KINDS = ("fa", "swa", "e2e")
LOWER_IS_BETTER_SUFFIXES = ("loss", "nll", "perplexity", "ppl")


class LedgerError(Exception):
    """Base of every error ttt-ledger raises on bad input or a bad database."""


class RecordError(LedgerError, ValueError):
    """A record field holds a value the ledger cannot accept."""


class RunStatus(enum.StrEnum):
    """Where a stage stands; `failed` and `interrupted` always carry a reason.

    `interrupted`: stopped on purpose (a signal, the scheduler) at `steps_completed`, with
    a checkpoint to resume from; never a finished result.
    """

    PLANNED = "planned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RestoreStatus:
    """How a stage obtained its starting weights (the `load_part` contract).

    `fresh`: random init (load_part=none). `params`: weights only, step restarts at 0.
    `resumed`: weights, optimizer, data iterator and step, continuing at `step`+1.
    """

    kind: str = "fresh"
    step: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("fresh", "params", "resumed"):
            raise RecordError(
                f"restore kind {self.kind!r}: expected 'fresh', 'params' or 'resumed'")
        if self.kind == "resumed":
            if self.step is None or self.step < 0:
                raise RecordError(f"restore 'resumed' needs a step >= 0, got {self.step!r}")
        elif self.step is not None:
            raise RecordError(f"restore {self.kind!r} takes no step, got {self.step!r}")

    @classmethod
    def fresh(cls) -> RestoreStatus:
        return cls("fresh")

    @classmethod
    def params(cls) -> RestoreStatus:
        return cls("params")

    @classmethod
    def resumed(cls, step: int) -> RestoreStatus:
        return cls("resumed", int(step))

    @property
    def label(self) -> str:
        """`fresh`, `params` or `resumed@N`: the form reports print and `parse` reads."""
        return f"resumed@{self.step}" if self.kind == "resumed" else self.kind

    @classmethod
    def parse(cls, label: str) -> RestoreStatus:
        if label.startswith("resumed@"):
            try:
                return cls.resumed(int(label.split("@", 1)[1]))
            except ValueError as e:
                raise RecordError(f"restore label {label!r}: expected 'resumed@<step>'") from e
        return cls(label)


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric, with the stage-local budget spent when it was logged.

    `tokens_seen` and `wall_clock_s` count from the start of this run (not its lineage);
    comparisons add the ancestors' totals to place the point on a cumulative axis.
    """

    name: str
    step: int
    tokens_seen: int
    wall_clock_s: float
    value: float

    def __post_init__(self) -> None:
        if not self.name:
            raise RecordError("metric point needs a non-empty name")
        if self.step < 0 or self.tokens_seen < 0 or self.wall_clock_s < 0:
            raise RecordError(
                f"metric point {self.name!r} at step {self.step}: step, tokens_seen and "
                f"wall_clock_s must be >= 0 (got {self.tokens_seen}, {self.wall_clock_s})")


@dataclass(frozen=True)
class EvalResult:
    """One evaluation of a run's checkpoint, appended when it arrives.

    `per_position_nll[i]` is the mean NLL of the token at position i of the evaluated
    sequences (the token-position loss breakdown).
    """

    name: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    context_length: int | None = None
    per_position_nll: tuple[float, ...] = ()
    recorded_at: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise RecordError("eval result needs a non-empty name")
        object.__setattr__(self, "metrics", {str(k): float(v) for k, v in self.metrics.items()})
        object.__setattr__(self, "per_position_nll",
                           tuple(float(v) for v in self.per_position_nll))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": dict(self.metrics),
                "context_length": self.context_length,
                "per_position_nll": list(self.per_position_nll),
                "recorded_at": self.recorded_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        _reject_unknown_keys(data, cls, "eval result")
        return cls(name=data["name"], metrics=data.get("metrics", {}),
                   context_length=data.get("context_length"),
                   per_position_nll=tuple(data.get("per_position_nll", ())),
                   recorded_at=data.get("recorded_at"))


@dataclass(frozen=True)
class RunRecord:
    """One stage of one experiment: identity, lineage, budgets, outcome and provenance.

    Budgets (`steps_completed`, `tokens_seen`, `wall_clock_s`) are this run's own, not
    its lineage's; `device_hours` is derived from them. Checkpoint names follow the
    runbook: `checkpoint_source` is the input checkpoint (None when fresh) and
    `output_checkpoint` the `exp_name` it writes. `failure_reason` and `interrupt_reason`
    say why the run is `failed` or `interrupted`; the store clears them when it restarts.
    """

    run_id: str
    exp_folder: str
    family: str
    path: str
    stage: str
    model_kind: str
    train_mode: str
    context_length: int
    checkpoint_source: str | None = None
    output_checkpoint: str | None = None
    recipe: str | None = None
    config_name: str | None = None
    data_root: str | None = None
    parent_run_ids: tuple[str, ...] = ()
    planned_steps: int | None = None
    steps_completed: int = 0
    tokens_seen: int = 0
    wall_clock_s: float = 0.0
    device_kind: str | None = None
    device_count: int = 1
    restore: RestoreStatus = field(default_factory=RestoreStatus)
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    best_metrics: Mapping[str, float] = field(default_factory=dict)
    eval_results: tuple[EvalResult, ...] = ()
    status: RunStatus = RunStatus.PLANNED
    failure_reason: str | None = None
    interrupt_reason: str | None = None
    config_hash: str | None = None
    git_commit: str | None = None
    package_versions: Mapping[str, str] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None

    def __post_init__(self) -> None:
        where = f"run {self.exp_folder!r}/{self.run_id!r}"
        if not self.run_id or not self.exp_folder or not self.family:
            raise RecordError(f"{where}: run_id, exp_folder and family must be non-empty")
        if self.path not in PATHS:
            raise RecordError(f"{where}: path {self.path!r}, expected one of {PATHS}")
        if self.model_kind not in MODEL_KINDS:
            raise RecordError(
                f"{where}: model_kind {self.model_kind!r}, expected one of {MODEL_KINDS}")
        if self.train_mode not in TRAIN_MODES:
            raise RecordError(
                f"{where}: train_mode {self.train_mode!r}, expected one of {TRAIN_MODES}")
        try:
            status = RunStatus(self.status)
        except ValueError as e:
            raise RecordError(f"{where}: status {self.status!r}, expected one of "
                              f"{[s.value for s in RunStatus]}") from e
        object.__setattr__(self, "status", status)
        if isinstance(self.restore, str):
            object.__setattr__(self, "restore", RestoreStatus.parse(self.restore))
        if status is RunStatus.FAILED and not self.failure_reason:
            raise RecordError(f"{where}: a failed run needs a failure_reason")
        if status is RunStatus.INTERRUPTED and not self.interrupt_reason:
            raise RecordError(f"{where}: an interrupted run needs an interrupt_reason")
        if self.run_id in self.parent_run_ids:
            raise RecordError(f"{where}: a run cannot be its own parent")
        for name in ("context_length", "steps_completed", "tokens_seen", "device_count"):
            object.__setattr__(self, name, _count(where, name, getattr(self, name)))
        if self.planned_steps is not None:
            object.__setattr__(self, "planned_steps",
                               _count(where, "planned_steps", self.planned_steps))
        wall = self.wall_clock_s
        if not isinstance(wall, numbers.Real) or isinstance(wall, bool):
            raise RecordError(f"{where}: wall_clock_s must be a number of seconds, got "
                              f"{wall!r} ({type(wall).__name__})")
        if wall < 0 or math.isnan(wall):
            raise RecordError(f"{where}: wall_clock_s must be >= 0, got {wall}")
        object.__setattr__(self, "wall_clock_s", float(wall))
        object.__setattr__(self, "parent_run_ids", tuple(self.parent_run_ids))
        object.__setattr__(self, "eval_results", tuple(self.eval_results))
        for name in ("final_metrics", "best_metrics"):
            object.__setattr__(self, name, {str(k): float(v)
                                            for k, v in getattr(self, name).items()})
        object.__setattr__(self, "package_versions",
                           {str(k): str(v) for k, v in self.package_versions.items()})

    @property
    def device_hours(self) -> float:
        """Accelerator-hours spent by this run alone: wall-clock × device count."""
        return self.wall_clock_s * self.device_count / 3600.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with every field (restore as {kind, step})."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "restore":
                value = {"kind": value.kind, "step": value.step}
            elif f.name == "eval_results":
                value = [e.to_dict() for e in value]
            elif f.name == "status":
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Inverse of `to_dict`; unknown keys are an error so no field is silently lost."""
        _reject_unknown_keys(data, cls, "run record")
        kwargs = dict(data)
        restore = kwargs.get("restore")
        if isinstance(restore, Mapping):
            kwargs["restore"] = RestoreStatus(restore["kind"], restore.get("step"))
        kwargs["eval_results"] = tuple(EvalResult.from_dict(e)
                                       for e in kwargs.get("eval_results", ()))
        kwargs["parent_run_ids"] = tuple(kwargs.get("parent_run_ids", ()))
        return cls(**kwargs)


def _count(where: str, name: str, value: Any) -> int:
    """A non-negative integer field (numpy integers welcome: the runner counts in them)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise RecordError(f"{where}: {name} must be an integer, got {value!r} "
                          f"({type(value).__name__})")
    if value < 0:
        raise RecordError(f"{where}: {name} must be >= 0, got {value}")
    return int(value)


def is_lower_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is better (losses, NLLs, perplexities)."""
    return metric.rsplit("/", 1)[-1].lower().endswith(LOWER_IS_BETTER_SUFFIXES)


def save_record_json(record: RunRecord, run_dir: str | os.PathLike[str]) -> Path:
    """Write `<run_dir>/ledger_record.json` atomically (the per-run copy of the record)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / "ledger_record.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target)
    return target


def load_record_json(path: str | os.PathLike[str]) -> RunRecord:
    """Read a record written by `save_record_json`."""
    try:
        return RunRecord.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise RecordError(f"{path}: not a readable ledger record ({e})") from e


def _reject_unknown_keys(data: Mapping[str, Any], cls: type, what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecordError(f"{what}: unknown field(s) {unknown}; known: {sorted(known)}")


@dataclass(frozen=True)
class Experiment:
    """Everything one experiment folder holds: records by run id and their metric curves.

    `curves[run_id][metric]` is the run's logged points for that metric, in step order.
    This is the input of comparisons, reports and plots, so they never touch SQLite.
    """

    exp_folder: str
    runs: Mapping[str, RunRecord]
    curves: Mapping[str, Mapping[str, Sequence[MetricPoint]]] = field(default_factory=dict)

    def curve(self, run_id: str, metric: str) -> Sequence[MetricPoint]:
        return self.curves.get(run_id, {}).get(metric, ())

    @classmethod
    def from_records(cls, records: Sequence[RunRecord],
                     points: Sequence[tuple[str, MetricPoint]] = ()) -> Experiment:
        """Build from records of one folder and (run_id, point) pairs; used by tests too."""
        folders = {r.exp_folder for r in records}
        if len(folders) != 1:
            raise RecordError(f"an experiment holds one exp_folder, got {sorted(folders)}")
        runs: dict[str, RunRecord] = {}
        for r in records:
            if r.run_id in runs:
                raise RecordError(f"duplicate run id {r.run_id!r} in {r.exp_folder!r}")
            runs[r.run_id] = r
        curves: dict[str, dict[str, list[MetricPoint]]] = {}
        for run_id, p in points:
            if run_id not in runs:
                raise RecordError(f"metric point for unknown run {run_id!r}")
            curves.setdefault(run_id, {}).setdefault(p.name, []).append(p)
        for by_name in curves.values():
            for pts in by_name.values():
                pts.sort(key=lambda p: p.step)
        return cls(folders.pop(), runs, curves)
