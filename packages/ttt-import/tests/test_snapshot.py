"""Snapshots read correctly: single and sharded safetensors, fp32/bf16/fp16, memory-mapped,
with values equal to what torch saved."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import hf_logits, our_logits_from_checkpoint, tokens
from ttt_import import import_snapshot, open_snapshot
from ttt_import.snapshot import snapshot_revision
from ttt_import.standins import build_hf_snapshot, tiny_hf_config


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_sharded_half_precision_snapshot(dtype, tmp_path):
    import torch
    import transformers

    hf = build_hf_snapshot(tmp_path / "hf", tiny_hf_config("qwen2_5_1_5b"), dtype=dtype,
                           max_shard_size="40KB", seed=4)
    index = json.loads((hf / "model.safetensors.index.json").read_text())
    snap = open_snapshot(hf)
    assert len(snap.weight_files) == len(set(index["weight_map"].values())) > 2
    assert set(snap.tensors) == set(index["weight_map"])

    model = transformers.AutoModelForCausalLM.from_pretrained(hf, dtype=getattr(torch, dtype))
    for name, value in model.state_dict().items():
        if name == "lm_head.weight":  # tied: not stored
            continue
        ours = snap.read(name)
        assert isinstance(ours, np.memmap) and str(ours.dtype) == dtype
        np.testing.assert_array_equal(np.asarray(ours, np.float32), value.float().numpy())

    result = import_snapshot(hf, tmp_path / "ckpt", param_dtype="float32")
    changed = result.audit.dtype_changed
    assert len(changed) == result.audit.tensors_loaded
    assert {(c["from"], c["to"]) for c in changed} == {(dtype, "float32")}
    assert all(c["justification"] == "lossless widening to param_dtype" for c in changed)
    assert result.audit.clean and result.audit.parity["max_abs_logit_diff"] <= 1e-4
    x = tokens(2, 16, seed=1)
    assert np.max(np.abs(our_logits_from_checkpoint(tmp_path / "ckpt", x)
                         - hf_logits(hf, x))) <= 1e-4


def test_auto_param_dtype_keeps_the_source_values(tmp_path):
    """Default param_dtype=auto stores bf16 weights bit for bit; a float32 model restores
    them (the way a float32 training stage loads with load_part=params)."""
    from flax import nnx

    from ttt_model.checkpoint import restore_params
    from ttt_model.model import abstract_model

    hf = build_hf_snapshot(tmp_path / "hf", tiny_hf_config("smollm2_360m"), dtype="bfloat16")
    result = import_snapshot(hf, tmp_path / "ckpt", keep_params=True)
    assert not result.audit.dtype_changed and result.config.param_dtype == "bfloat16"
    assert result.audit.parity["max_abs_logit_diff"] <= 1e-4
    snap = open_snapshot(hf)
    np.testing.assert_array_equal(
        result.params["prefix_blocks.1.attention.q_proj.kernel"],
        np.asarray(snap.read("model.layers.1.self_attn.q_proj.weight")).T)
    f32 = abstract_model(result.config.replace(param_dtype="float32"))
    _, target, _ = nnx.split(f32, nnx.Param, ...)
    restored = restore_params(tmp_path / "ckpt", target)
    q = restored["prefix_blocks"][1]["attention"]["q_proj"]["kernel"][...]
    assert q.dtype == np.float32
    np.testing.assert_array_equal(
        np.asarray(q), np.asarray(result.params["prefix_blocks.1.attention.q_proj.kernel"],
                                  np.float32))


def test_revision_from_hub_cache_layout(tmp_path):
    rev = "0123456789abcdef0123456789abcdef01234567"
    d = tmp_path / "models--Org--Name" / "snapshots" / rev
    d.mkdir(parents=True)
    assert snapshot_revision(d) == rev
    local = tmp_path / "plain"
    local.mkdir()
    assert snapshot_revision(local) == "local"
    meta = local / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text(f"{rev}\netag\n1700000000\n")
    assert snapshot_revision(local) == rev
