"""Family key maps, chosen by config.json's `model_type`. A new family is one small module
here plus one line in `FAMILIES`."""

from __future__ import annotations

from ttt_import.errors import SnapshotError
from ttt_import.families.base import Family, TensorLink, block_path
from ttt_import.families.llama import LlamaFamily
from ttt_import.families.mistral import MistralFamily
from ttt_import.families.qwen2 import Qwen2Family

FAMILIES: dict[str, Family] = {f.model_type: f for f in
                               (LlamaFamily(), Qwen2Family(), MistralFamily())}


def get_family(model_type: str, source: str = "config.json") -> Family:
    """The family module for `model_type`; unknown types are refused, never run as code."""
    family = FAMILIES.get(model_type)
    if family is None:
        raise SnapshotError(f"{source}: model_type={model_type!r} has no family module; "
                            f"supported: {sorted(FAMILIES)} (remote code is never run)")
    return family


__all__ = ["FAMILIES", "Family", "TensorLink", "block_path", "get_family"]
