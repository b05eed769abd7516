"""Checkpoints round-trip exactly, keep the newest K, and refuse what does not fit."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny
from ttt_model.checkpoint import (
    CheckpointError,
    latest_step,
    load_model,
    read_meta,
    read_model_config,
    restore_opt_state,
    restore_params,
    save_checkpoint,
)
from ttt_model.config import TrainConfig
from ttt_model.model import build_model
from ttt_model.train import init_train_state


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_round_trip_keep_last_and_metadata(tmp_path):
    cfg, tc = tiny(), TrainConfig()
    _, saved = init_train_state(build_model(cfg, 1), tc)
    for step, pos in ((3, 5), (5, 7), (7, 9)):
        save_checkpoint(tmp_path, step, params=saved.params, model_cfg=cfg,
                        opt_state=saved.opt_state if step < 7 else None,
                        meta={"data": {"pos": pos}}, max_to_keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["5", "7", "latest.json"]
    assert latest_step(tmp_path) == 7
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 7
    assert read_meta(tmp_path)["data"] == {"pos": 9}
    assert read_meta(tmp_path, 5)["data"] == {"pos": 7}
    assert read_model_config(tmp_path) == cfg

    _, other = init_train_state(build_model(cfg, 2), tc)
    assert not _equal(other.params, saved.params)
    assert _equal(restore_params(tmp_path, other.params), saved.params)
    assert _equal(restore_opt_state(tmp_path, other.opt_state, 5), saved.opt_state)
    with pytest.raises(CheckpointError, match="holds no optimiser state"):
        restore_opt_state(tmp_path, other.opt_state, 7)


def test_a_relative_checkpoint_path_works(tmp_path, monkeypatch):
    """Users type `--checkpoint checkpoints/run`: every entry point takes a relative path
    (orbax itself reads absolute paths only)."""
    cfg = tiny()
    model = build_model(cfg, 1)
    monkeypatch.chdir(tmp_path)
    save_checkpoint("ckpt", 2, params=nnx.state(model, nnx.Param), model_cfg=cfg)
    assert latest_step("ckpt") == 2 and read_model_config("ckpt") == cfg
    loaded = load_model("ckpt")
    assert _equal(nnx.state(loaded, nnx.Param), nnx.state(model, nnx.Param))


def test_refusals_name_what_is_wrong(tmp_path):
    cfg = tiny()
    params = init_train_state(build_model(cfg, 1), TrainConfig())[1].params
    with pytest.raises(CheckpointError, match="does not exist"):
        restore_params(tmp_path / "nope", params)
    save_checkpoint(tmp_path, 1, params=params, model_cfg=cfg)
    with pytest.raises(CheckpointError, match="has no step 4; it has \\[1\\]"):
        restore_params(tmp_path, params, step=4)
    narrow = init_train_state(build_model(tiny(hidden_size=16), 1), TrainConfig())[1].params
    with pytest.raises(CheckpointError, match="'embed' has shape \\(61, 32\\) in the checkpoint "
                                              "but the model expects \\(61, 16\\)"):
        restore_params(tmp_path, narrow)
    deeper = init_train_state(build_model(tiny(num_layers=4), 1), TrainConfig())[1].params
    with pytest.raises(CheckpointError, match="missing \\['prefix_blocks.1"):
        restore_params(tmp_path, deeper)
