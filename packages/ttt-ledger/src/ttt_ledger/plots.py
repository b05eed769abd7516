"""PNG plots: the quality-vs-compute frontier, training-loss curves and per-position-NLL
overlays.

Uses matplotlib's object API with the Agg canvas directly (no pyplot), so importing
this module never changes a caller's global backend and works headless.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ttt_ledger.compare import AXES, cumulative_budget, curve_on_axis
from ttt_ledger.metrics import metric_value
from ttt_ledger.records import EvalResult, Experiment, LedgerError, RunStatus

AXIS_LABELS = {"tokens": "training tokens (cumulative over lineage)",
               "wall_clock_s": "wall-clock hours (cumulative over lineage)",
               "device_hours": "device-hours (cumulative over lineage)"}
MARKERS = {"adapter": "o", "scratch": "s"}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "plot"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=120)
    return path


def _context(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def _scale(axis: str, x: float) -> float:
    return x / 3600.0 if axis == "wall_clock_s" else x


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost and value (lower is better on both)."""
    front: list[tuple[float, float]] = []
    for cost, value in sorted(points):
        if not front or value < front[-1][1]:
            front.append((cost, value))
    return front


def plot_frontier(experiment: Experiment, out_path: str | os.PathLike[str],
                  metric: str = "loss", cost_axis: str = "device_hours") -> Path | None:
    """Final metric vs cumulative cost per completed run, one panel per context length.

    Logged curves are drawn faintly on the same cumulative axis; the line through the
    non-dominated runs is the frontier. Returns None when no completed run has `metric`.
    """
    if cost_axis not in AXES:
        raise LedgerError(f"cost axis {cost_axis!r}: expected one of {AXES}")
    done = [r for r in experiment.runs.values()
            if r.status is RunStatus.COMPLETED and metric_value(r, metric) is not None]
    if not done:
        return None
    contexts = sorted({r.context_length for r in done})
    families = sorted({r.family for r in done})
    colors = {f: f"C{i % 10}" for i, f in enumerate(families)}
    fig = Figure(figsize=(5.5 * len(contexts), 4.5))
    for i, context in enumerate(contexts):
        ax = fig.add_subplot(1, len(contexts), i + 1)
        for family in families:
            runs = [r for r in done if r.context_length == context and r.family == family]
            points = []
            for r in runs:
                budget = cumulative_budget(experiment, r.run_id)
                x = _scale(cost_axis, budget.on(cost_axis))
                y = metric_value(r, metric)
                assert y is not None
                points.append((x, y))
                ax.scatter([x], [y], color=colors[family], marker=MARKERS[r.path], zorder=3)
                ax.annotate(r.run_id, (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
                curve = [pt for pt in curve_on_axis(experiment, r.run_id, metric, cost_axis)
                         if pt[0] < budget.on(cost_axis)]
                if curve:  # the logged curve, ending at the final value
                    curve.append((budget.on(cost_axis), y))
                    ax.plot([_scale(cost_axis, x) for x, _ in curve], [y for _, y in curve],
                            color=colors[family], alpha=0.3, linewidth=1)
            front = pareto_front(points)
            if front:
                ax.plot([p[0] for p in front], [p[1] for p in front], color=colors[family],
                        linestyle="--", linewidth=1.5, label=f"{family} frontier")
        for path, marker in MARKERS.items():
            ax.scatter([], [], color="gray", marker=marker, label=f"{path} run")
        ax.set_title(f"{experiment.exp_folder}: {metric} at context {_context(context)}")
        ax.set_xlabel(AXIS_LABELS[cost_axis])
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(out_path))


def binned(values: Sequence[float], bins: int) -> tuple[list[float], list[float]]:
    """Mean of `values` in up to `bins` equal position ranges; x is the 1-based mid-position."""
    n = len(values)
    bins = max(1, min(bins, n))
    xs, ys = [], []
    for b in range(bins):
        lo, hi = b * n // bins, (b + 1) * n // bins
        chunk = values[lo:hi]
        xs.append((lo + hi + 1) / 2)
        ys.append(sum(chunk) / len(chunk))
    return xs, ys


def _latest_results(experiment: Experiment) -> dict[tuple[str, str], dict[str, EvalResult]]:
    """(family, eval name) -> run id -> the latest result with per-position NLL."""
    out: dict[tuple[str, str], dict[str, EvalResult]] = {}
    for r in experiment.runs.values():
        for result in r.eval_results:
            if result.per_position_nll:
                out.setdefault((r.family, result.name), {})[r.run_id] = result
    return out


def plot_position_nll(experiment: Experiment, out_dir: str | os.PathLike[str],
                      bins: int = 256) -> list[Path]:
    """One overlay per (family, eval name) of every run's per-position NLL.

    Families are never overlaid together: their tokenizers differ, so position i is a
    different amount of text in each.
    """
    written = []
    for (family, name), by_run in sorted(_latest_results(experiment).items()):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot(1, 1, 1)
        for run_id, result in by_run.items():
            xs, ys = binned(result.per_position_nll, bins)
            ax.plot(xs, ys, linewidth=1.2, label=run_id)
        ax.set_title(f"{experiment.exp_folder} {family}: per-position NLL, {name}")
        ax.set_xlabel("token position")
        ax.set_ylabel("NLL (mean over sequences and position bin)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(_save(fig, Path(out_dir) /
                             f"position_nll_{_safe_name(family)}_{_safe_name(name)}.png"))
    return written


def plot_loss_curves(curves: Mapping[str, Sequence[tuple[float, float]]],
                     out_path: str | os.PathLike[str], title: str, xlabel: str = "step",
                     ylabel: str = "training loss") -> Path | None:
    """One line per labelled curve of (x, loss) points; None when no curve has a point.
    Also the per-run plot `ttt train` writes (one curve, x = step)."""
    drawn = {label: points for label, points in curves.items() if points}
    if not drawn:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for label, points in drawn.items():
        ax.plot([x for x, _ in points], [y for _, y in points], linewidth=1.2, label=label,
                marker="." if len(points) < 50 else None)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and tokens are counts
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(out_path))


def plot_training_loss(experiment: Experiment, out_dir: str | os.PathLike[str],
                       metric: str = "loss", axis: str = "tokens") -> list[Path]:
    """Each run's logged training-loss curve, one plot per family (their tokenizers differ,
    so their losses are not comparable), on the lineage-cumulative `axis` so that a stage
    continues its parent's curve."""
    if axis not in AXES:
        raise LedgerError(f"axis {axis!r}: expected one of {AXES}")
    by_family: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in sorted(experiment.runs.values(), key=lambda r: r.run_id):
        curve = [(_scale(axis, x), y) for x, y in curve_on_axis(experiment, r.run_id, metric,
                                                                 axis)]
        if curve:
            by_family.setdefault(r.family, {})[r.run_id] = curve
    return [path for family, curves in sorted(by_family.items())
            if (path := plot_loss_curves(
                curves, Path(out_dir) / f"train_{_safe_name(metric)}_{_safe_name(family)}.png",
                f"{experiment.exp_folder} {family}: training {metric}",
                xlabel=AXIS_LABELS[axis])) is not None]


def write_plots(experiment: Experiment, out_dir: str | os.PathLike[str],
                metric: str = "loss", cost_axis: str = "device_hours") -> list[Path]:
    """Every plot the data supports, as PNG files under out_dir; returns their paths."""
    written = []
    frontier = plot_frontier(experiment, Path(out_dir) / f"frontier_{_safe_name(metric)}.png",
                             metric, cost_axis)
    if frontier is not None:
        written.append(frontier)
    written += plot_training_loss(experiment, out_dir)
    written += plot_position_nll(experiment, out_dir)
    return written

