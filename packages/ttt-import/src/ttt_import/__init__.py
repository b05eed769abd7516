"""ttt-import: turn a local Hugging Face snapshot into a ttt-model checkpoint, prove it
computes the same function, convert it for the warm-start paths, and export it back."""

from __future__ import annotations

from ttt_import.audit import Audit
from ttt_import.convert import ImportPlan, ImportResult, import_snapshot, plan_import
from ttt_import.errors import (
    AuditError,
    ExportError,
    ImportFailure,
    ParityError,
    ProfileError,
    SnapshotError,
)
from ttt_import.export import export_checkpoint
from ttt_import.families import FAMILIES, get_family
from ttt_import.profiles import (
    PROFILES,
    ModelProfile,
    get_profile,
    parameter_count,
    prepare_profile,
    profile_model_config,
)
from ttt_import.recipes import Recipe
from ttt_import.snapshot import Snapshot, open_snapshot

__all__ = [
    "FAMILIES", "PROFILES", "Audit", "AuditError", "ExportError", "ImportFailure",
    "ImportPlan", "ImportResult", "ModelProfile", "ParityError", "ProfileError", "Recipe",
    "Snapshot", "SnapshotError", "export_checkpoint", "get_family",
    "get_profile", "import_snapshot", "open_snapshot", "parameter_count",
    "plan_import", "prepare_profile", "profile_model_config",
]

_MOVED_TO_EVAL = ("ScoreError", "load_tokens", "score_checkpoint", "score_tokens",
                  "tokenize_text")


def __getattr__(name: str):
    """Names that moved to ttt-eval fail with where they went, not a bare AttributeError."""
    if name in _MOVED_TO_EVAL:
        raise ImportError(f"ttt_import.{name} moved to ttt_eval.score.{name} "
                          "(package ttt-eval)")
    raise AttributeError(f"module 'ttt_import' has no attribute {name!r}")
