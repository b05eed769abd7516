"""Reports of one experiment folder: terminal table, CSV, JSON and Markdown.

`build_report` computes everything once (the metric, groups of runs of one kind,
deltas, matched comparisons, the gate); the renderers only format. CSV and JSON carry
raw numbers for analysis scripts; the terminal table and Markdown round them for
reading, and the Markdown tables are what a paper draft pastes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ttt_ledger.compare import (
    GATE_MAX_LOSS_DELTA,
    GATE_MIN_SAVING,
    GateResult,
    MatchedComparison,
    RunDelta,
    control_deltas,
    matched_comparisons,
    success_gate,
)
from ttt_ledger.external import external_columns, external_value, has_external_evals
from ttt_ledger.groups import GroupKey, RunGroup, run_groups
from ttt_ledger.metrics import MetricChoice, default_metric
from ttt_ledger.records import Experiment, LedgerError, RunRecord, RunStatus
from ttt_ledger.store import utc_now

FORMATS = ("table", "csv", "json", "md")


@dataclass(frozen=True)
class LedgerReport:
    """Everything a report shows, computed from one experiment snapshot."""

    exp_folder: str
    metric: str
    metric_reason: str
    cost_axis: str
    runs: tuple[RunRecord, ...]
    groups: tuple[RunGroup, ...]
    deltas: tuple[RunDelta, ...]
    comparisons: tuple[MatchedComparison, ...]
    gates: tuple[GateResult, ...]
    generated_at: str


def build_report(experiment: Experiment, metric: str | None = None, *,
                 cost_axis: str = "wall_clock_s", min_saving: float = GATE_MIN_SAVING,
                 max_loss_delta: float = GATE_MAX_LOSS_DELTA) -> LedgerReport:
    """Deltas, token- and wall-clock-matched comparisons and the gate for one folder.

    metric None: the held-out loss when the runs record one, else the train loss.
    """
    if not experiment.runs:
        raise LedgerError(f"experiment folder {experiment.exp_folder!r} holds no runs")
    choice = default_metric(experiment) if metric is None else MetricChoice(metric,
                                                                            "as requested")
    metric = choice.name
    return LedgerReport(
        exp_folder=experiment.exp_folder, metric=metric, metric_reason=choice.reason,
        cost_axis=cost_axis, runs=tuple(experiment.runs.values()),
        groups=tuple(run_groups(experiment, metric)),
        deltas=tuple(control_deltas(experiment, metric)),
        comparisons=tuple(matched_comparisons(experiment, metric)),
        gates=tuple(success_gate(experiment, metric, min_saving=min_saving,
                                 max_loss_delta=max_loss_delta, cost_axis=cost_axis)),
        generated_at=utc_now())


def render(report: LedgerReport, fmt: str) -> str:
    """The report in one of FORMATS."""
    renderers: dict[str, Callable[[LedgerReport], str]] = {
        "table": render_table, "csv": render_csv, "json": render_json, "md": render_markdown}
    if fmt not in renderers:
        raise LedgerError(f"report format {fmt!r}: expected one of {FORMATS}")
    return renderers[fmt](report)


# -- number formatting ----------------------------------------------------------------

def fmt_count(n: float | None, missing: str = "-") -> str:
    """Token counts the way papers write them: 950, 8.19K, 65.5M, 400K, 1.20B."""
    if n is None:
        return missing
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            value = n / scale
            digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f"{value:.{digits}f}{suffix}"
    return f"{n:g}"


def fmt_context(n: int) -> str:
    """Context lengths as the papers write them: 8192 -> 8K, 32768 -> 32K."""
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def fmt_num(x: float | None, digits: int = 3, *, signed: bool = False,
            missing: str = "-") -> str:
    if x is None:
        return missing
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def fmt_duration(seconds: float | None, missing: str = "-") -> str:
    """Wall-clock in the unit that keeps it readable: 42.0 s, 3.5 min, 12.41 h."""
    if seconds is None:
        return missing
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def fmt_hours(hours: float | None, missing: str = "-") -> str:
    """Device-hours with two significant digits below 0.01 h, so a CPU pilot's cost is not
    rounded to zero: 0.00048, 0.35, 12.4, 1,204.0."""
    if hours is None:
        return missing
    if hours == 0 or hours >= 0.01:
        return f"{hours:,.1f}" if hours >= 10 else f"{hours:.2f}"
    return f"{hours:.2g}"


def fmt_axis_value(axis: str, x: float | None, missing: str = "-") -> str:
    if axis == "tokens":
        return fmt_count(x, missing)
    if axis == "wall_clock_s":
        return fmt_duration(x, missing)
    return missing if x is None else f"{fmt_hours(x)} device-h"


def _status(record: RunRecord) -> str:
    return record.status.value


def _by_run(report: LedgerReport) -> dict[str, RunDelta]:
    return {d.run_id: d for d in report.deltas}


def group_label(key: GroupKey) -> str:
    """`qwen2_5_0_5b adapter ext E2E 32K from adapt E2E 8K from ...`: a group in words."""
    def lineage(k: GroupKey) -> str:
        own = f"{k.stage} {k.model_kind.upper()} {fmt_context(k.context_length)}"
        return own + "".join(f" from {lineage(p)}" for p in k.parents)

    return f"{key.family} {key.path} {lineage(key)}"


def _group_of(report: LedgerReport) -> dict[str, RunGroup]:
    return {run_id: g for g in report.groups for run_id in g.run_ids}


def _sweep_best(report: LedgerReport) -> set[str]:
    """Run ids that stand for a sweep (a group of several runs) in comparisons."""
    return {g.best_id for g in report.groups if g.is_sweep and g.best_id is not None}


def _sweep_lines(report: LedgerReport, bullet: str, missing: str) -> list[str]:
    """One line per sweep: its runs with their values, the best marked *, others' status."""
    deltas = _by_run(report)
    status = {r.run_id: r.status for r in report.runs}
    lines = []
    for g in report.groups:
        if not g.is_sweep:
            continue
        cells = []
        for run_id in g.run_ids:
            cell = f"{run_id} {fmt_num(deltas[run_id].value, 4, missing=missing)}"
            if run_id == g.best_id:
                cell += "*"
            if status[run_id] is not RunStatus.COMPLETED:
                cell += f" ({status[run_id].value})"
            cells.append(cell)
        lines.append(f"{bullet}{group_label(g.key)}: {', '.join(cells)}")
    return lines


def _sweeps_note(report: LedgerReport) -> str:
    return (f"Sweeps (runs of one kind; the matched comparisons and the gate use each "
            f"group's best completed run by {report.metric}, marked *):")


def _interrupted(report: LedgerReport) -> list[RunRecord]:
    return [r for r in report.runs if r.status is RunStatus.INTERRUPTED]


# -- terminal table -------------------------------------------------------------------

def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[bool]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths),
                      *(line(r) for r in rows)])


def render_table(report: LedgerReport) -> str:
    """Fixed-width text for a terminal: runs, sweeps, matched comparisons, the gate,
    failures and interruptions."""
    deltas, sweep_best = _by_run(report), _sweep_best(report)
    m = report.metric
    headers = ["run", "path", "stage", "model", "ctx", "restore", "status", "sweep best",
               "steps", "tokens", "cum tokens", "cum wall", "cum device-h", m, f"best {m}",
               "d vs FA", "d vs E2E"]
    right = [False] * 8 + [True] * 9
    rows = []
    for r in report.runs:
        d = deltas[r.run_id]
        steps = f"{r.steps_completed}/{r.planned_steps}" if r.planned_steps is not None \
            else str(r.steps_completed)
        rows.append([r.run_id, r.path, r.stage, r.model_kind, fmt_context(r.context_length),
                     r.restore.label, _status(r), "*" if r.run_id in sweep_best else "",
                     steps, fmt_count(r.tokens_seen),
                     fmt_count(d.budget.tokens), fmt_duration(d.budget.wall_clock_s),
                     fmt_hours(d.budget.device_hours), fmt_num(d.value, 4),
                     fmt_num(r.best_metrics.get(m), 4),
                     fmt_num(d.delta_vs_fa, 4, signed=True),
                     fmt_num(d.delta_vs_scratch_e2e, 4, signed=True)])
    parts = [f"Ledger report: {report.exp_folder}  (metric {m}: {report.metric_reason}; "
             f"generated {report.generated_at})", "", _text_table(headers, rows, right)]
    sweeps = _sweep_lines(report, "  ", "-")
    if sweeps:
        parts += ["", _sweeps_note(report), *sweeps]
    if report.comparisons:
        parts += ["", "Matched comparisons (vs scratch TTT-E2E, cumulative over lineage):", "",
                  _text_table(["run", "vs", "axis", "budget", m, f"ref {m}", "delta",
                               "source/ref source"],
                              [_comparison_cells(c) for c in report.comparisons],
                              [False, False, False, True, True, True, True, False])]
    if report.gates:
        parts += ["", f"Success gate (>= {report.gates[0].min_saving:.0%} less "
                      f"{report.cost_axis}, delta {m} <= {report.gates[0].max_loss_delta:g}):",
                  "", _text_table(["run", "vs", "cost", "ref cost", "saving", m, f"ref {m}",
                                   "delta", "gate", "why"],
                                  [_gate_cells(g) for g in report.gates],
                                  [False, False, True, True, True, True, True, True, False,
                                   False])]
    external = _external_table(report, "-")
    if external:
        headers, rows = external
        parts += ["", "External evaluation (ttt eval bundle; NLL in nats/token):", "",
                  _text_table(headers, rows, [False, False] + [True] * (len(headers) - 2))]
    failed = [r for r in report.runs if r.status is RunStatus.FAILED]
    if failed:
        parts += ["", "Failures:"] + [f"  {r.run_id}: {r.failure_reason}" for r in failed]
    interrupted = _interrupted(report)
    if interrupted:
        parts += ["", "Interrupted (not finished; start the run again to resume):"] + [
            f"  {r.run_id} at step {r.steps_completed}: {r.interrupt_reason}"
            for r in interrupted]
    return "\n".join(parts) + "\n"


def _comparison_cells(c: MatchedComparison, missing: str = "-") -> list[str]:
    return [c.run_id, c.reference_id, c.axis, fmt_axis_value(c.axis, c.budget, missing),
            fmt_num(c.value, 4, missing=missing), fmt_num(c.reference_value, 4, missing=missing),
            fmt_num(c.delta, 4, signed=True, missing=missing),
            f"{c.value_source}/{c.reference_source}"]


def _gate_cells(g: GateResult, missing: str = "-") -> list[str]:
    return [g.run_id, g.reference_id or missing, fmt_axis_value(g.cost_axis, g.cost, missing),
            fmt_axis_value(g.cost_axis, g.reference_cost, missing),
            missing if g.saving is None else f"{g.saving:.1%}",
            fmt_num(g.value, 4, missing=missing), fmt_num(g.reference_value, 4, missing=missing),
            fmt_num(g.loss_delta, 4, signed=True, missing=missing), g.verdict, g.reason]


def _external_table(report: LedgerReport, missing: str
                    ) -> tuple[list[str], list[list[str]]] | None:
    """Runs with bundle eval results, one column per recorded measure."""
    runs = [r for r in report.runs if has_external_evals([r])]
    if not runs:
        return None
    cols = external_columns(runs)
    headers = ["run", "model", *(h for h, _, _ in cols)]
    rows = [[r.run_id, r.model_kind.upper(),
             *(fmt_num(external_value(r, name, key), 4, missing=missing)
               for _, name, key in cols)] for r in runs]
    return headers, rows


# -- CSV ----------------------------------------------------------------------------

CSV_COLUMNS = (
    "exp_folder", "run_id", "family", "path", "stage", "model_kind", "train_mode",
    "context_length", "recipe", "checkpoint_source", "output_checkpoint", "config_name",
    "data_root", "parent_run_ids", "status", "failure_reason", "interrupt_reason", "group",
    "best_in_group", "restore", "planned_steps",
    "steps_completed", "tokens_seen", "wall_clock_s", "device_kind", "device_count",
    "device_hours", "cum_tokens", "cum_wall_clock_s", "cum_device_hours", "metric", "value",
    "best_value", "fa_control", "delta_vs_fa", "scratch_e2e", "delta_vs_scratch_e2e",
    "gate", "gate_saving", "gate_loss_delta", "config_hash", "git_commit", "started_at",
    "finished_at")


def render_csv(report: LedgerReport) -> str:
    """One row per run, raw numbers, every lineage-cumulative cost and both deltas."""
    deltas, group_of = _by_run(report), _group_of(report)
    gates = {g.run_id: g for g in report.gates}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in report.runs:
        d, g, group = deltas[r.run_id], gates.get(r.run_id), group_of[r.run_id]
        writer.writerow({
            "exp_folder": r.exp_folder, "run_id": r.run_id, "family": r.family,
            "path": r.path, "stage": r.stage, "model_kind": r.model_kind,
            "train_mode": r.train_mode, "context_length": r.context_length,
            "recipe": r.recipe, "checkpoint_source": r.checkpoint_source,
            "output_checkpoint": r.output_checkpoint, "config_name": r.config_name,
            "data_root": r.data_root, "parent_run_ids": "|".join(r.parent_run_ids),
            "status": r.status.value, "failure_reason": r.failure_reason,
            "interrupt_reason": r.interrupt_reason, "group": group_label(group.key),
            "best_in_group": group.best_id == r.run_id,
            "restore": r.restore.label, "planned_steps": r.planned_steps,
            "steps_completed": r.steps_completed, "tokens_seen": r.tokens_seen,
            "wall_clock_s": r.wall_clock_s, "device_kind": r.device_kind,
            "device_count": r.device_count, "device_hours": r.device_hours,
            "cum_tokens": d.budget.tokens, "cum_wall_clock_s": d.budget.wall_clock_s,
            "cum_device_hours": d.budget.device_hours, "metric": report.metric,
            "value": d.value, "best_value": r.best_metrics.get(report.metric),
            "fa_control": d.fa_control_id, "delta_vs_fa": d.delta_vs_fa,
            "scratch_e2e": d.scratch_e2e_id, "delta_vs_scratch_e2e": d.delta_vs_scratch_e2e,
            "gate": g.verdict if g else None, "gate_saving": g.saving if g else None,
            "gate_loss_delta": g.loss_delta if g else None, "config_hash": r.config_hash,
            "git_commit": r.git_commit, "started_at": r.started_at,
            "finished_at": r.finished_at})
    return out.getvalue()


# -- JSON ---------------------------------------------------------------------------

def _json_safe(value: Any) -> Any:
    """Strict JSON: non-finite floats (a diverged loss) become the strings 'nan'/'inf'."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def report_dict(report: LedgerReport) -> dict[str, Any]:
    """The whole report as plain data (full records, eval results included)."""
    deltas, group_of = _by_run(report), _group_of(report)
    runs = []
    for r in report.runs:
        d, group = deltas[r.run_id], group_of[r.run_id]
        runs.append({**r.to_dict(), "device_hours": r.device_hours,
                     "group": group_label(group.key), "best_in_group": group.best_id == r.run_id,
                     "cumulative": dataclasses.asdict(d.budget), "value": d.value,
                     "fa_control": d.fa_control_id, "delta_vs_fa": d.delta_vs_fa,
                     "scratch_e2e": d.scratch_e2e_id,
                     "delta_vs_scratch_e2e": d.delta_vs_scratch_e2e})
    return _json_safe({
        "exp_folder": report.exp_folder, "metric": report.metric,
        "metric_reason": report.metric_reason, "cost_axis": report.cost_axis,
        "generated_at": report.generated_at, "runs": runs,
        "groups": [{"label": group_label(g.key), "key": dataclasses.asdict(g.key),
                    "run_ids": list(g.run_ids), "best_id": g.best_id}
                   for g in report.groups],
        "comparisons": [{**dataclasses.asdict(c), "delta": c.delta}
                        for c in report.comparisons],
        "gates": [dataclasses.asdict(g) for g in report.gates]})


def render_json(report: LedgerReport) -> str:
    return json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n"


# -- Markdown -----------------------------------------------------------------------

def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
              right: Sequence[bool]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: LedgerReport) -> str:
    """Paper-ready tables: runs with cumulative cost and deltas, matched pairs, the gate."""
    deltas, sweep_best = _by_run(report), _sweep_best(report)
    m, dash = report.metric, "—"
    rows = []
    for r in report.runs:
        d = deltas[r.run_id]
        rows.append([r.run_id, r.path, r.stage, r.model_kind.upper(),
                     fmt_context(r.context_length), r.restore.label,
                     str(r.steps_completed), fmt_count(d.budget.tokens, dash),
                     fmt_hours(d.budget.device_hours), fmt_num(d.value, 3, missing=dash),
                     fmt_num(d.delta_vs_fa, 3, signed=True, missing=dash),
                     fmt_num(d.delta_vs_scratch_e2e, 3, signed=True, missing=dash),
                     _status(r), "*" if r.run_id in sweep_best else ""])
    parts = [f"### Runs: `{report.exp_folder}`", "",
             _md_table(["Run", "Path", "Stage", "Model", "Ctx", "Restore", "Steps",
                        "Tokens (cum.)", "Device-h (cum.)", m, f"Δ{m} vs FA",
                        f"Δ{m} vs E2E scratch", "Status", "Sweep best"], rows,
                       [False] * 5 + [False] + [True] * 6 + [False, False]),
             "",
             f"Metric: `{m}` ({report.metric_reason}). "
             "Costs are cumulative over each run's lineage (the imported checkpoint is free). "
             "Δ vs FA: against the family's FA run on the same path and context; "
             "Δ vs E2E scratch: against the scratch TTT-E2E run at the same context."]
    sweeps = _sweep_lines(report, "- ", dash)
    if sweeps:
        parts += ["", _sweeps_note(report), "", *sweeps]
    external = _external_table(report, dash)
    if external:
        headers, rows = external
        parts += ["", "### External evaluation", "",
                  _md_table(headers, rows, [False, False] + [True] * (len(headers) - 2)),
                  "", "NLL in nats/token over each context's held-out windows; RULER: mean "
                      "accuracy over tasks and cells (rank: the true answer ranked first by "
                      "log-likelihood; gen: found in the greedy output); decode slope: "
                      "NLL change per 1K generated tokens."]
    failed = [r for r in report.runs if r.status is RunStatus.FAILED]
    if failed:
        parts += [""] + [f"- {r.run_id} failed: {r.failure_reason}" for r in failed]
    interrupted = _interrupted(report)
    if interrupted:
        parts += [""] + [f"- {r.run_id} interrupted at step {r.steps_completed}: "
                         f"{r.interrupt_reason}" for r in interrupted]
    if report.comparisons:
        parts += ["", "### Matched comparisons (vs scratch TTT-E2E)", "",
                  _md_table(["Run", "vs", "Matched on", "Budget", m, f"Ref. {m}", f"Δ{m}",
                             "Source"],
                            [_comparison_cells(c, dash) for c in report.comparisons],
                            [False, False, False, True, True, True, True, False])]
    if report.gates:
        g0 = report.gates[0]
        parts += ["", f"### Success gate: ≥{g0.min_saving:.0%} less {report.cost_axis} at "
                      f"Δ{m} ≤ {g0.max_loss_delta:g}", "",
                  _md_table(["Run", "vs", "Cost", "Ref. cost", "Saving", m, f"Ref. {m}",
                             f"Δ{m}", "Gate", "Why"],
                            [_gate_cells(g, dash) for g in report.gates],
                            [False, False, True, True, True, True, True, True, False,
                             False])]
    return "\n".join(parts) + "\n"
