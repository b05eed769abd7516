"""Efficiency of FA, SWA and TTT against context: result structure and sample counts, FLOPs
per token from compiled cost analysis (FA's grow with the context, SWA's and TTT's do not),
state bytes against an independent count, the crossover interpolation. Nothing here asserts
on a wall-clock figure."""

from __future__ import annotations

import json
import math

import pytest

from ttt_eval.efficiency import (
    COMPILED,
    MEASURED,
    SHAPES,
    Timing,
    _skip_reason,
    crossover,
    efficiency,
    prefill_crossover,
    sample_stats,
    summary_rows,
)
from ttt_model.config import ModelConfig
from ttt_model.model import build_model

CONTEXTS = (64, 128)
TIMING = Timing(repeats=2, warmup=1, decode_tokens=4, decode_warmup=1)
B_TTT = 16


def _cfg(kind: str) -> ModelConfig:
    return ModelConfig(
        name=f"eff-{kind}", vocab_size=61, hidden_size=32, intermediate_size=48, num_layers=2,
        num_heads=4, num_kv_heads=2, attention="full" if kind == "fa" else "sliding",
        sliding_window=32, mini_batch_size=B_TTT, attention_block_size=16,
        suffix_len=1 if kind == "ttt" else 0, prime=kind == "ttt", bos_token_id=0)


@pytest.fixture(scope="module")
def result():
    models = {k: build_model(_cfg(k), seed=1) for k in ("fa", "swa", "ttt")}
    return efficiency(models, CONTEXTS, timing=TIMING, measure_up_to={"fa": 64})


def _row(result, model, n):
    return result["models"][model]["contexts"][str(n)]


def test_structure_sources_and_sample_counts(result):
    assert json.loads(json.dumps(result)) == result  # plain JSON
    assert result["contexts"] == list(CONTEXTS)
    for name, m in result["models"].items():
        assert m["kind"] == name
        assert m["decode_steps_timed"] == (B_TTT if name == "ttt" else TIMING.decode_tokens)
        for n in CONTEXTS:
            row = _row(result, name, n)
            assert row["compiled"]["source"] == COMPILED
            assert row["state_bytes"]["source"] == SHAPES
            for prog in ("prefill", "decode_step"):
                assert row["compiled"][prog]["flops"] > 0
                assert row["compiled"][prog]["temp_bytes"] > 0
            d = row["decode"]
            assert d["source"] == MEASURED and d["n"] == m["decode_steps_timed"]
            assert d["warmup"] == TIMING.decode_warmup
            if name == "fa" and n == 128:  # above measure_up_to: costs only, decode synthetic
                assert row["prefill"]["source"] is None
                assert "measure_up_to" in row["prefill"]["not_measured"]
                assert d["state"] == "synthetic" and row["decode_over_prefill"] is None
                continue
            p = row["prefill"]
            assert p["source"] == MEASURED and p["n"] == TIMING.repeats
            assert len(p["seconds"]) == p["n"] and len(p["warmup_seconds"]) == TIMING.warmup
            assert p["min_s"] <= p["median_s"] <= p["max_s"]
            assert d["state"] == "prefill"
            r = row["decode_over_prefill"]
            assert (r["n_prefill"], r["n_decode"]) == (p["n"], d["n"])
    # b timed TTT steps after a prompt of whole chunks: exactly one takes the inner step
    assert all(_row(result, "ttt", n)["decode"]["inner_steps"] == 1 for n in CONTEXTS)
    rows = summary_rows(result)
    assert len(rows) == 3 * len(CONTEXTS)
    fa128 = next(r for r in rows if (r["model"], r["context"]) == ("fa", 128))
    assert fa128["prefill_ms_per_token"] is None and fa128["prefill_n"] == 0


def test_flops_per_token_grow_for_fa_only(result):
    cfg = _cfg("fa")
    attn = 4 * cfg.num_layers * cfg.num_heads * cfg.dim_per_head  # q.k and p.v, per key
    lo, hi = (_row(result, "fa", n)["compiled"] for n in CONTEXTS)
    # a decode step reads its whole ring, 64 slots more at the larger context
    assert hi["decode_step"]["flops"] - lo["decode_step"]["flops"] == attn * 64
    # prefill: the causal triangle of key blocks, (n+1)/2 blocks of b keys per query for
    # n = T/b blocks, i.e. (T + b)/2 keys per token: 32 more at the larger context (less a
    # constant spread thinner); dense attention (T keys per token) would grow by 64
    grow = hi["prefill"]["flops_per_token"] - lo["prefill"]["flops_per_token"]
    assert 0.9 * attn * 32 <= grow <= attn * 32
    for name in ("swa", "ttt"):
        lo, hi = (_row(result, name, n)["compiled"] for n in CONTEXTS)
        assert hi["decode_step"]["flops"] == lo["decode_step"]["flops"]
        ratio = hi["prefill"]["flops_per_token"] / lo["prefill"]["flops_per_token"]
        assert abs(ratio - 1) < 0.1, (name, ratio)
    dec = _row(result, "ttt", 64)["compiled"]["decode_step"]
    assert dec["inner_step_flops"] > 4 * dec["flops_per_step_without"]
    assert dec["flops_per_token"] == pytest.approx(
        dec["flops_per_step_without"] + dec["inner_step_flops"] / B_TTT)


def test_state_bytes_equal_an_independent_count(result):
    c = _cfg("fa")
    per_slot = 2 * c.kv_heads * c.dim_per_head * 4  # k and v, float32
    for n in CONTEXTS:
        fa = _row(result, "fa", n)["state_bytes"]
        assert fa["kv_cache"] == c.num_layers * n * per_slot
        assert fa["ring_slots"] == [n] * c.num_layers
        assert fa["inner_weights"] == 0
        swa = _row(result, "swa", n)["state_bytes"]
        assert swa["kv_cache"] == c.num_layers * c.sliding_window * per_slot
        ttt = _row(result, "ttt", n)["state_bytes"]
        t = _cfg("ttt")
        slots = t.num_prefix_layers * t.sliding_window + t.suffix_len * (t.sliding_window + B_TTT)
        assert ttt["kv_cache"] == slots * per_slot
        assert ttt["inner_weights"] == t.suffix_len * 3 * t.hidden_size * t.prime_inter * 4
        for s in (fa, swa, ttt):
            assert s["total"] == s["kv_cache"] + s["inner_weights"] + s["other"]
            assert s["other"] > 0  # logits, clocks


def test_crossover_interpolates_on_a_log_scale():
    x = crossover([1024, 2048, 4096, 8192], [1.0] * 4, [0.5, 0.8, 1.6, 3.2])
    t = math.log(1 / 0.8) / (math.log(1 / 0.8) - math.log(1 / 1.6))
    assert x["context"] == pytest.approx(2048 * 2 ** t)
    assert x["between"] == [2048, 4096] and x["earlier_at_or_below"] == []
    # power laws cross exactly where the interpolation says: a = 1, b = (c/3000)^1
    cs = [1000, 10000]
    assert crossover(cs, [1, 1], [c / 3000 for c in cs])["context"] == pytest.approx(3000)


def test_crossover_outside_the_range_or_recrossing():
    assert crossover([1, 2, 4], [2, 2, 2], [1, 1, 1])["context"] is None  # always above
    below = crossover([1, 2, 4], [1, 1, 1], [2, 2, 2])
    assert below["context"] is None and "smallest" in below["method"]
    assert crossover([], [], [])["context"] is None
    # noise at small contexts: the crossover is where a stays below
    x = crossover([1, 2, 4, 8], [1, 1, 1, 1], [1.1, 0.9, 1.2, 2.0])
    assert x["between"] == [2, 4] and x["earlier_at_or_below"] == [1]
    # contexts missing a value are not compared
    y = crossover([1, 2, 4], [1, None, 1], [0.5, 5, 2])
    assert y["contexts_compared"] == [1, 4] and y["between"] == [1, 4]


def test_prefill_crossover_names_its_source(result):
    x = prefill_crossover(result, "ttt", "fa")
    assert x["source"] == MEASURED and x["contexts_compared"] == [64]  # FA timed to 64 only
    assert x["samples"] == {"64": [TIMING.repeats, TIMING.repeats]}
    f = prefill_crossover(result, "ttt", "fa", source=COMPILED)
    assert f["contexts_compared"] == list(CONTEXTS) and "estimate" in f["quantity"]
    with pytest.raises(ValueError):
        prefill_crossover(result, "ttt", "fa", source="guess")


def test_long_runs_are_skipped_by_prediction():
    rows = {1000: {"prefill": {"source": MEASURED, "median_s": 2.0},
                   "compiled": {"prefill": {"flops": 10}}},
            4000: {"compiled": {"prefill": {"flops": 160}}}}
    slow = Timing(max_run_s=30.0)
    assert "predicted to take 32 s" in _skip_reason("fa", 4000, rows, {1000, 4000}, None, slow)
    assert _skip_reason("fa", 4000, rows, {1000, 4000}, None, Timing(max_run_s=40.0)) is None
    assert "timed" in _skip_reason("fa", 4000, rows, {1000}, None, slow)
    assert "measure_up_to" in _skip_reason("fa", 4000, rows, {1000, 4000}, 2000, Timing())


def test_sample_stats():
    s = sample_stats([3.0, 1.0, 2.0])
    assert (s["n"], s["median"], s["min"], s["max"]) == (3, 2.0, 1.0, 3.0)
    assert s["spread"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sample_stats([])
