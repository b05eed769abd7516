"""A run's training-loss curve as `<run dir>/loss_curve.png`, drawn from metrics.jsonl: the
stage writes it when it ends (completed, interrupted or failed), and `write_loss_curve` draws
it again for any run dir later."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ttt_ledger.plots import plot_loss_curves
from ttt_train.run_log import read_metrics

LOSS_CURVE_FILE = "loss_curve.png"


def loss_points(rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, loss) of the rows with a finite loss (a diverged one is logged as 'nan')."""
    return [(row["step"], float(row["loss"])) for row in rows
            if isinstance(row.get("loss"), int | float) and math.isfinite(row["loss"])]


def write_loss_curve(run_dir: str | Path, label: str | None = None) -> Path | None:
    """Plot the run's loss against step; None when metrics.jsonl holds no finite loss."""
    run_dir = Path(run_dir)
    name = label or run_dir.name
    return plot_loss_curves({name: loss_points(read_metrics(run_dir))},
                            run_dir / LOSS_CURVE_FILE, f"{name}: training loss")
