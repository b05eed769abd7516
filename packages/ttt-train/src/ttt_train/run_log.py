"""What a running stage tells people and files: log lines (stdout and `train.log`), a
progress bar on terminals, and one JSON line of metrics per step (`metrics.jsonl`).

On resume, metric lines past the restored step (written by the interrupted attempt) are
dropped, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ttt_model.atomic import write_atomic

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"


class RunLog:
    """Log lines, the metrics file and the progress bar of one stage (primary process)."""

    def __init__(self, run_dir: Path | None, *, progress: bool, total_steps: int,
                 start_step: int, label: str, stream: TextIO | None = None) -> None:
        self.run_dir = run_dir
        self.stream = stream if stream is not None else sys.stdout
        self._log = open(run_dir / LOG_FILE, "a") if run_dir else None  # noqa: SIM115
        self._metrics = None
        self._progress = None
        self._task = None
        show_bar = progress and self.stream.isatty() and run_dir is not None
        if show_bar:
            self._progress = Progress(
                TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                TimeRemainingColumn(), transient=False)
            self._task = self._progress.add_task(label, total=total_steps,
                                                 completed=start_step, status="")
            self._progress.start()

    def open_metrics(self, keep_until_step: int) -> None:
        """Open metrics.jsonl for appending, dropping lines after `keep_until_step`."""
        if self.run_dir is None:
            return
        path = self.run_dir / METRICS_FILE
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= keep_until_step]
            write_atomic(path, "".join(f"{line}\n" for line in kept))
        self._metrics = open(path, "a")  # noqa: SIM115

    def info(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        elif self.run_dir is not None:
            print(line, file=self.stream, flush=True)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def metrics(self, row: dict[str, Any]) -> None:
        if self._metrics is not None:
            self._metrics.write(json.dumps(_finite(row), sort_keys=True) + "\n")
            self._metrics.flush()

    def advance(self, step: int, status: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, status=status)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        for f in (self._metrics, self._log):
            if f is not None:
                f.close()
        self._metrics = self._log = None


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON: a diverged value is written as the string 'nan' / 'inf'."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}


def format_step(step: int, total: int, m: dict[str, float]) -> str:
    """`step 12/100 | loss 5.1234 | 1,234 tok/s | grad_norm 0.52 | lr 1.00e-03 | inner_lr 0.1`"""
    parts = [f"step {step}/{total}", f"loss {m['loss']:.4f}",
             f"{m['tokens_per_s']:,.0f} tok/s", f"grad_norm {m['grad_norm']:.3g}",
             f"lr {m['lr']:.2e}"]
    if m.get("inner_lr"):
        parts.append(f"inner_lr {m['inner_lr']:.3g}")
    return " | ".join(parts)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metric rows of a run directory, in step order."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
