"""Checkpoints (Orbax): parameters, optimiser state and JSON metadata per step, atomically.

Layout of a checkpoint directory:
    <dir>/<step>/params       parameter arrays (an nnx pure dict)
    <dir>/<step>/opt_state    optimiser state (optional)
    <dir>/<step>/meta         JSON: model config, step, and whatever the caller adds
                              (data iterator state, RNG, train config, ...)
    <dir>/latest.json         {"step": N, "model_config": {...}}, rewritten after each save

Orbax writes each step into a temporary directory and renames it when complete, so a
crash mid-save leaves the previous steps intact; `latest.json` is replaced atomically too.
Restoring checks every array's shape against the target and names the first mismatch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from ttt_model.config import ModelConfig

LATEST = "latest.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or does not fit the model it is restored into."""


def _manager(directory: Path, max_to_keep: int | None = None, create: bool = True
             ) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                        enable_async_checkpointing=False)
    handlers = {"params": ocp.StandardCheckpointHandler(),
                "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory.absolute(), options=opts, item_handlers=handlers)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, step: int, *, params: nnx.State,
                    model_cfg: ModelConfig, opt_state: Any = None,
                    meta: dict[str, Any] | None = None, max_to_keep: int | None = None
                    ) -> Path:
    """Save one step; keeps the newest `max_to_keep` steps. Returns the step directory."""
    directory = Path(directory)
    meta = {**(meta or {}), "step": int(step), "model_config": model_cfg.to_dict()}
    items = {"params": ocp.args.StandardSave(_to_pure(params)),
             "meta": ocp.args.JsonSave(meta)}
    if opt_state is not None:
        items["opt_state"] = ocp.args.StandardSave(_leaves(opt_state))
    with _manager(directory, max_to_keep) as mngr:
        mngr.save(int(step), args=ocp.args.Composite(**items), force=True)
        mngr.wait_until_finished()
    if jax.process_index() == 0:
        _write_json_atomic(directory / LATEST, {"step": int(step),
                                                "model_config": model_cfg.to_dict()})
    return directory / str(step)


def _leaves(tree: Any) -> dict[str, Any]:
    """Optimiser state as numbered leaves: its structure comes from the optimiser config."""
    return {f"{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree))}


def _to_pure(params: nnx.State) -> dict:
    return nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params


def latest_step(directory: str | Path) -> int | None:
    directory = Path(directory)
    if not directory.is_dir():
        return None
    with _manager(directory, create=False) as mngr:
        return mngr.latest_step()


def _resolve_step(directory: Path, step: int | None) -> int:
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    with _manager(directory, create=False) as mngr:
        steps = mngr.all_steps()
    if not steps:
        raise CheckpointError(f"checkpoint directory {directory} holds no complete step")
    if step is None:
        return max(steps)
    if step not in steps:
        raise CheckpointError(f"{directory} has no step {step}; it has {sorted(steps)}")
    return step


def read_meta(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON metadata saved with a step (the newest by default)."""
    directory = Path(directory)
    step = _resolve_step(directory, step)
    with _manager(directory, create=False) as mngr:
        return dict(mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
                    ["meta"])


def read_model_config(directory: str | Path, step: int | None = None) -> ModelConfig:
    return ModelConfig.from_dict(read_meta(directory, step)["model_config"])


def _check_shapes(directory: Path, step: int, item: str, target: Any) -> None:
    with _manager(directory, create=False) as mngr:
        stored = mngr.item_metadata(step)[item]
    flat_t = dict(_flat(target))
    flat_s = dict(_flat(stored))
    missing = sorted(set(flat_t) - set(flat_s))
    unexpected = sorted(set(flat_s) - set(flat_t))
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}/{step}/{item} does not fit the target: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}")
    for key, t in flat_t.items():
        s = flat_s[key]
        if tuple(s.shape) != tuple(t.shape):
            raise CheckpointError(
                f"{directory}/{step}/{item}: '{key}' has shape {tuple(s.shape)} in the "
                f"checkpoint but the model expects {tuple(t.shape)}")


def _flat(tree: Any) -> list[tuple[str, Any]]:
    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: hasattr(x, "shape") and not isinstance(x, dict))[0]
    return [(".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path), leaf)
            for path, leaf in leaves]


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), tree)


def restore_params(directory: str | Path, target: nnx.State, step: int | None = None
                   ) -> nnx.State:
    """Parameters of a step, restored into the structure, shapes and dtypes of `target`."""
    directory = Path(directory)
    step = _resolve_step(directory, step)
    pure = _to_pure(target)
    _check_shapes(directory, step, "params", pure)
    with _manager(directory, create=False) as mngr:
        got = mngr.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(pure))))["params"]
    out = jax.tree.map(lambda x: x, target)
    nnx.replace_by_pure_dict(out, got)
    return out


def restore_opt_state(directory: str | Path, target: Any, step: int | None = None) -> Any:
    directory = Path(directory)
    step = _resolve_step(directory, step)
    with _manager(directory, create=False) as mngr:
        if "opt_state" not in mngr.item_metadata(step) or \
                mngr.item_metadata(step)["opt_state"] is None:
            raise CheckpointError(f"{directory}/{step} holds no optimiser state "
                                  "(saved with params only)")
    flat = _leaves(target)
    _check_shapes(directory, step, "opt_state", flat)
    with _manager(directory, create=False) as mngr:
        got = mngr.restore(step, args=ocp.args.Composite(
            opt_state=ocp.args.StandardRestore(_abstract(flat))))["opt_state"]
    return jax.tree.unflatten(jax.tree.structure(target), [got[k] for k in sorted(got)])
