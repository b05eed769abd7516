"""ttt-model: TTT-E2E as a JAX model — config, layers, attention, the inner loop,
pretrain and meta losses, optimizers, the train step, sharding, prefill/decode and
checkpoints. Imports no other ttt package."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "write_atomic": "atomic",
    "CheckpointCorruptError": "checkpoint", "CheckpointError": "checkpoint",
    "latest_step": "checkpoint", "read_meta": "checkpoint", "read_model_config": "checkpoint",
    "restore_opt_state": "checkpoint", "restore_params": "checkpoint",
    "save_checkpoint": "checkpoint", "verify_checkpoint": "checkpoint",
    "ConfigError": "config", "ModelConfig": "config", "PAPER_SIZES": "config",
    "TrainConfig": "config", "paper_config": "config", "tiny_config": "config",
    "decoder_for": "inference",
    "pretrain_loss": "losses",
    "Transformer": "model", "abstract_model": "model", "build_model": "model",
    "count_params": "model",
    "MeshConfig": "sharding",
    "TrainState": "train", "init_train_state": "train", "make_train_step": "train",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_model.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_model.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
