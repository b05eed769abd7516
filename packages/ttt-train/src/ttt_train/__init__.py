"""ttt-train: the runner — one training stage end to end (config, data feed, train loop,
checkpoints, interrupts, logs, warm start, held-out eval, ledger record), the staged
pipeline over stages, and the config tree they are composed from. The only package that
composes the others; nothing but the `ttt` app imports it."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "ComposedConfig": "config", "RunConfigError": "config", "compose_config": "config",
    "experiment_names": "config",
    "plan_family": "families",
    "PipelineError": "pipeline", "PipelineOptions": "pipeline",
    "run_pipeline": "pipeline_run",
    "StageResult": "stage", "run_stage": "stage",
    "StageSpec": "translate",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_train.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
