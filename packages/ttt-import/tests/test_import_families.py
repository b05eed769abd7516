"""Must-show 1: a tiny random model of each profiled family imports with a clean audit and
logits parity <= 1e-4 (fp32), and the checkpoint loads the way training loads it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import KEYS, hf_logits, our_logits_from_checkpoint, tokens
from ttt_import import import_snapshot
from ttt_import.profiles import get_profile
from ttt_model.checkpoint import read_meta, read_model_config


@pytest.mark.parametrize("key", KEYS)
def test_family_imports_clean_with_parity(key, snapshots, tmp_path):
    out = tmp_path / "ckpt"
    result = import_snapshot(snapshots[key], out)  # model=auto: family from model_type
    audit = result.audit
    assert audit.clean, audit.problems()
    assert audit.source["family"] == get_profile(key).model_type
    assert not (audit.missing or audit.unexpected or audit.resized or audit.dtype_changed)
    assert audit.parity["max_abs_logit_diff"] <= 1e-4
    assert audit.parity["max_abs_nll_diff"] <= 1e-4
    assert audit.parity["max_abs_logit"] > 1.0  # logits large enough to expose mapping errors

    # independently of the importer: restore like load_part=params, compare to transformers
    x = tokens(3, 20, seed=7)
    ref = hf_logits(snapshots[key], x)
    ours = our_logits_from_checkpoint(out, x)
    assert np.max(np.abs(ours - ref)) <= 1e-4

    cfg = read_model_config(out)
    assert cfg.qkv_bias == get_profile(key).qkv_bias and cfg.tie_embeddings
    assert cfg.kv_heads * {"smollm2_135m": 3, "smollm2_360m": 3, "qwen2_5_0_5b": 7,
                           "qwen2_5_1_5b": 6}[key] == cfg.num_heads
    meta = read_meta(out)
    assert meta["step"] == 0 and meta["audit"] == "audit.json"
    assert meta["recipe"]["kind"] == "fa" and cfg.name == f"{meta['source']['family']}-fa"
    saved = json.loads((out / "audit.json").read_text())
    assert saved["clean"] and saved["parity"]["max_abs_logit_diff"] <= 1e-4
    assert "verdict: **clean**" in (out / "audit.md").read_text()


def test_untied_llama_maps_lm_head(tmp_path):
    from ttt_import.standins import build_hf_snapshot, tiny_hf_config

    hf = build_hf_snapshot(tmp_path / "hf", tiny_hf_config("smollm2_135m",
                                                           tie_word_embeddings=False), seed=3)
    result = import_snapshot(hf, tmp_path / "ckpt")
    assert result.audit.clean and not result.config.tie_embeddings
    assert result.audit.parity["max_abs_logit_diff"] <= 1e-4


def test_import_with_profile_key_checks_facts(tmp_path):
    """A true-size config passes the profile check; the same tensors are then planned."""
    from ttt_import.profiles import check_config
    from ttt_import.standins import true_size_hf_config

    for key in KEYS:
        cfg = check_config(get_profile(key), true_size_hf_config(key), "config.json")
        assert cfg.num_layers == get_profile(key).num_layers
