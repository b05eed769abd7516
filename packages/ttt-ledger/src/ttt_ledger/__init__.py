"""ttt-ledger: the record of every TTT-E2E run, its lineage and cost, and the comparisons
the warm-start research asks for (token- and wall-clock-matched, the success gate).

Typical use by a training app:

    ledger = Ledger.open("experiments")                      # experiments/ledger.sqlite
    ledger.add_plan(build_stage_plan("qwen2_5_0_5b", "pilot_1", budget="pilot"))
    ledger.start_run("pilot_1", "Q-A1", restore=RestoreStatus.params(), device_kind="cpu")
    ledger.record_progress("pilot_1", "Q-A1", steps_completed=4, tokens_seen=65536,
                           wall_clock_s=12.5, points=[MetricPoint("loss", 4, 65536, 12.5, 3.2)])
    ledger.complete_run("pilot_1", "Q-A1", final_metrics={"loss": 3.1})   # or fail_run(...)
    # or, stopped by a signal or the scheduler (a later start_run resumes it):
    ledger.interrupt_run("pilot_1", "Q-A1", reason="SIGTERM at step 4", steps_completed=4,
                         tokens_seen=65536, wall_clock_s=12.5)
"""

from ttt_ledger.compare import (
    AXES,
    GATE_MAX_LOSS_DELTA,
    GATE_MIN_SAVING,
    Budget,
    ComparisonError,
    GateResult,
    MatchedComparison,
    RunDelta,
    control_deltas,
    cumulative_budget,
    curve_on_axis,
    fa_control,
    matched_comparisons,
    matched_scratch_e2e,
    success_gate,
    value_at_budget,
)
from ttt_ledger.groups import GroupKey, RunGroup, best_completed, group_keys, run_groups
from ttt_ledger.lineage import LineageError, ancestors, check_lineage, descendants, roots
from ttt_ledger.metrics import (
    HELDOUT_METRIC,
    TRAIN_METRIC,
    MetricChoice,
    MetricError,
    available_metrics,
    check_metric,
    default_metric,
    metric_value,
)
from ttt_ledger.plan import (
    FAMILIES,
    MATRIX,
    PILOT_BUDGET,
    FamilySpec,
    PlanError,
    StepBudget,
    build_plans,
    build_stage_plan,
    resolve_family,
)
from ttt_ledger.provenance import config_hash, git_commit, package_versions
from ttt_ledger.records import (
    EvalResult,
    Experiment,
    LedgerError,
    MetricPoint,
    RecordError,
    RestoreStatus,
    RunRecord,
    RunStatus,
    load_record_json,
    save_record_json,
)
from ttt_ledger.report import FORMATS, LedgerReport, build_report, group_label, render
from ttt_ledger.store import (
    LEDGER_FILENAME,
    SCHEMA_VERSION,
    Ledger,
    LedgerNotFoundError,
    RunExistsError,
    RunNotFoundError,
    RunStateError,
    ledger_path,
)

__version__ = "0.1.0"

__all__ = [
    "AXES", "FAMILIES", "FORMATS", "GATE_MAX_LOSS_DELTA", "GATE_MIN_SAVING", "HELDOUT_METRIC",
    "LEDGER_FILENAME", "MATRIX", "PILOT_BUDGET", "SCHEMA_VERSION", "TRAIN_METRIC", "Budget",
    "ComparisonError", "EvalResult", "Experiment", "FamilySpec", "GateResult", "GroupKey",
    "Ledger", "LedgerError", "LedgerNotFoundError", "LedgerReport", "LineageError",
    "MatchedComparison", "MetricChoice", "MetricError", "MetricPoint", "PlanError",
    "RecordError", "RestoreStatus", "RunDelta", "RunExistsError", "RunGroup",
    "RunNotFoundError", "RunRecord", "RunStateError", "RunStatus", "StepBudget", "ancestors",
    "available_metrics", "best_completed", "build_plans", "build_report", "build_stage_plan",
    "check_lineage", "check_metric", "config_hash", "control_deltas", "cumulative_budget",
    "curve_on_axis", "default_metric", "descendants", "fa_control", "git_commit",
    "group_keys", "group_label", "ledger_path", "load_record_json", "matched_comparisons",
    "matched_scratch_e2e", "metric_value", "package_versions", "render", "resolve_family",
    "roots", "run_groups", "save_record_json", "success_gate", "value_at_budget",
]
