"""The evaluation bundle end to end on tiny checkpoints: every measure is there with its
sample counts, JSON/CSV/plots are written, and a non-finite bucket marks the bundle failed
while what was measured is kept."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config
from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.synth import write_synth_corpus
from ttt_data.tokenization import tokenize_corpus
from ttt_eval.bundle import BundleSpec, BundleTarget, run_bundle, write_bundle
from ttt_eval.retrieval import RetrievalSpec
from ttt_model.checkpoint import save_checkpoint
from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.model import build_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cfg(name: str, **kw) -> ModelConfig:
    return tiny_config(**{"vocab_size": 320, "sliding_window": 32, **kw, "name": name})


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    work = tmp_path_factory.mktemp("bundle")
    corpus = write_synth_corpus(work / "corpus.jsonl", 24, seed=3, words=80)
    tok = train_bpe_tokenizer([corpus], work / "tok", vocab_size=320)
    tokenize_corpus(tok, [corpus], work / "store", val_fraction=0.5, chunk_tokens=256,
                    progress=False)
    tc = TrainConfig(train_mode="meta", inner_lr=0.5, ilr_init=0.5)
    ckpts = {}
    for name, cfg in (("fa", _cfg("bundle-fa")),
                      ("ttt", _cfg("bundle-ttt", attention="sliding", suffix_len=1,
                                   prime=True))):
        model = build_model(cfg, seed=2)
        save_checkpoint(work / name, 5, params=nnx.state(model, nnx.Param), model_cfg=cfg,
                        meta={"train_config": tc.to_dict()})
        ckpts[name] = work / name
    return work, tok, ckpts


SPEC = BundleSpec(contexts=(64, 128), sweep_tokens=256,
                  retrieval=RetrievalSpec(tasks=("niah_single_1",), lengths=(512,),
                                          depths=(0.5,), samples_per_cell=1, max_new_tokens=2),
                  trend_tokens=48, efficiency_contexts=(64,), efficiency_repeats=1)


def test_bundle_measures_everything_and_writes_it(assets, tmp_path):
    work, tok, ckpts = assets
    targets = [BundleTarget(n, ckpts[n], work / "store", tok) for n in ("fa", "ttt")]
    bundle = run_bundle(targets, SPEC, progress=False)
    assert not bundle["failed"], [m["failures"] for m in bundle["models"]]
    fa, ttt = bundle["models"]
    assert (fa["kind"], ttt["kind"]) == ("fa", "e2e")
    assert fa["window"] == ttt["window"] == 32  # FA split at the window it is compared with
    assert ttt["inner_loop"]["lr"] == 0.5  # the run's own inner loop
    for m in (fa, ttt):
        rows = m["sweep"]["contexts"]
        assert [r["context"] for r in rows] == [64, 128]
        for r in rows:
            assert r["tokens"] == r["inside_window"]["count"] + r["beyond_window"]["count"] > 0
            assert sum(b["count"] for b in r["bins"]) == r["tokens"]
        assert m["ruler"]["tasks"]["niah_single_1"]["rank"]["n"] == 1
        assert m["trend"]["decode_nll_slope"]["n"] == 48
        (eff,) = m["efficiency"]["contexts"]
        assert eff["prefill_ms_per_token_n"] == 1 and eff["decode_ms_per_token_n"] >= 1
    paths = write_bundle(bundle, tmp_path, "x_external_eval")
    data = json.loads(paths["json"].read_text())
    assert data["models"][1]["sweep"]["contexts"][1]["mean_nll"] == \
        ttt["sweep"]["contexts"][1]["mean_nll"]
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["n"] not in ("", None) for r in rows)
    assert {r["measure"] for r in rows} >= {"sweep", "ruler/niah_single_1", "decode",
                                             "efficiency"}
    names = {p.name for p in paths["plots"]}
    assert {"loss_vs_context.png", "position_nll.png", "latency_vs_context.png",
            "ruler_niah_single_1_rank.png", "ruler_niah_single_1_generation.png"} <= names
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths["plots"])


def test_a_non_finite_bucket_fails_the_bundle_and_keeps_the_rest(assets, tmp_path):
    """A finite checkpoint whose logits overflow: token 5's (tied) embedding row is 3e38,
    so its logit is inf at every position and every NLL is inf or NaN. The bundle says
    which buckets failed and why; no NaN is written as a number."""
    work, tok, _ = assets
    cfg = _cfg("bundle-nan")
    model = build_model(cfg, seed=2)
    model.embed[...] = model.embed[...].at[5].set(3e38)
    params = nnx.state(model, nnx.Param)
    save_checkpoint(work / "nan", 1, params=params, model_cfg=cfg)
    spec = BundleSpec(contexts=(64,), sweep_tokens=128, retrieval=None, trend_tokens=16,
                      efficiency=False)
    bundle = run_bundle([BundleTarget("nan", work / "nan", work / "store")], spec,
                        progress=False)
    assert bundle["failed"]
    (m,) = bundle["models"]
    measures = {f["measure"] for f in m["failures"]}
    assert "sweep@64" in measures and "trend" in measures
    assert "non-finite" in " ".join(f["reason"] for f in m["failures"])
    paths = write_bundle(bundle, tmp_path, "nan_external_eval")
    text = paths["json"].read_text()
    assert "NaN" not in text and json.loads(text)["failed"] is True



def test_free_generation_is_scored_by_the_reference_checkpoint(assets, tmp_path):
    work, _, ckpts = assets
    spec = BundleSpec(contexts=(64,), sweep_tokens=128, retrieval=None, trend_tokens=24,
                      efficiency=False, trend_reference=ckpts["fa"])
    target = BundleTarget("ttt", ckpts["ttt"], work / "store")
    bundle = run_bundle([target], spec, progress=False)
    assert not bundle["failed"], bundle["models"][0]["failures"]
    (m,) = bundle["models"]
    free = m["free_trend"]
    assert free["reference"] == "bundle-fa" and free["ttt"] and not free["reference_ttt"]
    assert free["reference_checkpoint"] == str(ckpts["fa"].resolve())
    assert np.asarray(free["tokens"]).shape == (1, 24) and free["n"] <= 24
    with open(write_bundle(bundle, tmp_path, "free")["csv"]) as f:
        assert "free_decode_nll_slope" in {r["key"] for r in csv.DictReader(f)}
    missing = replace(spec, trend_reference=work / "no-such-checkpoint")
    bundle = run_bundle([target], missing, progress=False)
    (m,) = bundle["models"]
    assert bundle["failed"] and "trend" in m and "free_trend" not in m
    (failure,) = m["failures"]
    assert failure["measure"] == "free_trend" and "no-such-checkpoint" in failure["reason"]
