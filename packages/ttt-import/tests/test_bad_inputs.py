"""Must-show 5: bad inputs each get a clear error naming what is wrong, and write nothing."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
from safetensors.numpy import load_file, save_file

from conftest import assert_nothing_written
from ttt_import import (
    AuditError,
    ImportFailure,
    ProfileError,
    SnapshotError,
    import_snapshot,
)
from ttt_import.standins import build_hf_snapshot, tiny_hf_config


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_snapshot_is_refused_unread(snapshots, tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    shutil.copy(snapshots["smollm2_135m"] / "config.json", hf)
    marker = tmp_path / "unpickled"
    (hf / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(SnapshotError, match="refusing pickle checkpoint pytorch_model.bin: "
                                            "loading a pickle runs arbitrary code"):
        import_snapshot(hf, tmp_path / "out")
    assert not marker.exists()
    assert_nothing_written(tmp_path / "out")


def test_missing_shard(tmp_path):
    hf = build_hf_snapshot(tmp_path / "hf", tiny_hf_config("qwen2_5_0_5b"),
                           max_shard_size="60KB")
    index = json.loads((hf / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2
    (hf / shards[1]).unlink()
    with pytest.raises(SnapshotError, match=f"shard {shards[1]} is missing from"):
        import_snapshot(hf, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_config_family_disagrees_with_profile(snapshots, tmp_path):
    with pytest.raises(ProfileError, match="model_type='qwen2' but profile smollm2_135m "
                                           r"\(HuggingFaceTB/SmolLM2-135M\) is family 'llama'"):
        import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "out", model="smollm2_135m")
    assert_nothing_written(tmp_path / "out")


def test_config_shapes_disagree_with_profile(snapshots, tmp_path):
    with pytest.raises(ProfileError, match=r"disagrees with profile qwen2_5_0_5b "
                                           r"\(Qwen/Qwen2.5-0.5B\): num_layers=2 \(profile: 24\), "
                                           r"hidden_size=112 \(profile: 896\)"):
        import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "out", model="qwen2_5_0_5b")
    assert_nothing_written(tmp_path / "out")


def _rewrite(hf, change):
    tensors = load_file(str(hf / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(hf / "model.safetensors"), metadata={"format": "pt"})


def test_tensor_with_wrong_shape(snapshots, tmp_path):
    hf = tmp_path / "hf"
    shutil.copytree(snapshots["qwen2_5_0_5b"], hf)
    name = "model.layers.1.self_attn.k_proj.weight"

    def widen(t):
        t[name] = t[name][:8]  # 16 rows (2 kv heads x 8) cut to 8

    _rewrite(hf, widen)
    with pytest.raises(AuditError, match=rf"tensor '{name}' in .*model.safetensors has shape "
                                         r"\[8, 112\], expected \[16, 112\] from config.json"):
        import_snapshot(hf, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_missing_and_unexpected_tensors(snapshots, tmp_path):
    hf = tmp_path / "hf"
    shutil.copytree(snapshots["smollm2_135m"], hf)

    def drop_and_add(t):
        del t["model.layers.0.mlp.up_proj.weight"]
        t["model.layers.0.mlp.extra.weight"] = t["model.norm.weight"].copy()

    _rewrite(hf, drop_and_add)
    with pytest.raises(AuditError) as e:
        import_snapshot(hf, tmp_path / "out")
    msg = str(e.value)
    assert "missing tensor 'model.layers.0.mlp.up_proj.weight' (expected shape [160, 72])" in msg
    assert "unexpected tensor 'model.layers.0.mlp.extra.weight' float32[72]" in msg
    assert_nothing_written(tmp_path / "out")


def test_derived_buffers_and_tied_copies_are_justified(snapshots, tmp_path):
    import numpy as np

    hf = tmp_path / "hf"
    shutil.copytree(snapshots["smollm2_135m"], hf)

    def add(t):
        d = 8
        t["model.rotary_emb.inv_freq"] = (1.0 / 100000.0 ** (np.arange(0, d, 2) / d)
                                          ).astype(np.float32)
        t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()

    _rewrite(hf, add)
    result = import_snapshot(hf, tmp_path / "out")
    just = {u["name"]: u["justification"] for u in result.audit.unexpected}
    assert "recomputes from rope_theta" in just["model.rotary_emb.inv_freq"]
    assert "tied embedding (checked equal)" in just["lm_head.weight"]

    def untie(t):
        t["lm_head.weight"] = t["lm_head.weight"] + 1
    _rewrite(hf, untie)
    with pytest.raises(AuditError, match="unexpected tensor 'lm_head.weight'"):
        import_snapshot(hf, tmp_path / "out2")
    assert_nothing_written(tmp_path / "out2")


def test_unsupported_config_and_existing_output(snapshots, tmp_path):
    hf = tmp_path / "hf"
    shutil.copytree(snapshots["smollm2_135m"], hf)
    cfg = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(SnapshotError, match="model_type='gpt2' has no family module"):
        import_snapshot(hf, tmp_path / "out")
    (hf / "config.json").write_text(json.dumps(
        {**cfg, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}))
    with pytest.raises(SnapshotError, match="rope_scaling.rope_type='llama3' is not supported"):
        import_snapshot(hf, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ImportFailure, match="already exists and is not empty"):
        import_snapshot(snapshots["smollm2_135m"], taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


def test_parity_failure_writes_nothing(snapshots, tmp_path, monkeypatch):
    """A mapping error that shapes cannot catch (k and v swapped) fails on parity."""
    hf = tmp_path / "hf"
    shutil.copytree(snapshots["smollm2_135m"], hf)

    def swap(t):
        k, v = "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight"
        t[k], t[v] = t[v].copy(), t[k].copy()

    _rewrite(hf, swap)
    from ttt_import.families.llama import LlamaFamily

    # our side reads the swapped tensors swapped back: a bug transformers must catch
    original = LlamaFamily.layer_links

    def buggy(self, cfg, layer):
        links = original(self, cfg, layer)
        if layer == 0:
            for i, link in enumerate(links):
                if link.hf.endswith("k_proj.weight"):
                    links[i] = type(link)(link.ours, link.hf.replace("k_proj", "v_proj"), True)
                elif link.hf.endswith("v_proj.weight"):
                    links[i] = type(link)(link.ours, link.hf.replace("v_proj", "k_proj"), True)
        return links

    monkeypatch.setattr(LlamaFamily, "layer_links", buggy)
    from ttt_import import ParityError

    with pytest.raises(ParityError, match=r"parity failed, nothing written: max \|Δlogit\|"):
        import_snapshot(hf, tmp_path / "out")
    assert_nothing_written(tmp_path / "out")


def test_missing_reference_libraries_named(snapshots, tmp_path, monkeypatch):
    """Without torch/transformers the parity check says what to install; nothing written."""
    import sys

    from ttt_import import ParityError

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ParityError, match=r"needs torch and transformers .*ttt-import\[parity\]"
                                          ".*--no-parity"):
        import_snapshot(snapshots["smollm2_135m"], tmp_path / "out")
    assert_nothing_written(tmp_path / "out")
    assert import_snapshot(snapshots["smollm2_135m"], tmp_path / "out", parity=False).audit.clean
