"""The context sweep: its per-position and binned figures are those of `token_nll` on the
seeded windows (TTT with the run's own inner loop), contexts that cannot run are refused
with the reason, a NaN fails the sweep, and on a copy task it shows what FA's long context
buys over SWA beyond the window."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config
from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.pipeline import PipelineConfig, batches
from ttt_data.store import (
    open_checked_split,
    read_document_starts,
    split_path,
    write_group,
)
from ttt_data.synth import write_synth_corpus
from ttt_data.token_array import TOKEN_DTYPE, FlatArrayWriter
from ttt_data.tokenization import tokenize_corpus
from ttt_eval import sweep as sweep_module
from ttt_eval.errors import EvalError
from ttt_eval.nll import InnerLoop, token_nll
from ttt_eval.sweep import (
    bin_edges,
    choose_windows,
    format_bytes,
    sweep,
    sweep_checkpoint,
    window_sums_fn,
)
from ttt_model.checkpoint import save_checkpoint
from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.costs import compiled_costs
from ttt_model.model import build_model
from ttt_model.testing import assert_close, forward_terms, ttt_terms
from ttt_model.train import init_train_state, make_train_step

BOS = 0


def _cfg(**kw) -> ModelConfig:
    return tiny_config(**{"name": "sweep-fa", "vocab_size": 320, "bos_token_id": BOS, **kw})


def _ttt_cfg() -> ModelConfig:
    return _cfg(name="sweep-ttt", attention="sliding", suffix_len=1, prime=True)


@pytest.fixture(scope="module")
def text_store(tmp_path_factory) -> tuple:
    """A tokenized synthetic corpus (BOS-framed documents, document index, manifest with
    checksums), and its val tokens as read back."""
    work = tmp_path_factory.mktemp("sweep")
    corpus = write_synth_corpus(work / "corpus.jsonl", 24, seed=5, words=60)
    tok = train_bpe_tokenizer([corpus], work / "tok", vocab_size=320)
    tokenize_corpus(tok, [corpus], work / "store", val_fraction=0.5, chunk_tokens=256,
                    progress=False)
    reader = open_checked_split(work / "store", "val")
    return work / "store", np.asarray(reader.read(0, reader.length), np.int64)


def _write_store(root, splits: dict[str, np.ndarray], chunk: int = 512):
    """A store in the authors' layout (flat uint32 arrays, no manifest), written with
    ttt-data's own writer."""
    write_group(root)
    for name, tokens in splits.items():
        w = FlatArrayWriter(split_path(root, name), TOKEN_DTYPE, chunk)
        w.append(np.asarray(tokens))
        w.close()
    return root


def _reference(model, windows_KxN, ttt, inner=None):
    """float64 NLL [K, N-1] of `token_nll` over all windows at once (not the sweep's path)."""
    kw = {} if inner is None else {"inner": inner}
    nll = jax.jit(lambda x: token_nll(model, x, ttt=ttt, **kw))(jnp.asarray(windows_KxN))
    return np.asarray(nll, np.float64)


def _check_against_reference(ctx, nll_KxT, mask_KxT, window, terms, batch):
    """Per position, per bin and per slice: the sweep's means equal numpy's over the
    reference NLLs (fp32 bound), and every count is exact."""
    T = nll_KxT.shape[1]
    count_T = mask_KxT.sum(0)
    ref_T = np.where(count_T > 0, (nll_KxT * mask_KxT).sum(0) / np.maximum(count_T, 1), 0.0)
    got_T = np.array([0.0 if x is None else x for x in ctx.per_position_nll])
    assert ctx.per_position_count == tuple(int(c) for c in count_T)
    assert all((x is None) == (c == 0) for x, c in zip(ctx.per_position_nll, count_T,
                                                        strict=True))
    assert_close(got_T, ref_T, terms=terms + batch, statistical=True, what="per position")
    p_T = np.arange(1, T + 1)
    edges = bin_edges(T)
    assert [(b.lo, b.hi) for b in ctx.bins] == list(edges)
    for j, ((lo, hi), b) in enumerate(zip(edges, ctx.bins, strict=True)):
        sel = (p_T >= lo) & ((p_T <= hi) if j == len(edges) - 1 else (p_T < hi))
        assert b.count == int(mask_KxT[:, sel].sum())
        want = (nll_KxT[:, sel] * mask_KxT[:, sel]).sum() / mask_KxT[:, sel].sum()
        assert_close(np.float64(b.mean_nll), want, terms=terms + batch, statistical=True,
                     what=f"bin [{lo}, {hi}]")
    for got, sel in ((ctx.inside_window, p_T <= window), (ctx.beyond_window, p_T > window)):
        assert got.count == int(mask_KxT[:, sel].sum())
        want = (nll_KxT[:, sel] * mask_KxT[:, sel]).sum() / mask_KxT[:, sel].sum()
        assert_close(np.float64(got.mean_nll), want, terms=terms + batch, statistical=True)
    assert ctx.tokens == int(mask_KxT.sum())
    want = (nll_KxT * mask_KxT).sum() / mask_KxT.sum()
    assert_close(np.float64(ctx.mean_nll), want, terms=terms + batch, statistical=True)
    assert (mask_KxT == 0).any()  # BOS targets are there, and not counted


def test_ttt_checkpoint_sweep_is_token_nll_with_the_runs_inner_loop(tmp_path, text_store):
    store, val = text_store
    cfg = _ttt_cfg()
    model = build_model(cfg, seed=1)
    tc = TrainConfig(train_mode="meta", inner_lr=0.3, inner_clip=0.5, ilr_init=0.1,
                     ilr_warmup_steps=6)
    save_checkpoint(tmp_path / "ttt", 3, params=nnx.state(model, nnx.Param), model_cfg=cfg,
                    meta={"train_config": tc.to_dict()})
    lr = 0.3 * (0.1 + 0.9 * 3 / 6)  # halfway through the inner-lr warmup
    contexts, budget, seed = (40, 64), 2048, 3
    res = sweep_checkpoint(tmp_path / "ttt", store, contexts=contexts,
                           tokens_per_context=budget, batch_tokens=200, seed=seed,
                           per_position=True, progress=False)
    assert not res.failed and res.failures == ()
    assert res.ttt and res.inner["lr"] == pytest.approx(lr) and res.inner["clip"] == 0.5
    assert res.window == 24 and res.checkpoint_step == 3
    json.dumps(res.to_dict(), allow_nan=False)
    ref_fn = jax.jit(lambda x, r: token_nll(model, x, ttt=True,
                                            inner=InnerLoop(lr=r, clip=0.5)))
    for ctx, T in zip(res.contexts, contexts, strict=True):
        # seeded windows: default_rng(seed) among the split's contiguous windows
        k = budget // T
        want = np.sort(np.random.default_rng(seed).choice((val.size - 1) // T, k,
                                                          replace=False)) * T
        assert ctx.starts == tuple(int(s) for s in want) and ctx.windows == k
        assert ctx.batch_windows == 200 // T and k % ctx.batch_windows  # a padded last batch
        x = np.stack([val[s:s + T + 1] for s in want])
        nll = np.asarray(ref_fn(jnp.asarray(x, jnp.int32), lr), np.float64)
        mask = (x[:, 1:] != BOS).astype(np.float64)
        _check_against_reference(ctx, nll, mask, 24, ttt_terms(cfg, T), ctx.batch_windows)
        # the run's inner loop, not the paper's: the difference is far above the bound
        other = np.asarray(ref_fn(jnp.asarray(x, jnp.int32), 1.0), np.float64)
        assert abs(((other - nll) * mask).sum() / mask.sum()) > 1e-3
    assert choose_windows(100, 8, seed).tolist() != choose_windows(100, 8, seed + 1).tolist()


def test_fa_sweep_with_the_comparisons_window_and_document_windows(text_store):
    store, val = text_store
    model = build_model(_cfg(), seed=2)
    T = 48
    res = sweep(model, store, contexts=(T, 10_000), window=16, documents=True,
                tokens_per_context=480, per_position=True, progress=False)
    ctx, long = res.contexts
    doc_starts = read_document_starts(store, "val")
    lengths = np.diff(np.append(doc_starts, val.size))
    fits = doc_starts[lengths >= T + 1]
    assert ctx.windows_available == fits.size and ctx.windows == min(10, fits.size)
    assert set(ctx.starts) <= set(fits.tolist())
    x = np.stack([val[s:s + T + 1] for s in ctx.starts])
    assert (x[:, 0] == BOS).all() and not (x[:, 1:] == BOS).any()  # inside one document
    nll = _reference(model, x, ttt=False)
    # inside a document nothing is masked: compare against the full reference
    _check_against_reference_no_mask(ctx, nll, 16, forward_terms(model.cfg, T))
    assert not res.ttt and res.inner is None and res.window == 16
    assert res.failed and long.error == res.failures[0]["reason"]
    assert res.failures == ({"context": 10_000, "reason": long.error},)
    assert long.error.startswith(f"context 10000: token store {store} split val has no "
                                 "document of 10001 tokens (context + 1; longest "
                                 f"{lengths.max()} of {lengths.size} documents, {val.size} "
                                 "tokens)")


def _check_against_reference_no_mask(ctx, nll_KxT, window, terms):
    count_T = np.full(nll_KxT.shape[1], nll_KxT.shape[0])
    assert ctx.per_position_count == tuple(int(c) for c in count_T)
    assert_close(np.array(ctx.per_position_nll), nll_KxT.mean(0), terms=terms,
                 statistical=True)
    assert ctx.inside_window.count == window * nll_KxT.shape[0]
    assert_close(np.float64(ctx.inside_window.mean_nll), nll_KxT[:, :window].mean(),
                 terms=terms, statistical=True)
    assert_close(np.float64(ctx.beyond_window.mean_nll), nll_KxT[:, window:].mean(),
                 terms=terms, statistical=True)


def test_too_short_split_and_memory_limit_are_refused_with_the_figures(tmp_path):
    store = _write_store(tmp_path / "s", {"val": np.arange(2, 202) % 300})
    model = build_model(_cfg(), seed=0)
    res = sweep(model, store, contexts=(32, 500), memory_limit_bytes=1000,
                tokens_per_context=64, progress=False)
    short, big = res.contexts[1], res.contexts[0]
    assert short.error == (f"context 500: token store {store} split val has 200 tokens, "
                           "fewer than one window of 501 (context + 1)")
    m = re.fullmatch(r"context 32 needs (.+) \(XLA memory analysis, one window per batch\) "
                     r"> limit 1000 B", big.error)
    assert m, big.error
    # the figure is XLA's: the same program measured through ttt_model.costs
    graphdef, state = nnx.split(model)
    costs = compiled_costs(window_sums_fn(graphdef, ttt=False), state,
                           jax.ShapeDtypeStruct((1, 33), jnp.int32),
                           jax.ShapeDtypeStruct((1,), jnp.bool_))
    assert big.memory_bytes == costs.peak_bytes > 1000
    assert m.group(1) == format_bytes(costs.peak_bytes)
    assert res.failed and [f["context"] for f in res.failures] == [32, 500]
    assert big.mean_nll is None and big.bins == () and big.windows == 0
    assert format_bytes(37.2 * 2**30) == "37.2 GiB"


def test_a_nan_fails_the_sweep_and_is_never_averaged(text_store, monkeypatch):
    store, val = text_store
    model = build_model(_cfg(), seed=0)

    def nan_at_21(m, tokens_BxN, **kw):  # the NLL of target position 21 is NaN
        return token_nll(m, tokens_BxN, **kw).at[:, 20].set(jnp.nan)

    monkeypatch.setattr(sweep_module, "token_nll", nan_at_21)
    res = sweep(model, store, contexts=(32,), window=16, tokens_per_context=256,
                progress=False)
    ctx = res.contexts[0]
    x = np.stack([val[s:s + 33] for s in ctx.starts])
    bad = int((x[:, 21] != BOS).sum())
    assert res.failed and res.failures == ({"context": 32, "reason": ctx.error},)
    assert ctx.error == (f"context 32: {bad} counted targets have a non-finite NLL (first "
                         "at position 21)")
    assert ctx.mean_nll is None and ctx.beyond_window.mean_nll is None
    assert [b.mean_nll is None for b in ctx.bins] == [lo == 16 for lo, _ in bin_edges(32)]
    assert ctx.inside_window.mean_nll is not None  # positions 1..16: numbers still
    json.dumps(res.to_dict(), allow_nan=False)  # no NaN anywhere in the result


def test_unreadable_checkpoint_and_ttt_without_prime_are_one_line_errors(tmp_path,
                                                                         text_store):
    store, _ = text_store
    with pytest.raises(EvalError, match=r"^\S+: not a readable ttt-model checkpoint \(.*\)$"):
        sweep_checkpoint(tmp_path / "nothing", store, contexts=(32,))
    model = build_model(_cfg(), seed=0)
    with pytest.raises(EvalError, match="has no prime MLPs"):
        sweep(model, store, contexts=(32,), ttt=True)
    with pytest.raises(EvalError, match=r"contexts must be positive integers, got \[32, 0\]"):
        sweep(model, store, contexts=(32, 0))


# ----- must-show: the sweep measures what it claims -----

COPY_T, COPY_W, COPY_V = 128, 16, 32
STEPS, BATCH = 300, 8


def _copy_blocks(rng, n):
    """n blocks of COPY_T tokens: COPY_T/2 random tokens, then the same again. Every copied
    target's source is COPY_T/2 = 64 tokens back: beyond an SWA window of 16 (two layers of
    it reach 30 tokens back)."""
    r = rng.integers(2, COPY_V, size=(n, COPY_T // 2))
    return np.concatenate([r, r], 1).reshape(-1)


def _train(kind, store):
    cfg = ModelConfig(name=f"copy-{kind}", vocab_size=COPY_V, hidden_size=32,
                      intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                      attention=kind, sliding_window=COPY_W, mini_batch_size=16,
                      attention_block_size=16, bos_token_id=BOS, initializer_range=0.1)
    tc = TrainConfig(total_steps=STEPS, warmup_steps=20, lr=3e-2, weight_decay=0.0)
    graphdef, state = init_train_state(build_model(cfg, 0), tc)
    step = make_train_step(graphdef, tc)
    data = batches(PipelineConfig(store, seq_len=COPY_T, global_batch_size=BATCH, seed=0,
                                  read_threads=1, prefetch_batches=2))
    for _ in range(STEPS):
        b = next(data)
        state, _ = step(state, jnp.asarray(b["tokens"][None]), jnp.asarray(b["loss_mask"][None]))
    return nnx.merge(graphdef, state.params)


def test_fa_beats_swa_beyond_the_window_on_a_copy_task(tmp_path):
    store = _write_store(tmp_path / "copy", {
        "train": np.append(_copy_blocks(np.random.default_rng(0), STEPS * BATCH), 2),
        "val": np.append(_copy_blocks(np.random.default_rng(1), 32), 2)})
    out = {}
    for kind in ("full", "sliding"):
        model = _train(kind, store)  # same init seed, same batches in the same order
        out[kind] = sweep(model, store, contexts=(COPY_T,), window=COPY_W,
                          tokens_per_context=32 * COPY_T, progress=False).contexts[0]
    fa, swa = out["full"], out["sliding"]
    log_v = np.log(COPY_V - 2)
    for name, r in out.items():
        print(f"\n{name}: inside {r.inside_window.mean_nll:.3f} beyond "
              f"{r.beyond_window.mean_nll:.3f} bins " + " ".join(
                  f"[{b.lo},{b.hi}{']' if b is r.bins[-1] else ')'}={b.mean_nll:.3f}"
                  for b in r.bins)
              + f" (log {COPY_V - 2} = {log_v:.3f})")
    assert fa.windows == swa.windows == 32 and fa.tokens == swa.tokens == 32 * COPY_T
    # Inside the window neither can do better than chance: comparable.
    assert abs(fa.inside_window.mean_nll - swa.inside_window.mean_nll) < 0.2
    assert swa.beyond_window.mean_nll > log_v - 0.1  # SWA cannot see the copied source
    # Beyond the window 63 of the 112 targets are copies: a perfect copier gains
    # 63/112 * log 30 = 1.91 nats there. FA must realise over half of it (1.66-1.85 nats
    # over 8 training seeds), and be far below SWA on the copied half (the last bin).
    gap = swa.beyond_window.mean_nll - fa.beyond_window.mean_nll
    assert gap > 1.0, gap
    assert fa.bins[-1].mean_nll < 0.5 * swa.bins[-1].mean_nll
