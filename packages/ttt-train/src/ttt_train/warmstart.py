"""A stage's starting point, per `training.load_part` (the README's "Training" section):

- `none`: fresh weights from `model_seed`, step 0.
- `params`: weights of another stage's checkpoint, step 0, fresh optimiser and data.
  With `warmstart_recipe=ttt` the checkpoint may lack prime MLPs: ttt-import's `ttt`
  recipe (`recipes.insert_primes`) adds them and carries every other weight by layer.
- `all`: weights, optimiser state, data iterator state and step; training continues at
  restore_step + 1.

Every check that can fail (missing source, wrong shapes) runs before any training work.
A damaged newest checkpoint (a failed checksum, a truncated file, NaN) is passed over for the
newest intact one, with a warning naming the bad step, and moved aside (`<dir>/corrupt/`)
so that the run can save that step number again; an explicitly requested step
(`training.resume_step`) is never replaced by another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from ttt_import.checkpoints import nest
from ttt_import.errors import ImportFailure
from ttt_import.recipes import insert_primes
from ttt_ledger import RestoreStatus
from ttt_model.checkpoint import (
    LATEST,
    CheckpointError,
    IntactCheckpoint,
    quarantine_step,
    read_model_config,
    restore_newest_intact,
)
from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.model import abstract_model, build_model
from ttt_model.params import path_str
from ttt_model.train import TrainState, init_train_state
from ttt_train.translate import RestoreSpec, RunPaths


class WarmStartError(RuntimeError):
    """The checkpoint a stage should start from is missing or does not fit the model."""


@dataclass
class StartPoint:
    graphdef: nnx.GraphDef
    state: TrainState
    step: int  # outer steps already taken
    status: RestoreStatus
    source_dir: Path | None = None
    data_state: list[dict[str, Any]] | None = None
    tokens_seen: int = 0
    wall_clock_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def source_dir(restore: RestoreSpec, paths: RunPaths) -> Path | None:
    """The checkpoint directory to load, checked to hold a complete step (fail fast)."""
    if restore.load_part == "none":
        return None
    directory = paths.checkpoint_dir_of(restore.source_exp_name)
    if not (directory / LATEST).is_file():
        what = ("this run's own checkpoints" if restore.source_exp_name == paths.exp_name
                else f"training.resume_exp_name={restore.source_exp_name!r}")
        raise WarmStartError(
            f"load_part={restore.load_part}: no checkpoint for {what} at {directory} "
            f"(expected {directory / LATEST}, written when a stage checkpoints); run the stage "
            "that produces it first, or check training.checkpoint_path and exp_folder")
    return directory


def check_fresh_destination(paths: RunPaths, restore: RestoreSpec) -> None:
    """A fresh or warm-started run must not overwrite another run's checkpoints."""
    if restore.load_part == "all" and restore.source_exp_name == paths.exp_name:
        return
    if (paths.checkpoint_dir / LATEST).is_file():
        raise WarmStartError(
            f"{paths.checkpoint_dir} already holds checkpoints of a run named "
            f"{paths.exp_name!r}; resume it with training.load_part=all, or pick another "
            "training.exp_name (nothing was changed)")


def start_point(model_cfg: ModelConfig, tc: TrainConfig, restore: RestoreSpec,
                paths: RunPaths, seed: int) -> StartPoint:
    """Build the train state this stage starts from (on the default device)."""
    directory = source_dir(restore, paths)
    check_fresh_destination(paths, restore)
    graphdef, state = init_train_state(build_model(model_cfg, seed), tc)
    if directory is None:
        return StartPoint(graphdef, state, 0, RestoreStatus.fresh())
    try:
        if restore.load_part == "params":
            notes: list[str] = []
            params = _load_params(model_cfg, state.params, directory, restore, seed, notes)
            return StartPoint(graphdef, TrainState(params, state.opt_state, state.step), 0,
                              RestoreStatus.params(), directory, notes=notes)
        return _resume(graphdef, state, directory, restore)
    except CheckpointError as e:
        raise WarmStartError(f"load_part={restore.load_part} from {directory}: {e}") from e


def _intact(directory: Path, params_target: nnx.State, opt_target: Any,
            restore: RestoreSpec, notes: list[str]) -> IntactCheckpoint:
    """The requested step, or the newest intact one; damaged newer steps are moved aside
    (by the primary process) and named in `notes`."""
    if restore.step is not None:  # asked for by number: that step or an error
        got = restore_newest_intact(directory, params_target, opt_target, restore.step)
        if got.skipped:
            raise CheckpointError(got.skipped[0].reason)
        return got
    got = restore_newest_intact(directory, params_target, opt_target)
    for bad in got.skipped:
        where = (quarantine_step(directory, bad.step, bad.reason)
                 if jax.process_index() == 0 else directory / "corrupt")
        notes.append(f"WARNING: checkpoint step {bad.step} is damaged ({bad.reason}); moved "
                     f"to {where}; using step {got.step}, the newest intact one")
    return got


def _source_config(directory: Path, restore: RestoreSpec) -> ModelConfig:
    """The model of the source run (every step of a run holds the same one)."""
    if restore.step is not None:
        return read_model_config(directory, restore.step)
    try:
        return ModelConfig.from_dict(json.loads((directory / LATEST).read_text())
                                     ["model_config"])
    except (OSError, ValueError, KeyError, TypeError):
        return read_model_config(directory)


def _load_params(model_cfg: ModelConfig, target: nnx.State, directory: Path,
                 restore: RestoreSpec, seed: int, notes: list[str]) -> nnx.State:
    if restore.recipe == "ttt":
        source_cfg = _source_config(directory, restore)
        if not source_cfg.prime:
            return _insert_primes(model_cfg, source_cfg, target, directory, restore, seed,
                                  notes)
    return _intact(directory, target, None, restore, notes).params


def _resume(graphdef: nnx.GraphDef, state: TrainState, directory: Path,
            restore: RestoreSpec) -> StartPoint:
    notes: list[str] = []
    got = _intact(directory, state.params, state.opt_state, restore, notes)
    meta, step, params, opt_state = got.meta, got.step, got.params, got.opt_state
    data_state = meta.get("data_state")
    if data_state is None:
        raise WarmStartError(f"{directory}/{step} holds no data iterator state (saved by an "
                             "import, not by a training stage): load it with load_part=params")
    new = TrainState(params, opt_state, jax.numpy.asarray(step, jax.numpy.int32))
    return StartPoint(graphdef, new, step, RestoreStatus.resumed(step), directory,
                      data_state=data_state, tokens_seen=int(meta.get("tokens_seen", 0)),
                      wall_clock_s=float(meta.get("wall_clock_s", 0.0)), notes=notes)


def _flat(state: nnx.State) -> dict[str, np.ndarray]:
    return {path_str(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(state)}


def _insert_primes(target_cfg: ModelConfig, source_cfg: ModelConfig, target: nnx.State,
                   directory: Path, restore: RestoreSpec, seed: int,
                   notes: list[str]) -> nnx.State:
    """The source checkpoint's weights through ttt-import's `ttt` recipe."""
    _, source_params = nnx.split(abstract_model(source_cfg), nnx.Param)
    source = _flat(_intact(directory, _zeros_like(source_params), None, restore,
                           notes).params)
    try:
        flat = insert_primes(source_cfg, source, target_cfg, prime_init=restore.prime_init,
                             seed=seed, where=str(directory))
    except ImportFailure as e:
        raise WarmStartError(f"warmstart_recipe=ttt: {e}") from None
    out = jax.tree.map(lambda x: x, target)
    nnx.replace_by_pure_dict(out, nest({k: jax.numpy.asarray(v) for k, v in flat.items()}))
    return out


def _zeros_like(abstract: nnx.State) -> nnx.State:
    return jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract)
