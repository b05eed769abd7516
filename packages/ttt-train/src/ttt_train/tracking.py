"""Experiment tracking: each step's metrics go to every tracker the run asks for.

- `metrics.jsonl`, always: the RunLog writes it, `JsonlTracker` routes the rows there.
- Weights & Biases with `training.log_wandb` (official keys `wandb_entity`, `wandb_project`,
  `wandb_key`): `training.wandb_mode` (ours), else WANDB_MODE, else online. Offline needs no
  network and writes `<WANDB_DIR or run dir>/wandb/offline-run-*` (`wandb sync` uploads it).
  The key is given to W&B only in online mode and only in memory (never ~/.netrc).
- TensorBoard event files under `<run dir>/tensorboard` with `training.log_tensorboard`.

A resumed stage logs no step twice: metrics.jsonl drops the lines past the restored step,
TensorBoard purges them (`purge_step`), and W&B, whose history cannot be rewritten, resumes
the run id stored in the run dir and skips the steps that run already holds (a resume is
bit-exact, so they hold the same losses). The optional packages are imported when the stage
is set up: a missing one stops it before any training work, in one line naming the key and
the extra to install.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import yaml

from ttt_model.atomic import write_atomic
from ttt_train.config import RunConfigError
from ttt_train.run_log import RunLog

TENSORBOARD_DIR = "tensorboard"
WANDB_RUN_FILE = "wandb_run.json"  # the W&B run id of this run dir, and its last step
WANDB_MODES = ("online", "offline", "disabled")
_WANDB_MODE_ALIASES = {"dryrun": "offline", "run": "online"}  # older WANDB_MODE values


class TrackerSetupError(RunConfigError):
    """A tracker the config asks for cannot run: its package is missing or it would not
    start. Raised before any training step, as one line naming the key."""


@dataclass(frozen=True)
class TrackingSpec:
    """Which trackers a stage feeds besides metrics.jsonl, and the W&B settings."""

    wandb: bool = False
    wandb_entity: str | None = None
    wandb_project: str | None = None
    wandb_mode: str | None = None  # online | offline | disabled; None: WANDB_MODE or online
    wandb_key: str | None = field(default=None, repr=False)
    tensorboard: bool = False


class Tracker(Protocol):
    """Receives one stage's metrics; `start_step` is the step the stage resumes from.
    `start` returns a line for the run's log saying where the metrics go (or None)."""

    def start(self, config: Mapping[str, Any], start_step: int) -> str | None: ...

    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def finish(self) -> None: ...


class JsonlTracker:
    """metrics.jsonl through the RunLog: one line per step, lines past `start_step` (an
    interrupted attempt's) dropped on resume."""

    def __init__(self, log: RunLog) -> None:
        self._log = log

    def start(self, config: Mapping[str, Any], start_step: int) -> str | None:
        self._log.open_metrics(keep_until_step=start_step)
        return None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self._log.metrics({"step": step, **metrics})

    def finish(self) -> None:
        """The RunLog closes the file with its log."""


class WandbTracker:
    """One W&B run per run dir; a resumed stage continues the same run id."""

    def __init__(self, spec: TrackingSpec, run_dir: Path, *, name: str, group: str,
                 job_type: str) -> None:
        self._wandb = _require("wandb", "training.log_wandb", "wandb")
        self._spec, self._run_dir = spec, run_dir
        self._name, self._group, self._job_type = name, group, job_type
        self._run: Any = None
        self._run_id: str | None = None
        self._logged_through = 0  # the last step this W&B run holds

    @property
    def mode(self) -> str:
        mode = self._spec.wandb_mode or os.environ.get("WANDB_MODE") or "online"
        return _WANDB_MODE_ALIASES.get(mode, mode)

    def start(self, config: Mapping[str, Any], start_step: int) -> str | None:
        wandb, mode = self._wandb, self.mode
        stored = _read_json(self._run_dir / WANDB_RUN_FILE) if start_step > 0 else None
        resumed = bool(stored and stored.get("id"))
        if resumed:  # the same W&B run; the steps an interrupted attempt logged stay as they are
            self._run_id = stored["id"]
            self._logged_through = max(start_step, int(stored.get("last_step", 0)))
        else:
            self._run_id = secrets.token_hex(4)  # a W&B run id: 8 characters [0-9a-f]
            self._logged_through = start_step
        key = self._spec.wandb_key if mode == "online" else None
        settings = wandb.Settings(console="off", api_key=key)
        wandb_dir = os.environ.get("WANDB_DIR") or str(self._run_dir)
        try:
            self._run = wandb.init(
                entity=self._spec.wandb_entity, project=self._spec.wandb_project,
                name=self._name, group=self._group, job_type=self._job_type, id=self._run_id,
                resume="allow", mode=mode, config=dict(config), allow_val_change=True,
                dir=wandb_dir, settings=settings)
        except Exception as e:  # wandb raises its own error types (login, network, usage)
            detail = " ".join(str(e).split()) or type(e).__name__
            raise TrackerSetupError(
                f"training.log_wandb: W&B did not start in {mode} mode: {detail} (offline "
                "needs no network: training.wandb_mode=offline or WANDB_MODE=offline)") from e
        self._save_state()
        line = (f"W&B {mode} run {self._run_id} ({'resumed' if resumed else 'new'}) under "
                f"{Path(wandb_dir) / 'wandb'}")
        if self._logged_through > start_step:
            first, last = start_step + 1, self._logged_through
            steps = f"step {first}" if first == last else f"steps {first}..{last}"
            line += f"; {steps}, logged by the interrupted attempt, not sent again"
        return line

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._run is None or step <= self._logged_through:
            return
        self._run.log(dict(metrics), step=step)
        self._logged_through = step
        self._save_state()

    def finish(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish()

    def _save_state(self) -> None:
        write_atomic(self._run_dir / WANDB_RUN_FILE,
                     json.dumps({"id": self._run_id, "last_step": self._logged_through}))


class TensorBoardTracker:
    """Scalar summaries in TensorBoard event files (tensorboardX: no TensorFlow needed)."""

    def __init__(self, run_dir: Path) -> None:
        self._tensorboardx = _require("tensorboardX", "training.log_tensorboard",
                                      "tensorboard")
        self.logdir = run_dir / TENSORBOARD_DIR
        self._writer: Any = None

    def start(self, config: Mapping[str, Any], start_step: int) -> str | None:
        # purge_step: TensorBoard hides the events an interrupted attempt wrote past the
        # restored step (and, on a fresh start, every event of an earlier failed attempt).
        # The suffix keeps two attempts started in the same second from sharing a file name.
        self._writer = self._tensorboardx.SummaryWriter(
            logdir=str(self.logdir), purge_step=start_step + 1, flush_secs=30,
            filename_suffix=f".{os.getpid()}.{secrets.token_hex(3)}")
        config_text = yaml.safe_dump(dict(config), sort_keys=False)
        self._writer.add_text("config", "\n".join(f"    {line}" for line in
                                                  config_text.splitlines()), start_step)
        return f"TensorBoard event files under {self.logdir}"

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, global_step=step)

    def finish(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


class Trackers:
    """Several trackers as one: each call goes to all, in order."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = tuple(trackers)

    def start(self, config: Mapping[str, Any], start_step: int) -> list[str]:
        """Start every tracker; the lines they give for the run's log."""
        lines = [tracker.start(config, start_step) for tracker in self.trackers]
        return [line for line in lines if line]

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log(step, metrics)

    def finish(self) -> None:
        """Finish every tracker, even when one fails (the first error is raised)."""
        error: BaseException | None = None
        for tracker in self.trackers:
            try:
                tracker.finish()
            except Exception as e:
                error = error or e
        if error is not None:
            raise error


def optional_trackers(spec: TrackingSpec, run_dir: Path, *, name: str, group: str,
                      job_type: str) -> list[Tracker]:
    """The trackers `spec` asks for besides metrics.jsonl; their packages are imported
    here, so call this before any training work."""
    out: list[Tracker] = []
    if spec.wandb:
        out.append(WandbTracker(spec, run_dir, name=name, group=group, job_type=job_type))
    if spec.tensorboard:
        out.append(TensorBoardTracker(run_dir))
    return out


def _require(module: str, key: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TrackerSetupError(
            f"{key}=true needs the {module} package, which is not installed: install "
            f"ttt-train's `{extra}` extra (pip install 'ttt-train[{extra}]'; in a checkout "
            "uv sync --all-packages --all-extras)") from e


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
