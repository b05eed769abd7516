"""Bridges between flat parameter dicts (dotted paths -> arrays) and ttt-model objects:
building a model from arrays, and writing/reading the orbax checkpoints of ttt-model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ttt_model.checkpoint import load_model, save_checkpoint  # noqa: F401  (load_model: its home)
from ttt_model.config import ModelConfig
from ttt_model.model import Transformer, abstract_model
from ttt_model.params import path_str


def param_shapes(cfg: ModelConfig) -> dict[str, jax.ShapeDtypeStruct]:
    """Every parameter of the model `cfg` builds: dotted path -> shape and dtype."""
    state = nnx.state(abstract_model(cfg), nnx.Param)
    return {path_str(p): v.get_value() for p, v in nnx.to_flat_state(state)}


def nest(flat: dict[str, Any]) -> dict[Any, Any]:
    """Dotted paths to the nested pure dict of an nnx State (list indices as ints)."""
    out: dict[Any, Any] = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    return out


def flatten(model: Transformer) -> dict[str, np.ndarray]:
    """A model's parameters as host arrays by dotted path."""
    state = nnx.state(model, nnx.Param)
    return {path_str(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(state)}


def model_from_params(cfg: ModelConfig, flat: dict[str, Any]) -> Transformer:
    """The model `cfg` with the given parameter arrays (device copies of host arrays)."""
    graphdef, state = nnx.split(abstract_model(cfg))
    nnx.replace_by_pure_dict(state, nest({k: jnp.asarray(v) for k, v in flat.items()}))
    return nnx.merge(graphdef, state)


def write_checkpoint(directory: Path, cfg: ModelConfig, flat: dict[str, Any],
                     meta: dict[str, Any]) -> Path:
    """Step 0 of a checkpoint that training loads with load_part=params.

    Pass jax arrays (as `load_parameters` makes): orbax serialises numpy arrays through an
    extra copy of each, which nearly doubles the peak memory of a large import.
    """
    return save_checkpoint(directory, 0, params=nest(flat), model_cfg=cfg, meta=meta)
