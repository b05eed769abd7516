"""Secrets in a run's config (the W&B API key, `training.wandb_key`) never reach a file or a
log: the copies of the config that are written (config_*.yaml), printed (--print-config),
hashed for the ledger or sent to a tracker hold a placeholder instead.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from omegaconf import OmegaConf

from ttt_train.config import ComposedConfig

SECRET_KEYS = ("training.wandb_key",)
REDACTED = "<redacted>"


def redact_secrets(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config tree (nested dicts) whose secret values are the placeholder."""
    out = copy.deepcopy(tree)
    for dotted in SECRET_KEYS:
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf) is not None:
            node[leaf] = REDACTED
    return out


def composed_without_secrets(composed: ComposedConfig) -> ComposedConfig:
    """The composition with every secret replaced, in its values and in the command-line
    overrides that set it (what `write_configs` writes as config_unresolved.yaml)."""
    overrides = tuple(_redact_override(o) for o in composed.overrides)
    unresolved = redact_secrets(composed.unresolved())
    if overrides == composed.overrides and unresolved == composed.unresolved():
        return composed
    cfg = OmegaConf.create(unresolved)
    OmegaConf.set_struct(cfg, True)
    return dataclasses.replace(composed, cfg=cfg, overrides=overrides)


_OVERRIDE = re.compile(r"^(?P<key>[+~]{0,2}(?P<name>[\w.]+))=(?P<value>.*)$", re.S)


def _redact_override(override: str) -> str:
    match = _OVERRIDE.match(override)
    if match is None or match["name"] not in SECRET_KEYS or match["value"] in ("", "null"):
        return override
    return f"{match['key']}={REDACTED}"
