"""What one training stage is, in ttt-model's and the runner's own types: the result of
translating a composed config (`ttt_train.translate`), read by the stage runner, the data
feed, the runtime and the warm start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.sharding import MeshConfig
from ttt_train.samples import SampleSpec
from ttt_train.tracking import TrackingSpec


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: run dir (configs, metrics, log, ledger copy) and checkpoints."""

    exp_dir: Path
    exp_folder: str
    exp_name: str
    checkpoint_root: Path

    @property
    def run_dir(self) -> Path:
        return self.exp_dir / self.exp_folder / self.exp_name

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint_dir_of(self.exp_name)

    def checkpoint_dir_of(self, exp_name: str) -> Path:
        return self.checkpoint_root / self.exp_folder / exp_name


@dataclass(frozen=True)
class DataSpec:
    store: str
    split: str
    eval_split: str
    seq_len: int
    global_batch_size: int
    accum_steps: int
    seed: int
    read_threads: int
    document_aligned: bool
    tokenizer_dir: str | None
    eval_batch_size: int
    eval_batches: int


@dataclass(frozen=True)
class RestoreSpec:
    """The `load_part` contract: what to load from which checkpoint."""

    load_part: str  # none | params | all
    source_exp_name: str | None
    step: int | None
    recipe: str | None  # None | ttt (insert prime MLPs)
    prime_init: str


@dataclass(frozen=True)
class ScheduleSpec:
    total_steps: int
    break_step: int | None
    checkpoint_every: int
    milestone_every: int
    keep_checkpoints: int
    log_every: int
    progress: bool


@dataclass(frozen=True)
class BackendSpec:
    distributed: bool = False
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None
    platform: str | None = None
    num_devices: int | None = None
    compilation_cache_dir: str | None = None


@dataclass(frozen=True)
class LedgerSpec:
    run_id: str
    family: str
    path: str
    stage: str


@dataclass(frozen=True)
class StageSpec:
    """Everything one training stage needs, in ttt-model's and the app's own types."""

    model: ModelConfig
    train: TrainConfig
    mesh: MeshConfig
    paths: RunPaths
    data: DataSpec
    restore: RestoreSpec
    schedule: ScheduleSpec
    backend: BackendSpec
    ledger: LedgerSpec
    model_seed: int
    derived: tuple[str, ...] = ()  # one line per schedule length derived from total_steps
    resolved: dict[str, Any] = field(repr=False, default_factory=dict)  # the values used
    tracking: TrackingSpec = field(default_factory=TrackingSpec)  # W&B, TensorBoard
    samples: SampleSpec = field(default_factory=SampleSpec)  # text samples while training
