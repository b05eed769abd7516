"""Profiles as `ttt profile` shows them: a table of all of them, one profile checked
against the parameter count its own model computes (a pin that drifted from the model
shows), and what a prepared profile recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttt_import.profiles import (
    PROFILES,
    ModelProfile,
    get_profile,
    parameter_count,
    profile_model_config,
)
from ttt_model.config import ModelConfig


def profiles_table(profiles: Iterable[ModelProfile] | None = None) -> str:
    """One row per profile (default: all): HF id, family, shapes, tying, parameters."""
    lines = [f"{'key':<14} {'hf id':<28} {'family':<6} {'layers':>6} {'hidden':>6} "
             f"{'heads/kv':>8} {'inter':>6} {'vocab':>7} {'tied':>4} {'params':>14}"]
    for p in PROFILES.values() if profiles is None else profiles:
        tied = "yes" if p.tie_embeddings else "no"
        lines.append(f"{p.key:<14} {p.hf_id:<28} {p.model_type:<6} {p.num_layers:>6} "
                     f"{p.hidden_size:>6} {f'{p.num_heads}/{p.num_kv_heads}':>8} "
                     f"{p.intermediate_size:>6} {p.vocab_size:>7} {tied:>4} {p.params:>14,}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ProfileCount:
    """A profile, the model config its facts describe and that model's parameter count."""

    profile: ModelProfile
    config: ModelConfig
    computed: int

    @property
    def matches(self) -> bool:
        """The computed count equals the pinned one."""
        return self.computed == self.profile.params

    def to_dict(self) -> dict[str, Any]:
        return {**self.profile.to_dict(), "param_count_computed": self.computed,
                "model_config": self.config.to_dict()}

    def describe(self) -> str:
        """The profile's facts, one per line, then whether the counts agree."""
        lines = [f"{k:<18} {v}" for k, v in self.profile.to_dict().items()]
        agree = "matches" if self.matches else "DIFFERS FROM"
        lines.append(f"parameters (computed from the model): {self.computed:,} ({agree} the "
                     f"pinned {self.profile.params:,})")
        return "\n".join(lines)


def count_profile(key: str) -> ProfileCount:
    """Profile `key` with its model's parameters counted from shapes (nothing allocated)."""
    profile = get_profile(key)
    config = profile_model_config(profile)
    return ProfileCount(profile, config, parameter_count(config))


def profile_keys(model: str) -> list[str]:
    """The profiles a `--model` choice names: one key, or every key for `all`."""
    return sorted(PROFILES) if model == "all" else [get_profile(model).key]


def describe_prepared(key: str, out: str | Path) -> str:
    """One line from the `model_profile.json` that `prepare_profile` wrote under `out`:
    the snapshot's revision against the pin, its config sha256, the parameter count."""
    record = json.loads((Path(out) / "model_profile.json").read_text())
    pin = ("matches pin" if record["revision_matches_pin"]
           else f"pinned {record['pinned_revision']}")
    return (f"{key}: wrote {out}/hf_config.json, model_profile.json (revision "
            f"{record['source_revision']}, {pin}; config sha256 "
            f"{record['source_config_sha256'][:12]}…; {record['param_count']:,} parameters)")
