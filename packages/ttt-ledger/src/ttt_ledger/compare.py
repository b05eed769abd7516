"""Comparisons the research asks for (docs/protocol.md), defined precisely.

Cost is cumulative over lineage: a run's budget is its own plus every ancestor's
(each ancestor counted once). The public pretrained checkpoint a lineage starts from is
free: its original pretraining is a sunk cost, which is the point of warm-starting.
Cost axes: `tokens` (training tokens seen), `wall_clock_s`, `device_hours`
(wall-clock x device count, the fairness protocol's GPU-hours).

Runs of one kind (a sweep; see `groups.py`) are compared through their group's best
completed run by the metric: it is the control other runs are measured against, and
the one run of its group in the matched comparisons and the gate. Interrupted, failed
and running runs are never a control and never compared or gated.

Controls of a run R (same experiment folder, family and context length):
- matched scratch TTT-E2E: the best completed run with path `scratch` and model kind `e2e`;
- FA control: the best completed run with model kind `fa` on R's own path (FA-import
  for adapter runs, FA-scratch for scratch runs).
A run has no control of its own group. Completed candidates of more than one group
(say, scratch TTT-E2E runs of different stages) are an error: the comparison would be
ambiguous.

Matched comparison of R against reference B on an axis: the matched budget is
X = min(total_R, total_B). Each run's metric value at cumulative budget X is its final
value when X is its total, else read off its logged curve (points placed at ancestors'
total + the point's stage-local budget, the final value anchored at the run's total,
linear interpolation between neighbours). When X lies before a run's first logged
point or it logged no curve, the matched value is None and the final values and totals
(always reported) are what remains; `value_source` says which case applied.

Success gate (docs/protocol.md): a group's best completed adapter TTT-E2E run passes when its
cumulative cost is at least 30% below the matched scratch TTT-E2E run's and its final
metric is at most 0.01 above it: saving = 1 - cost_R / cost_B >= 0.30 and
value_R - value_B <= 0.01 (both with a 1e-9 tolerance for float rounding).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from ttt_ledger.groups import RunGroup, group_keys, run_groups
from ttt_ledger.lineage import ancestors
from ttt_ledger.metrics import metric_value
from ttt_ledger.records import Experiment, LedgerError, RunRecord, RunStatus

AXES = ("tokens", "wall_clock_s", "device_hours")
GATE_MIN_SAVING = 0.30
GATE_MAX_LOSS_DELTA = 0.01
_TOLERANCE = 1e-9


class ComparisonError(LedgerError):
    """A comparison that cannot be defined (ambiguous control, unknown axis)."""


@dataclass(frozen=True)
class Budget:
    """Cumulative budget of a run and its ancestors; `complete` when all of them completed."""

    tokens: int
    wall_clock_s: float
    device_hours: float
    runs: tuple[str, ...]
    complete: bool

    def on(self, axis: str) -> float:
        _check_axis(axis)
        return float(getattr(self, axis))


@dataclass(frozen=True)
class MatchedComparison:
    """One run against its matched scratch TTT-E2E run at an equal cumulative budget."""

    run_id: str
    reference_id: str
    metric: str
    axis: str
    budget: float
    value: float | None
    reference_value: float | None
    value_source: str
    reference_source: str
    run_total: float
    reference_total: float
    run_final: float | None
    reference_final: float | None
    budgets_complete: bool

    @property
    def delta(self) -> float | None:
        """value - reference_value at the matched budget (negative: the run is better)."""
        if self.value is None or self.reference_value is None:
            return None
        return self.value - self.reference_value


@dataclass(frozen=True)
class RunDelta:
    """A run's final metric against its FA control and its matched scratch TTT-E2E run.

    Control ids are None where there is no completed control or the run is its own.
    """

    run_id: str
    value: float | None
    budget: Budget
    fa_control_id: str | None
    fa_control_value: float | None
    scratch_e2e_id: str | None
    scratch_e2e_value: float | None

    @property
    def delta_vs_fa(self) -> float | None:
        return _difference(self.value, self.fa_control_value)

    @property
    def delta_vs_scratch_e2e(self) -> float | None:
        return _difference(self.value, self.scratch_e2e_value)


@dataclass(frozen=True)
class GateResult:
    """The success gate for one adapter TTT-E2E run, with the numbers behind the verdict.

    verdict: PASS, FAIL, or INCOMPLETE (missing reference, metric or unfinished lineage).
    """

    run_id: str
    reference_id: str | None
    metric: str
    cost_axis: str
    cost: float | None
    reference_cost: float | None
    saving: float | None
    value: float | None
    reference_value: float | None
    loss_delta: float | None
    min_saving: float
    max_loss_delta: float
    verdict: str
    reason: str


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ComparisonError(f"axis {axis!r}: expected one of {AXES}")


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def cumulative_budget(experiment: Experiment, run_id: str) -> Budget:
    """The run's budget plus its ancestors' (raises if an ancestor is not recorded)."""
    counted = [run_id, *ancestors(experiment.runs, run_id)]
    records = [experiment.runs[r] for r in counted]
    return Budget(tokens=sum(r.tokens_seen for r in records),
                  wall_clock_s=sum(r.wall_clock_s for r in records),
                  device_hours=sum(r.device_hours for r in records),
                  runs=tuple(counted),
                  complete=all(r.status is RunStatus.COMPLETED for r in records))


def _control_group(experiment: Experiment, run: RunRecord, what: str, metric: str,
                   **match: object) -> RunGroup | None:
    found = [g for g in run_groups(experiment, metric)
             if g.best_id is not None and g.key.family == run.family
             and g.key.context_length == run.context_length
             and all(getattr(g.key, k) == v for k, v in match.items())]
    if len(found) > 1:
        kinds = "; ".join(f"stage {g.key.stage!r}: {list(g.run_ids)}" for g in found)
        raise ComparisonError(
            f"{experiment.exp_folder}: completed {what} runs of {len(found)} different "
            f"kinds (stage or lineage) for family {run.family!r} at context "
            f"{run.context_length}: {kinds}; keep one kind per folder")
    return found[0] if found else None


def _best_of(experiment: Experiment, group: RunGroup | None) -> RunRecord | None:
    return None if group is None or group.best_id is None else experiment.runs[group.best_id]


def matched_scratch_e2e(experiment: Experiment, run: RunRecord,
                        metric: str = "loss") -> RunRecord | None:
    """The best completed scratch TTT-E2E run of the run's family and context length."""
    return _best_of(experiment, _control_group(
        experiment, run, "scratch TTT-E2E", metric, path="scratch", model_kind="e2e"))


def fa_control(experiment: Experiment, run: RunRecord, metric: str = "loss"
               ) -> RunRecord | None:
    """The best completed FA run on the run's own path (adapter: FA-import; scratch:
    FA-scratch)."""
    return _best_of(experiment, _control_group(
        experiment, run, f"{run.path} FA", metric, path=run.path, model_kind="fa"))


def value_at_budget(experiment: Experiment, run_id: str, metric: str, axis: str,
                    budget: float) -> tuple[float | None, str]:
    """The run's metric at cumulative `budget` on `axis`, and how it was obtained.

    Sources: `final` (budget is the run's total), `curve` (interpolated), `before-curve`
    (budget precedes the first logged point), `after-curve` (past the last point and no
    final value), `no-curve`, `missing` (budget is the total but no final value).
    """
    _check_axis(axis)
    record = experiment.runs[run_id]
    total = cumulative_budget(experiment, run_id).on(axis)
    final = metric_value(record, metric)
    if abs(budget - total) <= _TOLERANCE * max(1.0, abs(total)):
        return (final, "final") if final is not None else (None, "missing")
    logged = curve_on_axis(experiment, run_id, metric, axis)
    if not logged:
        return None, "no-curve"
    points = [pt for pt in logged if pt[0] < total]
    if final is not None:
        points.append((total, final))
    xs = [x for x, _ in points]
    if not xs or budget < xs[0]:
        return None, "before-curve"
    if budget > xs[-1]:
        return None, "after-curve"
    i = bisect_left(xs, budget)
    if xs[i] == budget:
        return points[i][1], "curve"
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (budget - x0) / (x1 - x0), "curve"


def own_cost(record: RunRecord, axis: str, tokens: int | None = None,
             wall_clock_s: float | None = None) -> float:
    """A run's own cost on `axis` (or the cost at a point's stage-local tokens/seconds)."""
    _check_axis(axis)
    tokens = record.tokens_seen if tokens is None else tokens
    wall_clock_s = record.wall_clock_s if wall_clock_s is None else wall_clock_s
    if axis == "tokens":
        return float(tokens)
    if axis == "wall_clock_s":
        return wall_clock_s
    return wall_clock_s * record.device_count / 3600.0


def curve_on_axis(experiment: Experiment, run_id: str, metric: str, axis: str
                  ) -> list[tuple[float, float]]:
    """The run's logged curve as (cumulative cost, value): ancestors' totals + own cost."""
    budget = cumulative_budget(experiment, run_id)
    offset = sum(own_cost(experiment.runs[a], axis) for a in budget.runs[1:])
    record = experiment.runs[run_id]
    points = [(offset + own_cost(record, axis, p.tokens_seen, p.wall_clock_s), p.value)
              for p in experiment.curve(run_id, metric)]
    return sorted(points, key=lambda pt: pt[0])


def _group_bests(experiment: Experiment, metric: str, path: str,
                 model_kind: str | None = None) -> list[RunRecord]:
    """The best completed run of each group on `path` (and of `model_kind`), in order."""
    return [experiment.runs[g.best_id] for g in run_groups(experiment, metric)
            if g.best_id is not None and g.key.path == path
            and (model_kind is None or g.key.model_kind == model_kind)]


def matched_comparisons(experiment: Experiment, metric: str = "loss",
                        axes: tuple[str, ...] = ("tokens", "wall_clock_s")
                        ) -> list[MatchedComparison]:
    """Each adapter group's best completed run against its matched scratch TTT-E2E run,
    per axis."""
    out = []
    for run in _group_bests(experiment, metric, "adapter"):
        reference = matched_scratch_e2e(experiment, run, metric)
        if reference is None:
            continue
        run_budget = cumulative_budget(experiment, run.run_id)
        ref_budget = cumulative_budget(experiment, reference.run_id)
        for axis in axes:
            matched = min(run_budget.on(axis), ref_budget.on(axis))
            value, source = value_at_budget(experiment, run.run_id, metric, axis, matched)
            ref_value, ref_source = value_at_budget(experiment, reference.run_id, metric,
                                                    axis, matched)
            out.append(MatchedComparison(
                run_id=run.run_id, reference_id=reference.run_id, metric=metric, axis=axis,
                budget=matched, value=value, reference_value=ref_value, value_source=source,
                reference_source=ref_source, run_total=run_budget.on(axis),
                reference_total=ref_budget.on(axis), run_final=metric_value(run, metric),
                reference_final=metric_value(reference, metric),
                budgets_complete=run_budget.complete and ref_budget.complete))
    return out


def control_deltas(experiment: Experiment, metric: str = "loss") -> list[RunDelta]:
    """Every run's final metric against its FA control and matched scratch TTT-E2E run."""
    keys = group_keys(experiment)
    out = []
    for run in experiment.runs.values():
        fa = fa_control(experiment, run, metric)
        e2e = matched_scratch_e2e(experiment, run, metric)
        fa = None if fa is None or keys[fa.run_id] == keys[run.run_id] else fa
        e2e = None if e2e is None or keys[e2e.run_id] == keys[run.run_id] else e2e
        out.append(RunDelta(
            run_id=run.run_id, value=metric_value(run, metric),
            budget=cumulative_budget(experiment, run.run_id),
            fa_control_id=fa.run_id if fa else None,
            fa_control_value=metric_value(fa, metric) if fa else None,
            scratch_e2e_id=e2e.run_id if e2e else None,
            scratch_e2e_value=metric_value(e2e, metric) if e2e else None))
    return out


def success_gate(experiment: Experiment, metric: str = "loss", *,
                 min_saving: float = GATE_MIN_SAVING,
                 max_loss_delta: float = GATE_MAX_LOSS_DELTA,
                 cost_axis: str = "wall_clock_s") -> list[GateResult]:
    """The gate for each adapter TTT-E2E group's best completed run (see the module
    docstring)."""
    _check_axis(cost_axis)
    results = []
    for run in _group_bests(experiment, metric, "adapter", "e2e"):
        results.append(_gate_one(experiment, run, metric, min_saving, max_loss_delta,
                                 cost_axis))
    return results


def _gate_one(experiment: Experiment, run: RunRecord, metric: str, min_saving: float,
              max_loss_delta: float, cost_axis: str) -> GateResult:
    reference = matched_scratch_e2e(experiment, run, metric)
    budget = cumulative_budget(experiment, run.run_id)
    value = metric_value(run, metric)
    common = dict(run_id=run.run_id, metric=metric, cost_axis=cost_axis,
                  min_saving=min_saving, max_loss_delta=max_loss_delta,
                  cost=budget.on(cost_axis), value=value)
    if reference is None:
        return GateResult(**common, reference_id=None, reference_cost=None, saving=None,
                          reference_value=None, loss_delta=None, verdict="INCOMPLETE",
                          reason=f"no completed scratch TTT-E2E run for {run.family} at "
                                 f"context {run.context_length}")
    ref_budget = cumulative_budget(experiment, reference.run_id)
    ref_cost = ref_budget.on(cost_axis)
    ref_value = metric_value(reference, metric)
    saving = 1.0 - budget.on(cost_axis) / ref_cost if ref_cost > 0 else None
    delta = _difference(value, ref_value)
    filled = dict(common, reference_id=reference.run_id, reference_cost=ref_cost,
                  saving=saving, reference_value=ref_value, loss_delta=delta)
    missing = []
    if not budget.complete or not ref_budget.complete:
        missing.append("a run in the lineage has not completed")
    if value is None or ref_value is None:
        missing.append(f"metric {metric!r} missing")
    if saving is None:
        missing.append(f"reference {reference.run_id} records no {cost_axis}")
    if missing:
        return GateResult(**filled, verdict="INCOMPLETE", reason="; ".join(missing))
    assert saving is not None and delta is not None
    saving_ok = saving >= min_saving - _TOLERANCE
    delta_ok = delta <= max_loss_delta + _TOLERANCE
    reason = (f"saving {saving:.1%} {'>=' if saving_ok else '<'} {min_saving:.0%}; "
              f"delta {metric} {delta:+.4f} {'<=' if delta_ok else '>'} {max_loss_delta:g}")
    return GateResult(**filled, verdict="PASS" if saving_ok and delta_ok else "FAIL",
                      reason=reason)
