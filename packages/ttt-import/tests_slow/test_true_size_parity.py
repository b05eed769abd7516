"""Must-show 2: at the true sizes of smollm2_135m, smollm2_360m and qwen2_5_0_5b (random
weights, real configs written by transformers' own config classes from the docs/models.md
facts), the import against its profile is clean and max |Δlogit| <= 1e-3.

Prints the figures and wall-clock times; run with `nox -s parity`.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ttt_import import PROFILES, import_snapshot
from ttt_import.standins import build_hf_snapshot


def _real_config(key: str) -> dict:
    import transformers

    p = PROFILES[key]
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[p.model_type]
    cfg = cls(vocab_size=p.vocab_size, hidden_size=p.hidden_size,
              intermediate_size=p.intermediate_size, num_hidden_layers=p.num_layers,
              num_attention_heads=p.num_heads, num_key_value_heads=p.num_kv_heads,
              rope_theta=p.rope_theta, rms_norm_eps=p.rms_norm_eps, tie_word_embeddings=True,
              bos_token_id=p.bos_token_id, eos_token_id=p.eos_token_id,
              max_position_embeddings=32768 if p.model_type == "qwen2" else 8192)
    return cfg.to_dict()


@pytest.mark.parametrize("key", ["smollm2_135m", "smollm2_360m", "qwen2_5_0_5b"])
def test_true_size_parity(key, tmp_path):
    t0 = time.perf_counter()
    hf = build_hf_snapshot(tmp_path / "hf", _real_config(key), seed=0)
    t1 = time.perf_counter()
    result = import_snapshot(hf, tmp_path / "ckpt", model=key)
    t2 = time.perf_counter()
    audit = result.audit
    p = audit.parity
    figures = {"key": key, "params": audit.param_count,
               "max_abs_logit_diff": p["max_abs_logit_diff"],
               "max_abs_nll_diff": p["max_abs_nll_diff"], "max_abs_logit": p["max_abs_logit"],
               "tokens": p["tokens_shape"], "build_snapshot_s": round(t1 - t0, 1),
               "import_with_parity_s": round(t2 - t1, 1), "reference": p["reference"]}
    print("\nPARITY " + json.dumps(figures))
    assert audit.clean, audit.problems()
    assert audit.param_count == PROFILES[key].params
    assert p["max_abs_logit_diff"] <= 1e-3
    assert p["max_abs_logit"] > 1.0 and np.isfinite(p["max_abs_nll_diff"])
