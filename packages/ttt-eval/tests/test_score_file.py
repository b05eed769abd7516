"""A score from a .npy file is the score of its tokens, written whole as one JSON line and
described in one line; a call that names no input (or two) is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flax import nnx

from ttt_eval.errors import ScoreError
from ttt_eval.score import describe_score, score_checkpoint, score_file, write_score
from ttt_model.checkpoint import save_checkpoint
from ttt_model.config import ModelConfig
from ttt_model.model import build_model


def _checkpoint(tmp_path):
    cfg = ModelConfig(name="score-file", vocab_size=61, hidden_size=32, intermediate_size=48,
                      num_layers=2, num_heads=4, num_kv_heads=2, attention="full",
                      sliding_window=24, mini_batch_size=16, attention_block_size=16,
                      bos_token_id=0, initializer_range=0.1)
    model = build_model(cfg, seed=1)
    save_checkpoint(tmp_path / "ckpt", 3, params=nnx.state(model, nnx.Param), model_cfg=cfg)
    return tmp_path / "ckpt"


def test_score_file_scores_the_files_tokens_and_the_result_is_written_whole(tmp_path):
    ckpt = _checkpoint(tmp_path)
    tokens = np.random.default_rng(0).integers(1, 61, size=(2, 33))
    np.save(tmp_path / "t.npy", tokens)
    result = score_file(ckpt, tokens_file=tmp_path / "t.npy")
    assert result == score_checkpoint(ckpt, tokens)
    out = tmp_path / "deep" / "score.json"
    out.parent.mkdir()
    out.write_text("an older score")
    assert write_score(result, out) == out
    assert json.loads(out.read_text()) == result and out.read_text().count("\n") == 1
    assert [p.name for p in out.parent.iterdir()] == ["score.json"]  # no temporary left
    line = describe_score(result, out)
    assert line == (f"scored 2 x 33 tokens (no ttt; 64 counted targets): mean NLL "
                    f"{result['mean_nll']:.4f} -> {out}")


def test_score_file_needs_exactly_one_input(tmp_path):
    with pytest.raises(ScoreError, match="exactly one"):
        score_file(tmp_path, tokens_file=tmp_path / "a.npy", text_file=tmp_path / "a.txt")
    with pytest.raises(ScoreError, match="exactly one"):
        score_file(tmp_path)
    with pytest.raises(ScoreError, match="needs the tokenizer"):
        score_file(tmp_path, text_file=tmp_path / "a.txt")
