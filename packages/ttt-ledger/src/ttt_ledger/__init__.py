"""ttt-ledger: the record of every TTT-E2E run, its lineage and cost, and the comparisons
the warm-start research asks for (token- and wall-clock-matched, the success gate).

Typical use by a training app:

    ledger = Ledger.open("experiments")                      # experiments/ledger.sqlite
    qwen = FamilySpec("qwen2_5_0_5b", "Qwen/Qwen2.5-0.5B", run_prefix="Q", short="qwen05")
    ledger.add_plan(build_stage_plan(qwen, "pilot_1", budget="pilot"))
    ledger.start_run("pilot_1", "Q-A1", restore=RestoreStatus.params(), device_kind="cpu")
    ledger.record_progress("pilot_1", "Q-A1", steps_completed=4, tokens_seen=65536,
                           wall_clock_s=12.5, points=[MetricPoint("loss", 4, 65536, 12.5, 3.2)])
    ledger.complete_run("pilot_1", "Q-A1", final_metrics={"loss": 3.1})   # or fail_run(...)
    # or, stopped by a signal or the scheduler (a later start_run resumes it):
    ledger.interrupt_run("pilot_1", "Q-A1", reason="SIGTERM at step 4", steps_completed=4,
                         tokens_seen=65536, wall_clock_s=12.5)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "AXES": "compare", "Budget": "compare", "ComparisonError": "compare",
    "GATE_MAX_LOSS_DELTA": "compare", "GATE_MIN_SAVING": "compare", "GateResult": "compare",
    "MatchedComparison": "compare", "RunDelta": "compare", "control_deltas": "compare",
    "cumulative_budget": "compare", "curve_on_axis": "compare", "fa_control": "compare",
    "matched_comparisons": "compare", "matched_scratch_e2e": "compare",
    "success_gate": "compare", "value_at_budget": "compare",
    "GroupKey": "groups", "RunGroup": "groups", "best_completed": "groups",
    "group_keys": "groups", "run_groups": "groups",
    "LineageError": "lineage", "ancestors": "lineage", "check_lineage": "lineage",
    "descendants": "lineage", "roots": "lineage",
    "HELDOUT_METRIC": "metrics", "MetricChoice": "metrics", "MetricError": "metrics",
    "TRAIN_METRIC": "metrics", "available_metrics": "metrics", "check_metric": "metrics",
    "default_metric": "metrics", "metric_value": "metrics",
    "FamilySpec": "plan", "MATRIX": "plan", "PILOT_BUDGET": "plan", "PlanError": "plan",
    "StepBudget": "plan", "build_plans": "plan", "build_stage_plan": "plan",
    "resolve_family": "plan",
    "config_hash": "provenance", "git_commit": "provenance", "package_versions": "provenance",
    "EvalResult": "records", "Experiment": "records", "LedgerError": "records",
    "MetricPoint": "records", "RecordError": "records", "RestoreStatus": "records",
    "RunRecord": "records", "RunStatus": "records", "load_record_json": "records",
    "save_record_json": "records",
    "FORMATS": "report", "LedgerReport": "report", "build_report": "report",
    "group_label": "report", "render": "report",
    "LEDGER_FILENAME": "store", "Ledger": "store", "LedgerNotFoundError": "store",
    "RunExistsError": "store", "RunNotFoundError": "store", "RunStateError": "store",
    "SCHEMA_VERSION": "store", "ledger_path": "store",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {
    "FAMILIES": "moved to ttt-import's family registry (ttt_import.registry.REGISTRY); "
                "ttt_train.families.plan_family(key) builds a family's FamilySpec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_ledger.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_ledger.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

