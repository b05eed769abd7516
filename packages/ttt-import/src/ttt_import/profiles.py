"""Model profiles: the pinned facts of each supported public checkpoint (docs/models.md),
as the family registry (`ttt_import.registry`) holds them.

A profile is what an import is checked against when it names a KEY: family, shapes, RoPE
and norm constants, tying, and the parameter count. `prepare_profile` records which
snapshot a profile was prepared from (revision, config sha256) under
`<root>/<key>/{hf_config.json, model_profile.json}`.

Pinned revisions are the hub commits these checkpoints are commonly pinned to in public
code; offline we cannot re-resolve them, so `prepare` records the snapshot's own revision
and reports whether it matches the pin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ttt_import.errors import ProfileError, SnapshotError
from ttt_import.families import get_family
from ttt_import.registry import REGISTRY, ModelProfile
from ttt_import.snapshot import CONFIG, read_config, snapshot_revision
from ttt_model.atomic import write_atomic
from ttt_model.config import ModelConfig
from ttt_model.model import abstract_model, count_params

DEFAULT_ROOT = Path("artifacts/external_models")


class _Profiles(Mapping[str, ModelProfile]):
    """Key -> profile, read live from the registry (one home for the facts)."""

    def __getitem__(self, key: str) -> ModelProfile:
        return REGISTRY[key].profile

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


PROFILES: Mapping[str, ModelProfile] = _Profiles()

# Fields of our ModelConfig a profile pins, and the profile attribute holding each.
_CHECKED = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
            "vocab_size", "tie_embeddings", "qkv_bias", "rope_theta", "rms_norm_eps")


def get_profile(key: str) -> ModelProfile:
    if key not in PROFILES:
        raise ProfileError(f"unknown model profile {key!r}; known: {sorted(PROFILES)}")
    return PROFILES[key]


def profile_model_config(profile: ModelProfile) -> ModelConfig:
    """The FA ModelConfig the profile's facts describe."""
    return ModelConfig(
        name=profile.key, vocab_size=profile.vocab_size, hidden_size=profile.hidden_size,
        intermediate_size=profile.intermediate_size, num_layers=profile.num_layers,
        num_heads=profile.num_heads, num_kv_heads=profile.num_kv_heads,
        rope_theta=profile.rope_theta, rms_norm_eps=profile.rms_norm_eps,
        tie_embeddings=profile.tie_embeddings, qkv_bias=profile.qkv_bias,
        bos_token_id=profile.bos_token_id, eos_token_id=profile.eos_token_id,
        qk_norm=profile.qk_norm, post_norm=profile.post_norm)


def parameter_count(cfg: ModelConfig) -> int:
    """Parameters of the model `cfg` builds, counted from its shapes (nothing allocated)."""
    return count_params(abstract_model(cfg))


def check_config(profile: ModelProfile, hf: dict[str, Any], source: str) -> ModelConfig:
    """Our config of `hf`, after checking it against the profile; names every mismatch."""
    model_type = hf.get("model_type")
    if model_type != profile.model_type:
        raise ProfileError(f"{source}: model_type={model_type!r} but profile {profile.key} "
                           f"({profile.hf_id}) is family {profile.model_type!r}")
    cfg = get_family(profile.model_type).config_from_hf(hf, source)
    wrong = [f"{f}={getattr(cfg, f if f != 'num_kv_heads' else 'kv_heads')!r} "
             f"(profile: {getattr(profile, f)!r})"
             for f in _CHECKED
             if getattr(cfg, f if f != "num_kv_heads" else "kv_heads") != getattr(profile, f)]
    if wrong:
        raise ProfileError(f"{source} disagrees with profile {profile.key} ({profile.hf_id}): "
                           + ", ".join(wrong))
    n = parameter_count(cfg)
    if n != profile.params:
        raise ProfileError(f"{source}: the model it describes has {n:,} parameters; profile "
                           f"{profile.key} pins {profile.params:,}")
    return cfg


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return home / "hub"


def find_cached_snapshot(profile: ModelProfile, cache_dir: Path | None = None) -> Path:
    """The local hub-cache snapshot of a profile: its pinned revision if present, else the
    only one there. Never downloads."""
    cache = Path(cache_dir) if cache_dir else hub_cache_dir()
    snaps = cache / f"models--{profile.hf_id.replace('/', '--')}" / "snapshots"
    if (snaps / profile.revision / CONFIG).is_file():
        return snaps / profile.revision
    found = sorted(p for p in snaps.glob("*") if (p / CONFIG).is_file()) if snaps.is_dir() \
        else []
    if len(found) == 1:
        return found[0]
    raise SnapshotError(
        f"no local snapshot of {profile.hf_id} for profile {profile.key}: looked in {snaps} "
        f"(found {len(found)} snapshots); pass --hf-dir, or download it beforehand "
        "(this tool never downloads)")


def prepare_profile(key: str, hf_dir: str | Path | None = None,
                    root: str | Path = DEFAULT_ROOT, cache_dir: Path | None = None) -> Path:
    """Check a local snapshot's config against profile `key` and record it.

    Writes `<root>/<key>/hf_config.json` (the exact config bytes) and `model_profile.json`
    (facts, source revision, config sha256, our model config, parameter count).
    """
    profile = get_profile(key)
    src = Path(hf_dir) if hf_dir else find_cached_snapshot(profile, cache_dir)
    hf, sha = read_config(src)
    cfg = check_config(profile, hf, str(src / CONFIG))
    revision = snapshot_revision(src)
    out = Path(root) / key
    out.mkdir(parents=True, exist_ok=True)
    record = {
        **profile.to_dict(),
        "pinned_revision": profile.revision,
        "source_revision": revision,
        "revision_matches_pin": revision == profile.revision,
        "source_config_sha256": sha,
        "source_dir": str(src.resolve()),
        "model_config": cfg.to_dict(),
        "param_count": parameter_count(cfg),
    }
    for name, data in (("hf_config.json", (src / CONFIG).read_bytes()),
                       ("model_profile.json",
                        (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())):
        write_atomic(out / name, data)
    return out
