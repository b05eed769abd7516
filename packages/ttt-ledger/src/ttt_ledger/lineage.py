"""Lineage: which runs a run's weights came from, and which runs built on it.

Works on records of one experiment folder (a plan, or `Ledger.experiment(...).runs`).
Lineage is a DAG (a stage may name several parents); orders are breadth-first from the
run, nearest first, ties in the order the runs were given, so results are stable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from ttt_ledger.records import LedgerError, RunRecord


class LineageError(LedgerError):
    """A parent that is not recorded, or a cycle in the lineage."""


def _index(runs: Mapping[str, RunRecord] | Iterable[RunRecord]) -> dict[str, RunRecord]:
    if isinstance(runs, Mapping):
        return dict(runs)
    return {r.run_id: r for r in runs}


def check_lineage(runs: Mapping[str, RunRecord] | Iterable[RunRecord]) -> None:
    """Raise LineageError when a run names an unrecorded parent or the lineage has a cycle."""
    index = _index(runs)
    for record in index.values():
        for parent in record.parent_run_ids:
            if parent not in index:
                raise LineageError(f"run {record.exp_folder}/{record.run_id} names parent "
                                   f"{parent!r}, which is not recorded in that folder")
    for run_id in index:
        if run_id in ancestors(index, run_id, strict=False):
            raise LineageError(f"lineage cycle through run {run_id!r}")


def ancestors(runs: Mapping[str, RunRecord] | Iterable[RunRecord], run_id: str, *,
              strict: bool = True) -> list[str]:
    """Every run whose output this run's weights descend from, nearest first.

    strict=True raises on a parent that is not recorded (its cost would be missed).
    """
    index = _index(runs)
    if run_id not in index:
        raise LineageError(f"no run {run_id!r} among {sorted(index)}")
    seen: list[str] = []
    queue = deque(index[run_id].parent_run_ids)
    while queue:
        parent = queue.popleft()
        if parent in seen:
            continue
        if parent not in index:
            if strict:
                raise LineageError(f"run {run_id!r} descends from {parent!r}, which is not "
                                   f"recorded")
            continue
        seen.append(parent)
        queue.extend(index[parent].parent_run_ids)
    return seen


def descendants(runs: Mapping[str, RunRecord] | Iterable[RunRecord], run_id: str) -> list[str]:
    """Every run that starts (directly or not) from this run's output, nearest first."""
    index = _index(runs)
    if run_id not in index:
        raise LineageError(f"no run {run_id!r} among {sorted(index)}")
    children: dict[str, list[str]] = {rid: [] for rid in index}
    for record in index.values():
        for parent in record.parent_run_ids:
            if parent in children:
                children[parent].append(record.run_id)
    seen: list[str] = []
    queue = deque(children[run_id])
    while queue:
        child = queue.popleft()
        if child in seen or child == run_id:
            continue
        seen.append(child)
        queue.extend(children[child])
    return seen


def roots(runs: Mapping[str, RunRecord] | Iterable[RunRecord]) -> list[str]:
    """Runs with no recorded parent: fresh starts and stages reading an import checkpoint."""
    return [rid for rid, r in _index(runs).items() if not r.parent_run_ids]
