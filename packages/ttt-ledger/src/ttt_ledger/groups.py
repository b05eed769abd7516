"""Runs of one kind (a sweep: several learning rates or seeds of one stage) and the best
completed run of each group by a metric.

Runs are of one kind when they share family, path, stage, model kind and context length,
and their parents are of one kind too. The parents matter: the plan's two 32K adapter
TTT-E2E arms (bridge, from the 8K TTT-E2E run; direct, from the 8K FA run) are different
experiments, while 32K runs started from different members of an 8K sweep are one sweep.
Comparisons and the gate let each group's best completed run stand for the group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ttt_ledger.lineage import check_lineage
from ttt_ledger.metrics import metric_value
from ttt_ledger.records import Experiment, RunRecord, RunStatus, is_lower_better


@dataclass(frozen=True, order=True)
class GroupKey:
    """What makes runs comparable as one sweep; `parents` are the parents' own keys."""

    family: str
    path: str
    stage: str
    model_kind: str
    context_length: int
    parents: tuple[GroupKey, ...] = ()


@dataclass(frozen=True)
class RunGroup:
    """The runs of one kind, in ledger order, and the one that stands for them.

    `best_id` is the completed run with the best value of the metric (the first on ties;
    a completed run without a value only when none has one); None when none completed.
    """

    key: GroupKey
    run_ids: tuple[str, ...]
    best_id: str | None

    @property
    def is_sweep(self) -> bool:
        return len(self.run_ids) > 1


def best_completed(records: list[RunRecord], metric: str) -> RunRecord | None:
    """The completed record with the best finite value of `metric` (see RunGroup)."""
    lower_better = is_lower_better(metric)

    def rank(record: RunRecord) -> tuple[int, float]:
        value = metric_value(record, metric)
        if value is None or not math.isfinite(value):
            return (1, 0.0)
        return (0, value if lower_better else -value)

    completed = [r for r in records if r.status is RunStatus.COMPLETED]
    return min(completed, key=rank) if completed else None


def group_keys(experiment: Experiment) -> dict[str, GroupKey]:
    """Every run's group key, in ledger order (LineageError on a bad lineage)."""
    check_lineage(experiment.runs)
    keys: dict[str, GroupKey] = {}

    def key_of(run_id: str) -> GroupKey:
        if run_id not in keys:
            r = experiment.runs[run_id]
            parents = tuple(sorted({key_of(p) for p in r.parent_run_ids}))
            keys[run_id] = GroupKey(r.family, r.path, r.stage, r.model_kind,
                                    r.context_length, parents)
        return keys[run_id]

    return {run_id: key_of(run_id) for run_id in experiment.runs}


def run_groups(experiment: Experiment, metric: str) -> list[RunGroup]:
    """The folder's runs grouped by kind, in order of each group's first run."""
    members: dict[GroupKey, list[RunRecord]] = {}
    for run_id, key in group_keys(experiment).items():
        members.setdefault(key, []).append(experiment.runs[run_id])
    groups = []
    for key, records in members.items():
        best = best_completed(records, metric)
        groups.append(RunGroup(key, tuple(r.run_id for r in records),
                               best.run_id if best else None))
    return groups
