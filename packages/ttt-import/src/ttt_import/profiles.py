"""Model profiles: the pinned facts of each supported public checkpoint (docs/models.md).

A profile is what an import is checked against when it names a KEY: family, shapes, RoPE
and norm constants, tying, and the parameter count. `prepare_profile` records which
snapshot a profile was prepared from (revision, config sha256) under
`<root>/<key>/{hf_config.json, model_profile.json}`.

Pinned revisions are the hub commits these checkpoints are commonly pinned to in public
code; offline we cannot re-resolve them, so `prepare` records the snapshot's own revision
and reports whether it matches the pin.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttt_import.errors import ProfileError, SnapshotError
from ttt_import.families import get_family
from ttt_import.snapshot import CONFIG, read_config, snapshot_revision
from ttt_model.config import ModelConfig
from ttt_model.model import abstract_model, count_params

DEFAULT_ROOT = Path("artifacts/external_models")


@dataclass(frozen=True)
class ModelProfile:
    key: str
    hf_id: str
    revision: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool
    qkv_bias: bool
    rope_theta: float
    rms_norm_eps: float
    params: int
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, ModelProfile] = {p.key: p for p in (
    ModelProfile("smollm2_135m", "HuggingFaceTB/SmolLM2-135M",
                 "93efa2f097d58c2a74874c7e644dbc9b0cee75a2", "llama", 30, 576, 9, 3, 1536,
                 49152, True, False, 100000.0, 1e-5, 134_515_008, 0, 0),
    ModelProfile("smollm2_360m", "HuggingFaceTB/SmolLM2-360M",
                 "f8027fd0eaeea54caa13c31d31b9fdc459c38b49", "llama", 32, 960, 15, 5, 2560,
                 49152, True, False, 100000.0, 1e-5, 361_821_120, 0, 0),
    ModelProfile("qwen2_5_0_5b", "Qwen/Qwen2.5-0.5B",
                 "060db6499f32faf8b98477b0a26969ef7d8b9987", "qwen2", 24, 896, 14, 2, 4864,
                 151936, True, True, 1_000_000.0, 1e-6, 494_032_768, 151643, 151643),
    ModelProfile("qwen2_5_1_5b", "Qwen/Qwen2.5-1.5B",
                 "8faed761d45a263340a0528343f099c05c9a4323", "qwen2", 28, 1536, 12, 2, 8960,
                 151936, True, True, 1_000_000.0, 1e-6, 1_543_714_304, 151643, 151643),
)}

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
        bos_token_id=profile.bos_token_id, eos_token_id=profile.eos_token_id)


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
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / name)
    return out
