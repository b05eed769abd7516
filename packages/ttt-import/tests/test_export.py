"""Must-show 4: import -> export -> transformers `from_pretrained` reproduces the original
logits; SWA exports (Qwen2 natively, Llama as Mistral) reproduce our SWA logits; TTT
checkpoints are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_nothing_written, hf_logits, our_logits_from_checkpoint, tokens
from ttt_import import ExportError, Recipe, export_checkpoint, import_snapshot


@pytest.mark.parametrize("key", ["smollm2_135m", "qwen2_5_0_5b"])
def test_fa_round_trip_reproduces_original_logits(key, snapshots, tmp_path):
    import_snapshot(snapshots[key], tmp_path / "ckpt", parity=False)
    export_checkpoint(tmp_path / "ckpt", tmp_path / "hf")
    x = tokens(2, 24, seed=5)
    assert np.max(np.abs(hf_logits(tmp_path / "hf", x) - hf_logits(snapshots[key], x))) <= 1e-5
    exported = json.loads((tmp_path / "hf" / "config.json").read_text())
    original = json.loads((snapshots[key] / "config.json").read_text())
    assert exported["model_type"] == original["model_type"]
    assert exported["max_position_embeddings"] == original["max_position_embeddings"]


@pytest.mark.parametrize("key,arch", [("qwen2_5_0_5b", "Qwen2ForCausalLM"),
                                      ("smollm2_135m", "MistralForCausalLM")])
def test_swa_export_keeps_the_window(key, arch, snapshots, tmp_path):
    k = 12
    import_snapshot(snapshots[key], tmp_path / "ckpt", parity=False,
                    recipe=Recipe("swa", window=k))
    export_checkpoint(tmp_path / "ckpt", tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [arch]
    x = tokens(2, 40, seed=9)
    ours = our_logits_from_checkpoint(tmp_path / "ckpt", x)
    theirs = hf_logits(tmp_path / "hf", x)
    assert np.max(np.abs(ours - theirs)) <= 1e-4  # including positions beyond the window
    fa = hf_logits(snapshots[key], x)
    assert np.max(np.abs(theirs[:, k:] - fa[:, k:])) > 1e-2  # the window is really applied
    # the exported SWA snapshot imports back as a sliding model with parity
    back = import_snapshot(tmp_path / "hf", tmp_path / "again")
    assert back.config.attention == "sliding" and back.config.sliding_window == k


def test_ttt_export_refused(snapshots, tmp_path):
    import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "ckpt", parity=False,
                    recipe=Recipe("ttt", window=64, suffix_len=1))
    with pytest.raises(ExportError, match="is a TTT model .*prime MLPs and test-time inner "
                                          "loop have no transformers counterpart"):
        export_checkpoint(tmp_path / "ckpt", tmp_path / "hf")
    assert_nothing_written(tmp_path / "hf")


def test_export_of_missing_checkpoint(tmp_path):
    with pytest.raises(ExportError, match="not a readable ttt-model checkpoint"):
        export_checkpoint(tmp_path / "nope", tmp_path / "hf")
    assert_nothing_written(tmp_path / "hf")
