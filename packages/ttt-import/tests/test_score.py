"""Scoring: per-token NLL equals what transformers' logits give; bad input is named."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import hf_logits, tokens
from ttt_import import ScoreError, import_snapshot, score_checkpoint
from ttt_import.score import as_token_batch, load_tokens


def _nll(logits, x):
    z = logits[:, :-1].astype(np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    return lse - np.take_along_axis(z, x[:, 1:, None], -1)[..., 0]


def test_score_matches_reference_nll(snapshots, tmp_path):
    import_snapshot(snapshots["smollm2_135m"], tmp_path / "ckpt", parity=False)
    x = tokens(2, 30, seed=2)
    result = score_checkpoint(tmp_path / "ckpt", x, ttt=None)
    assert result["ttt"] is False  # FA model: no inner weights
    ref = _nll(hf_logits(snapshots["smollm2_135m"], x), x)
    got = np.array(result["token_nll"])
    assert got.shape == (2, 29)
    assert np.max(np.abs(got - ref)) <= 1e-4
    assert result["mean_nll"] == pytest.approx(float(got.mean()))

    one = score_checkpoint(tmp_path / "ckpt", x[0], ttt=False)  # 1-D input: one row
    assert np.max(np.abs(np.array(one["token_nll"][0]) - ref[0])) <= 1e-4

    with pytest.raises(ScoreError, match="has no prime MLPs"):
        score_checkpoint(tmp_path / "ckpt", x, ttt=True)
    with pytest.raises(ScoreError, match=r"token ids span \[0, 300\] but the model's "
                                         r"vocabulary is \[0, 256\)"):
        score_checkpoint(tmp_path / "ckpt", np.array([0, 300]), ttt=False)
    with pytest.raises(ScoreError, match="not a readable ttt-model checkpoint"):
        score_checkpoint(tmp_path / "nope", x)


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
