"""Scoring: FA through the forward pass, TTT through the inner loop, each checked against an
independent computation; BOS targets not counted; bad input named in one line."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config
from ttt_eval.errors import ScoreError
from ttt_eval.nll import InnerLoop
from ttt_eval.score import as_token_batch, load_tokens, score_checkpoint
from ttt_model.checkpoint import save_checkpoint
from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.model import build_model
from ttt_model.testing import forward_terms, typical_error
from ttt_model.ttt import meta_loss

BOS = 0


def _cfg(**kw) -> ModelConfig:
    return tiny_config(bos_token_id=BOS, **kw)


def _save(tmp_path, cfg, name, tc: TrainConfig | None = None, step: int = 3):
    model = build_model(cfg, seed=1)
    meta = {} if tc is None else {"train_config": tc.to_dict()}
    save_checkpoint(tmp_path / name, step, params=nnx.state(model, nnx.Param), model_cfg=cfg,
                    meta=meta)
    return model, tmp_path / name


def _tokens():
    x = np.random.default_rng(0).integers(2, 61, size=(2, 49))
    x[0, [7, 30]] = BOS  # two BOS targets, which training does not count
    return x


def _reference_nll(model, x):
    """float64 NLL from the model's logits (the plain forward pass, not the scoring path)."""
    z = np.asarray(model(np.asarray(x[:, :-1], np.int32)), np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    return lse - np.take_along_axis(z, x[:, 1:, None], -1)[..., 0]


def test_fa_score_is_the_forward_pass_nll_over_counted_targets(tmp_path):
    model, ckpt = _save(tmp_path, _cfg(), "fa")
    x = _tokens()
    result = score_checkpoint(ckpt, x)
    assert result["ttt"] is False and result["settings_from"] == "defaults"
    got, ref = np.asarray(result["token_nll"]), _reference_nll(model, x)
    tol = typical_error(forward_terms(model.cfg, 48)) * np.abs(ref).max()
    assert np.abs(got - ref).max() <= tol
    keep = x[:, 1:] != BOS
    assert result["counted_targets"] == keep.sum() == 2 * 48 - 2
    assert result["mean_nll"] == pytest.approx(ref[keep].mean(), abs=tol)
    assert abs(ref.mean() - ref[keep].mean()) > 10 * tol  # the masking is visible


def test_ttt_score_uses_the_runs_inner_loop(tmp_path):
    cfg = _cfg(attention="sliding", suffix_len=1, prime=True)
    tc = TrainConfig(train_mode="meta", inner_lr=0.3, inner_clip=0.5, ilr_init=0.1,
                     ilr_warmup_steps=6)
    model, ckpt = _save(tmp_path, cfg, "ttt", tc, step=3)  # halfway through the warmup
    x = _tokens()
    result = score_checkpoint(ckpt, x)
    lr = 0.3 * (0.1 + 0.9 * 3 / 6)
    assert result["ttt"] and result["inner_lr"] == pytest.approx(lr)
    assert result["settings_from"] == "train_config" and result["checkpoint_step"] == 3
    keep = x[:, 1:] != BOS
    want = {}
    for r in (lr, 1.0):  # the training loss's own per-token NLL (meta loss, not prefill)
        nll = np.asarray(meta_loss(model, x, inner_lr=r, inner_clip=0.5)[1]["token_nll"])
        want[r] = nll.astype(np.float64)[keep].mean()
    terms = forward_terms(cfg, 48) * (1 + 2 * 2)  # two inner steps before the last chunk
    tol = typical_error(terms) * 5.0
    assert result["mean_nll"] == pytest.approx(want[lr], abs=tol)
    assert abs(want[1.0] - want[lr]) > 10 * tol  # the inner lr matters here
    assert InnerLoop().lr == 1.0


def test_bad_inputs_are_named(tmp_path):
    _, ckpt = _save(tmp_path, _cfg(), "fa")
    x = _tokens()
    with pytest.raises(ScoreError, match="has no prime MLPs"):
        score_checkpoint(ckpt, x, ttt=True)
    with pytest.raises(ScoreError, match=r"token ids span \[0, 300\] but the model's "
                                         r"vocabulary is \[0, 61\)"):
        score_checkpoint(ckpt, np.array([0, 300]), ttt=False)
    with pytest.raises(ScoreError, match="not a readable ttt-model checkpoint"):
        score_checkpoint(tmp_path / "nope", x)
    with pytest.raises(ScoreError, match="every target is BOS"):
        score_checkpoint(ckpt, np.array([3, BOS, BOS]))


def test_token_files(tmp_path):
    np.save(tmp_path / "f.npy", np.ones((2, 3), np.float32))
    with pytest.raises(ScoreError, match="expected an integer array, got dtype float32"):
        load_tokens(tmp_path / "f.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ScoreError, match="not a readable .npy integer array"):
        load_tokens(tmp_path / "obj.npy")  # object arrays would need unpickling
    with pytest.raises(ScoreError, match=r"expected shape \[N\] or \[B, N\] with N >= 2"):
        as_token_batch(np.array([5]))
    np.save(tmp_path / "ok.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    assert load_tokens(tmp_path / "ok.npy").dtype == np.int32
