"""ttt-eval: what a long-context model is for, measured — scoring, generation, context
sweeps, RULER retrieval, decode trend and efficiency, for FA, SWA and TTT-E2E checkpoints.
Imports ttt-model and ttt-data only.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "BundleSpec": "bundle", "bundle_checkpoints": "bundle",
    "EvalError": "errors", "ScoreError": "errors",
    "Generator": "generate", "load_generator": "generate",
    "InnerLoop": "nll", "PAPER_INNER_LOOP": "nll",
    "RetrievalSpec": "retrieval", "evaluate_retrieval": "retrieval",
    "score_checkpoint": "score", "score_tokens": "score",
    "SweepResult": "sweep", "sweep_checkpoint": "sweep",
    "decode_trend": "trend", "free_decode_trend": "trend",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_eval.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_eval.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
