"""Profiles: parameter counts computed from the model match the published figures
(docs/models.md); `prepare` checks a local snapshot's config and records its revision
and sha256; mismatches are named."""

from __future__ import annotations

import hashlib
import json

import pytest

from ttt_import import PROFILES, ProfileError, SnapshotError, prepare_profile
from ttt_import.profiles import find_cached_snapshot, parameter_count, profile_model_config

DESIGN_PARAMS = {"smollm2_135m": 134_515_008, "smollm2_360m": 361_821_120,
                 "qwen2_5_0_5b": 494_032_768, "qwen2_5_1_5b": 1_543_714_304}


@pytest.mark.parametrize("key", sorted(DESIGN_PARAMS))
def test_parameter_count_from_model_matches_design(key):
    assert parameter_count(profile_model_config(PROFILES[key])) == DESIGN_PARAMS[key]


def _true_size_config(key):
    """config.json of the real architecture, written by transformers' own config class."""
    import transformers

    p = PROFILES[key]
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[p.model_type]
    cfg = cls(vocab_size=p.vocab_size, hidden_size=p.hidden_size,
              intermediate_size=p.intermediate_size, num_hidden_layers=p.num_layers,
              num_attention_heads=p.num_heads, num_key_value_heads=p.num_kv_heads,
              rope_theta=p.rope_theta, rms_norm_eps=p.rms_norm_eps, tie_word_embeddings=True)
    return cfg


def test_prepare_from_hub_cache_snapshot(tmp_path):
    key = "smollm2_360m"
    p = PROFILES[key]
    snap = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-360M" / "snapshots" / p.revision
    _true_size_config(key).save_pretrained(snap)
    assert find_cached_snapshot(p, tmp_path / "hub") == snap
    out = prepare_profile(key, root=tmp_path / "artifacts", cache_dir=tmp_path / "hub")
    assert out == tmp_path / "artifacts" / key
    raw = (snap / "config.json").read_bytes()
    assert (out / "hf_config.json").read_bytes() == raw
    record = json.loads((out / "model_profile.json").read_text())
    assert record["source_config_sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["source_revision"] == p.revision and record["revision_matches_pin"]
    assert record["param_count"] == DESIGN_PARAMS[key]


def test_prepare_local_dir_and_mismatch(tmp_path):
    d = tmp_path / "local"
    _true_size_config("qwen2_5_0_5b").save_pretrained(d)
    record = json.loads((prepare_profile("qwen2_5_0_5b", d, tmp_path / "a")
                         / "model_profile.json").read_text())
    assert record["source_revision"] == "local" and not record["revision_matches_pin"]
    with pytest.raises(ProfileError, match="intermediate_size=4864 \\(profile: 8960\\)"):
        prepare_profile("qwen2_5_1_5b", d, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(SnapshotError, match="no local snapshot of Qwen/Qwen2.5-1.5B"):
        prepare_profile("qwen2_5_1_5b", None, tmp_path / "c", cache_dir=tmp_path / "empty")
