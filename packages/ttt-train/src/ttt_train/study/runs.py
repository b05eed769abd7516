"""Training one study run in this process through the runner (`compose_config` and
`run_stage`, exactly what `ttt train` does), and what the study reads back from it."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ttt_train.config import compose_config
from ttt_train.stage import run_stage

LOG_EVERY = 10


class StudyInterrupted(RuntimeError):
    """A run stopped by a signal: its figures would be a shorter run's, so the study stops.
    `signal` is the signal's number."""

    def __init__(self, message: str, signal: int | None):
        super().__init__(message)
        self.signal = signal


@dataclass(frozen=True)
class Run:
    """A finished run: where it lives and its costs. `train_s` is the steady-state
    training time (median step time x steps: compilation and setup excluded, since at
    scale they are amortised); `wall_s` is the stage's whole wall-clock."""

    folder: str
    name: str
    checkpoint_dir: Path
    run_dir: Path
    steps: int
    tokens: int
    train_s: float
    wall_s: float
    final_train_loss: float | None
    curve: tuple[tuple[int, float], ...]  # (step, train loss) every LOG_EVERY steps

    def to_dict(self) -> dict:
        return {"folder": self.folder, "name": self.name, "steps": self.steps,
                "tokens": self.tokens, "train_s": self.train_s, "wall_s": self.wall_s,
                "final_train_loss": self.final_train_loss,
                "checkpoint_dir": str(self.checkpoint_dir), "curve": [list(p) for p in self.curve]}


def train(work: Path, folder: str, name: str, store: Path, tokenizer: Path,
          overrides: Mapping[str, object]) -> Run:
    """Train the run `folder/name` (refused by the runner if it already exists)."""
    settings = {
        "training.exp_dir": work / "experiments", "training.checkpoint_path": work / "checkpoints",
        "training.exp_folder": folder, "training.exp_name": name,
        "training.dataset_path": store, "training.tokenizer_name": tokenizer,
        "training.log_freq": LOG_EVERY, "training.save_checkpoint_freq": 0,
        "training.eval_batches": 0, "training.progress": False,
        "backend.compilation_cache_dir": work / "jax_cache", **overrides,
    }
    result = run_stage(compose_config([f"{k}={v}" for k, v in settings.items()]))
    if result.status != "completed":
        raise StudyInterrupted(f"run {folder}/{name} {result.status} at step {result.step} "
                               f"(signal {result.signal}); the study stopped: rerun it (runs "
                               "are trained afresh)", result.signal)
    rows = [json.loads(line) for line in
            (result.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["step_s"] for r in rows if r["step"] > 1] or [r["step_s"] for r in rows]
    steps = int(rows[-1]["step"]) if rows else result.step
    return Run(folder, name, result.checkpoint_dir, result.run_dir, steps,
               int(result.tokens_seen), statistics.median(times) * steps, result.wall_clock_s,
               result.train_loss, tuple((int(r["step"]), float(r["loss"])) for r in rows))
