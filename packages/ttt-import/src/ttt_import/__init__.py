"""ttt-import: turn a local Hugging Face snapshot into a ttt-model checkpoint, prove it
computes the same function, convert it for the warm-start paths, and export it back."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "Audit": "audit",
    "ImportPlan": "convert", "ImportResult": "convert", "import_snapshot": "convert",
    "plan_import": "convert",
    "AuditError": "errors", "ExportError": "errors", "ImportFailure": "errors",
    "ParityError": "errors", "ProfileError": "errors", "SnapshotError": "errors",
    "export_checkpoint": "export",
    "FAMILIES": "families", "get_family": "families",
    "PROFILES": "profiles", "get_profile": "profiles",
    "parameter_count": "profiles", "prepare_profile": "profiles",
    "profile_model_config": "profiles",
    "Recipe": "recipes",
    "FullBudget": "registry", "ModelProfile": "registry", "REGISTRY": "registry",
    "RegisteredFamily": "registry", "get_registered": "registry",
    "Snapshot": "snapshot", "open_snapshot": "snapshot",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {
    name: f"moved to ttt_eval.score.{name} (package ttt-eval)"
    for name in ("ScoreError", "load_tokens", "score_checkpoint", "score_tokens",
                 "tokenize_text")}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_import.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_import' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_import.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

