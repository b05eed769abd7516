"""The pilot's warm-start source: a stand-in pretrained by transformers models its data,
and imports like any public checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import our_logits_from_checkpoint
from ttt_import import import_snapshot
from ttt_import.standins import pretrain_hf_snapshot, tiny_hf_config


def test_pretrained_standin_learns_its_data_and_imports_clean(tmp_path):
    period = np.random.default_rng(0).integers(3, 256, size=11)
    tokens = np.tile(period, 300)
    losses = pretrain_hf_snapshot(tmp_path / "hf", tiny_hf_config("qwen2_5_0_5b"), tokens,
                                  steps=40, seq_len=32, batch_size=4, lr=1e-2, warmup_steps=4,
                                  progress=False)
    assert len(losses) == 40
    assert losses[0] > np.log(256) - 1.0  # HF initialisation: near chance
    assert np.mean(losses[-5:]) < 1.0     # the period is learned
    result = import_snapshot(tmp_path / "hf", tmp_path / "ckpt")
    assert result.audit.clean and result.audit.parity["max_abs_logit_diff"] <= 1e-4
    # our model, restored the way training restores it, predicts a fresh window of the data
    x = np.tile(period, 4)[None, 5:41]
    logits = our_logits_from_checkpoint(tmp_path / "ckpt", x)[0, :-1]
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                          keepdims=True)) \
        - logits.max(-1, keepdims=True)
    nll = -np.take_along_axis(logp, x[0, 1:, None], axis=-1).mean()
    assert nll < 1.0


@pytest.mark.parametrize("tokens, match", [(np.arange(10), "at least seq_len\\+1=33"),
                                           (np.arange(400), "token id 399 >= the stand-in's")])
def test_pretraining_refuses_unusable_tokens(tmp_path, tokens, match):
    with pytest.raises(ValueError, match=match):
        pretrain_hf_snapshot(tmp_path / "hf", tiny_hf_config("qwen2_5_0_5b"), tokens, steps=2,
                             seq_len=32, batch_size=2, warmup_steps=0, progress=False)
    assert not (tmp_path / "hf").exists()
