"""Must-show 3: the `ttt` zeros recipe computes the FA import's logits when the window
covers the sequence; `swa` equals `fa` up to the window and differs beyond it. Also the
other prime inits, and the TTT checkpoint running the inner loop."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import our_logits_from_checkpoint, tokens
from ttt_import import AuditError, ImportFailure, Recipe, import_snapshot
from ttt_model.checkpoint import load_model
from ttt_model.inference import TTTRunner
from ttt_model.losses import pretrain_loss

T = 48


@pytest.fixture(scope="module")
def fa(snapshots, tmp_path_factory):
    out = tmp_path_factory.mktemp("fa") / "ckpt"
    import_snapshot(snapshots["qwen2_5_0_5b"], out)
    return out, our_logits_from_checkpoint(out, tokens(2, T, seed=11))


def test_ttt_zeros_equals_fa_within_window(snapshots, fa, tmp_path):
    out = tmp_path / "ttt"
    result = import_snapshot(snapshots["qwen2_5_0_5b"], out,
                             recipe=Recipe("ttt", window=T, suffix_len=1, mini_batch_size=16))
    cfg = result.config
    assert cfg.prime and cfg.suffix_len == 1 and cfg.attention == "sliding"
    assert cfg.sliding_window == T and cfg.mini_batch_size == 16
    new = {p["path"]: p for p in result.audit.new_parameters}
    assert new["suffix_blocks.0.feed_forward_prime.down_proj.kernel"]["init"] == "zeros"
    assert all(p["justification"] for p in new.values()) and len(new) == 4
    assert result.audit.parity["recipe_max_abs_logit_diff"] <= 1e-5
    ttt_logits = our_logits_from_checkpoint(out, tokens(2, T, seed=11))
    assert np.max(np.abs(ttt_logits - fa[1])) <= 1e-5


def test_swa_differs_from_fa_only_beyond_window(snapshots, fa, tmp_path):
    k = 16
    out = tmp_path / "swa"
    result = import_snapshot(snapshots["qwen2_5_0_5b"], out, recipe=Recipe("swa", window=k))
    assert result.audit.parity["recipe_note"].startswith("parity length 32 exceeds")
    swa = our_logits_from_checkpoint(out, tokens(2, T, seed=11))
    per_position = np.max(np.abs(swa - fa[1]), axis=(0, 2))
    assert np.max(per_position[:k]) <= 1e-5
    assert np.min(per_position[k:]) > 1e-2  # every position past the window sees fewer keys


def test_prime_copy_and_normal(snapshots, fa, tmp_path):
    from ttt_import.checkpoints import flatten, load_model

    copy = import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "copy",
                           recipe=Recipe("ttt", window=64, suffix_len=2, prime_init="copy"))
    assert copy.config.num_prefix_layers == 0
    p = flatten(load_model(tmp_path / "copy"))
    for j in range(2):
        for n in ("gate", "up", "down"):
            np.testing.assert_array_equal(p[f"suffix_blocks.{j}.feed_forward_prime.{n}_proj.kernel"],
                                          p[f"suffix_blocks.{j}.feed_forward.{n}_proj.kernel"])
        np.testing.assert_array_equal(p[f"suffix_blocks.{j}.pre_prime_norm.scale"],
                                      p[f"suffix_blocks.{j}.pre_mlp_norm.scale"])
    # copy changes the function by design: recorded, justified, not a failure
    assert copy.audit.parity["recipe_max_abs_logit_diff"] > 1e-2 and copy.audit.clean

    normal = import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "normal", parity=False,
                             recipe=Recipe("ttt", window=64, prime_init="normal", seed=5))
    assert normal.config.suffix_len == 1  # default: a quarter of 2 layers, at least 1
    q = flatten(load_model(tmp_path / "normal"))
    w = q["suffix_blocks.0.feed_forward_prime.down_proj.kernel"]
    assert abs(w.std() - normal.config.initializer_range) < 0.1 * normal.config.initializer_range


def test_ttt_checkpoint_runs_inner_loop(snapshots, tmp_path):
    out = tmp_path / "ttt"
    import_snapshot(snapshots["qwen2_5_0_5b"], out, parity=False,
                    recipe=Recipe("ttt", window=32, suffix_len=1, mini_batch_size=16))
    x = np.asarray(tokens(2, 65, seed=3), np.int32)
    model = load_model(out)
    with_ttt = np.asarray(TTTRunner(model).prefill(x)[1])
    without = np.asarray(pretrain_loss(model, x)[1]["token_nll"])
    assert with_ttt.shape == without.shape == (2, 64)
    # the first chunk is predicted before any inner step; later chunks after learning
    assert np.max(np.abs(with_ttt[:, :16] - without[:, :16])) <= 1e-4
    assert np.max(np.abs(with_ttt[:, 16:] - without[:, 16:])) > 1e-3


def test_recipe_arguments_are_checked(snapshots, tmp_path):
    with pytest.raises(ImportFailure, match="--window applies to swa/ttt"):
        Recipe("fa", window=8)
    with pytest.raises(ImportFailure, match="suffix_len=3 must lie in"):
        import_snapshot(snapshots["qwen2_5_0_5b"], tmp_path / "x",
                        recipe=Recipe("ttt", suffix_len=3))
    assert not (tmp_path / "x").exists()
    assert issubclass(AuditError, ImportFailure)
