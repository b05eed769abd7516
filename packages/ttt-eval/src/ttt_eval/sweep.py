"""The context sweep: a model's loss at each context length on a token store's validation
split, per position on a log2 scale, and split at the attention window of the comparison,
so that what long context buys (FA), costs (SWA) or TTT recovers is read off one table.

Each context gets the same token budget (`tokens_per_context`): max(1, budget // context)
windows of context + 1 tokens, drawn with `numpy.random.default_rng(seed)` among the split's
contiguous windows (or, with `documents=True`, among windows that start at a document start
and lie inside that document). A context is scored the way the model is used at test time
(`ttt_eval.nll.token_nll`: TTT models through the inner loop with the run's InnerLoop), over
the targets training counts (BOS targets excluded).

Positions. The target at position p (p = 1..context) is predicted from the p tokens before
it. With an attention window w, p <= w ("inside the first window": every layer sees the
whole context; 0-indexed NLL index p - 1 < w) and p > w ("beyond": only what the model
carries past its window — nothing for SWA, the inner weights for TTT — can use the far
context). Bins are [1, 2), [2, 4), ..., and a last bin [2^k, context] closed at context
(2^k the largest power of two below context).

Before a context runs, its evaluation function is compiled for the batch shape and XLA's
memory analysis (arguments + outputs + temporaries) is compared with `memory_limit_bytes`:
a context that does not fit is refused with the figure, before anything is allocated. A
context with no window in the split, one that does not fit, and one whose NLL is not finite
are failures: the result says `failed` and lists them; a NaN is never averaged into a number.
Missing or corrupt store chunks raise ttt-data's errors (never read as zeros).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from ttt_data.errors import DataError
from ttt_data.store import open_checked_split, read_document_starts, scan_document_starts
from ttt_data.windows import TokenWindows, contiguous_window_count, document_window_starts
from ttt_eval.errors import EvalError, one_line
from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop, counted, require_ttt, token_nll
from ttt_eval.score import load_run_model
from ttt_model.model import Transformer

DEFAULT_CONTEXTS: tuple[int, ...] = (8192, 32768, 65536, 131072)
# 2^20 tokens per context: 8 windows at 131072 (2^17 would leave one window, so one document
# would be the whole figure at the longest context), 128 at 8192; the same budget at every
# context keeps the cost of SWA/TTT flat across the sweep, and every model of a comparison
# is scored on the same seeded windows, so their differences are paired.
DEFAULT_TOKENS_PER_CONTEXT = 2**20
# Windows per batch: batch_tokens // context (at least 1): short contexts batch, long ones
# run one window at a time. A batch that does not fit falls back to one window per batch.
DEFAULT_BATCH_TOKENS = 2**16
# Without a device memory limit (CPU), this share of physical RAM: the rest is for the
# host process, the store cache and the OS.
RAM_FRACTION = 0.75


@dataclass(frozen=True)
class Stats:
    """Mean NLL over the counted targets of a set of positions (None if any is not finite
    or none is counted) and their number."""

    mean_nll: float | None
    count: int


@dataclass(frozen=True)
class Bin:
    """Positions lo <= p < hi; the last bin of a context is closed: lo <= p <= hi = context."""

    lo: int
    hi: int
    mean_nll: float | None
    count: int


@dataclass(frozen=True)
class ContextResult:
    """One context of the sweep; `error` is the reason it failed (None when it did not)."""

    context: int
    windows: int
    windows_available: int
    tokens: int
    mean_nll: float | None
    bins: tuple[Bin, ...]
    inside_window: Stats | None
    beyond_window: Stats | None
    seconds: float
    compile_seconds: float
    batch_windows: int
    memory_bytes: int | None
    starts: tuple[int, ...]
    error: str | None = None
    per_position_nll: tuple[float | None, ...] | None = None
    per_position_count: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SweepResult:
    """The sweep of one model on one split; `failed` when any context failed."""

    model: str
    ttt: bool
    inner: dict[str, Any] | None
    seed: int
    store: str
    split: str
    window: int | None
    documents: bool
    tokens_per_context: int
    memory_limit_bytes: int
    contexts: tuple[ContextResult, ...]
    failed: bool
    failures: tuple[dict[str, Any], ...]
    checkpoint: str | None = None
    checkpoint_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (lists, numbers, strings, None; no NaN)."""
        return _plain(dataclasses.asdict(self))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


# ----- pure math -----

def bin_edges(context: int) -> tuple[tuple[int, int], ...]:
    """(lo, hi) of the log2 bins of positions 1..context: [2^j, 2^(j+1)) and a last bin
    [2^k, context] (closed), 2^k the largest power of two below context (1 if context = 1)."""
    if context < 1:
        raise ValueError(f"context must be positive, got {context}")
    k = max(0, (context - 1).bit_length() - 1)
    return tuple((2**j, 2 ** (j + 1)) for j in range(k)) + ((2**k, context),)


def bin_of_position(p_T: np.ndarray, context: int) -> np.ndarray:
    """Index into `bin_edges(context)` of each position p (1..context)."""
    k = max(0, (context - 1).bit_length() - 1)
    return np.minimum(np.floor(np.log2(p_T)).astype(np.int64), k)


def _stats(sum_T: np.ndarray, count_T: np.ndarray, bad_T: np.ndarray) -> Stats:
    count = int(round(float(count_T.sum())))
    if count == 0 or bad_T.any():
        return Stats(None, count)
    return Stats(float(sum_T.sum() / count), count)


def summarize(sum_T: np.ndarray, count_T: np.ndarray, bad_T: np.ndarray,
              window: int | None) -> dict[str, Any]:
    """Overall, binned and window-split statistics from per-position sums over counted
    targets (index t = position t + 1): mean NLL, counts, and None wherever a counted NLL
    was not finite or nothing was counted."""
    context = int(sum_T.shape[0])
    p_T = np.arange(1, context + 1)
    which = bin_of_position(p_T, context)
    bins = []
    for j, (lo, hi) in enumerate(bin_edges(context)):
        s = _stats(sum_T[which == j], count_T[which == j], bad_T[which == j])
        bins.append(Bin(lo, hi, s.mean_nll, s.count))
    inside = beyond = None
    if window is not None:
        inside = _stats(sum_T[:window], count_T[:window], bad_T[:window])
        if window < context:
            beyond = _stats(sum_T[window:], count_T[window:], bad_T[window:])
    return {"overall": _stats(sum_T, count_T, bad_T), "bins": tuple(bins),
            "inside_window": inside, "beyond_window": beyond}


def choose_windows(available: int, wanted: int, seed: int) -> np.ndarray:
    """Indices of min(wanted, available) distinct windows drawn with default_rng(seed),
    sorted (store order reads each chunk once). The draw depends on the context only, not
    on the other contexts of the sweep."""
    k = min(wanted, available)
    return np.sort(np.random.default_rng(seed).choice(available, size=k, replace=False))


def position_sums(nll_BxT: jax.Array, mask_BxT: jax.Array
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(NLL sum, count, non-finite count) per position over counted targets. Uncounted
    targets never enter (a NaN there cannot poison a sum); a counted NaN stays in its sum."""
    keep_BxT = mask_BxT > 0
    x_BxT = jnp.where(keep_BxT, nll_BxT, 0.0)
    bad_BxT = keep_BxT & ~jnp.isfinite(nll_BxT)
    return (jnp.sum(x_BxT, 0), jnp.sum(mask_BxT, 0),
            jnp.sum(bad_BxT.astype(jnp.int32), 0))


def window_sums_fn(graphdef: nnx.GraphDef, *, ttt: bool, inner: InnerLoop = PAPER_INNER_LOOP
                   ) -> Callable[..., tuple[jax.Array, jax.Array, jax.Array]]:
    """f(state, tokens_BxN, rows_B) -> `position_sums` of a batch of windows, rows with
    rows_B = False (padding of the last batch) not counted: the nll_sums_fn pattern, so only
    [N-1] vectors leave the device."""
    def sums(state, tokens_BxN, rows_B):
        model = nnx.merge(graphdef, state)
        nll_BxT = token_nll(model, tokens_BxN, ttt=ttt, inner=inner)
        rows_BxT = jnp.broadcast_to(rows_B[:, None], nll_BxT.shape)
        return position_sums(nll_BxT, counted(model, tokens_BxN, rows_BxT))
    return sums


# ----- memory -----

def format_bytes(n: float) -> str:
    """Binary units, one decimal: 37.2 GiB, 512.0 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def default_memory_limit(device: jax.Device | None = None) -> int:
    """The device's memory limit when JAX reports one (GPU/TPU), else RAM_FRACTION of
    physical RAM (CPU: `memory_stats()` is None)."""
    device = device or jax.devices()[0]
    stats = device.memory_stats()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return int(RAM_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def compiled_bytes(compiled: Any) -> int | None:
    """Arguments + outputs - aliased + temporaries of a compiled program (XLA's static
    buffer assignment, as `ttt_model.costs.CompiledCosts.peak_bytes`); None if XLA gives
    no memory analysis on this backend."""
    mem = compiled.memory_analysis()
    if mem is None:
        return None

    def field(name: str) -> int:
        return int(getattr(mem, name, 0) or 0)

    return (field("argument_size_in_bytes") + field("output_size_in_bytes")
            - field("alias_size_in_bytes") + field("temp_size_in_bytes"))


# ----- the sweep -----

def _model_window(model: Transformer) -> int | None:
    cfg = model.cfg
    sliding = [cfg.window(i) for i in range(cfg.num_layers) if cfg.window(i) is not None]
    return min(sliding) if sliding else None


def _check_args(model: Transformer, contexts: Sequence[int], ttt: bool, window: int | None,
                tokens_per_context: int, batch_tokens: int) -> None:
    cfg = model.cfg
    bad = [c for c in contexts
           if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1]
    if not contexts or bad:
        raise EvalError(f"contexts must be positive integers, got {list(contexts)}")
    if len(set(contexts)) != len(contexts):
        raise EvalError(f"contexts {list(contexts)} repeat a context")
    if tokens_per_context < 1 or batch_tokens < 1:
        raise EvalError(f"tokens_per_context ({tokens_per_context}) and batch_tokens "
                        f"({batch_tokens}) must be positive")
    if window is not None and (not isinstance(window, int | np.integer) or window < 1):
        raise EvalError(f"window must be positive or None, got {window}")
    if ttt:
        require_ttt(cfg, "a sweep")


class _Windows:
    """Window starts of one split for any context: contiguous, or inside documents."""

    def __init__(self, store: Path, split: str, documents: bool, bos_id: int | None,
                 verify: bool) -> None:
        self.store, self.split, self.verify = store, split, verify
        reader = open_checked_split(store, split, verify=verify)
        self.num_tokens = reader.length
        self.doc_starts = None
        if documents:
            starts = read_document_starts(store, split)
            if starts is None:
                if bos_id is None:
                    raise EvalError(f"token store {store} has no document index "
                                    f"(documents/{split}) and the model has no BOS token to "
                                    "find document starts; use documents=False")
                starts = scan_document_starts(reader, bos_id)
            self.doc_starts = np.asarray(starts, np.int64)

    def starts(self, context: int) -> tuple[np.ndarray | None, int, str | None]:
        """(starts or None for contiguous, windows available, refusal reason or None)."""
        need = context + 1
        where = f"token store {self.store} split {self.split}"
        if self.doc_starts is None:
            n = contiguous_window_count(self.num_tokens, context)
            why = None if n else (f"context {context}: {where} has {self.num_tokens} tokens, "
                                  f"fewer than one window of {need} (context + 1)")
            return None, n, why
        s = document_window_starts(self.doc_starts, self.num_tokens, context, need)
        if s.size:
            return s, int(s.size), None
        lengths = np.diff(np.append(self.doc_starts, self.num_tokens))
        longest = int(lengths.max()) if lengths.size else 0
        return s, 0, (f"context {context}: {where} has no document of {need} tokens "
                      f"(context + 1; longest {longest} of {lengths.size} documents, "
                      f"{self.num_tokens} tokens)")


def _failed(context: int, reason: str, available: int = 0, memory: int | None = None,
            compile_seconds: float = 0.0, batch: int = 0) -> ContextResult:
    return ContextResult(context=context, windows=0, windows_available=available, tokens=0,
                         mean_nll=None, bins=(), inside_window=None, beyond_window=None,
                         seconds=0.0, compile_seconds=compile_seconds, batch_windows=batch,
                         memory_bytes=memory, starts=(), error=reason)


def _compile_fitting(jitted: Any, state: Any, context: int, batch: int, limit: int
                     ) -> tuple[Any, int, int | None, float, str | None]:
    """(compiled, batch, bytes, seconds, refusal): the batch shape if it fits the limit,
    else one window per batch, else the refusal with XLA's figure."""
    t0 = time.perf_counter()
    while True:
        tok = jax.ShapeDtypeStruct((batch, context + 1), jnp.int32)
        rows = jax.ShapeDtypeStruct((batch,), jnp.bool_)
        compiled = jitted.lower(state, tok, rows).compile()
        need = compiled_bytes(compiled)
        if need is None or need <= limit:
            return compiled, batch, need, time.perf_counter() - t0, None
        if batch == 1:
            why = (f"context {context} needs {format_bytes(need)} (XLA memory analysis, one "
                   f"window per batch) > limit {format_bytes(limit)}")
            return None, batch, need, time.perf_counter() - t0, why
        batch = 1


def _run_context(compiled: Any, state: Any, source: TokenWindows, index: np.ndarray,
                 batch: int, context: int, progress: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-position sums over the chosen windows, accumulated in float64 on the host; the
    next batch is read while the device runs the last one."""
    sum_T = np.zeros(context, np.float64)
    count_T = np.zeros(context, np.float64)
    bad_T = np.zeros(context, np.int64)

    def take(out: Any) -> None:
        s, c, b = jax.device_get(out)
        sum_T[:] += s
        count_T[:] += c
        bad_T[:] += b

    pending = None
    with tqdm(total=int(index.size), desc=f"context {context}", unit="window",
              file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
        for lo in range(0, index.size, batch):
            rows = [source[int(i)] for i in index[lo:lo + batch]]
            real = len(rows)
            rows += [rows[0]] * (batch - real)  # pad the last batch: one shape, one compile
            out = compiled(state, np.stack(rows), np.arange(batch) < real)
            if pending is not None:
                take(pending[0])
                bar.update(pending[1])
            pending = (out, real)
        if pending is not None:
            take(pending[0])
            bar.update(pending[1])
    return sum_T, count_T, bad_T


def _non_finite_reason(context: int, bad_T: np.ndarray) -> str:
    first = int(np.flatnonzero(bad_T)[0]) + 1
    return (f"context {context}: {int(bad_T.sum())} counted targets have a non-finite NLL "
            f"(first at position {first})")


def sweep(model: Transformer, store: str | Path, *,
          contexts: Sequence[int] = DEFAULT_CONTEXTS, split: str = "val",
          ttt: bool | None = None, inner: InnerLoop = PAPER_INNER_LOOP,
          window: int | None = None, tokens_per_context: int = DEFAULT_TOKENS_PER_CONTEXT,
          seed: int = 0, documents: bool = False, batch_tokens: int = DEFAULT_BATCH_TOKENS,
          memory_limit_bytes: int | None = None, progress: bool = True,
          per_position: bool = False, verify: bool = True) -> SweepResult:
    """Loss of `model` at each context on `split` of `store` (see the module doc).

    `ttt=None` uses TTT when the model has prime MLPs; `inner` is the run's inner loop.
    `window` is where inside/beyond split (default: the model's own sliding window; for FA
    pass the SWA/TTT window of the comparison; None for an FA model: no split).
    `documents=True` draws windows inside documents of the store's document index (or,
    without one, of the BOS starts scanned from the split, as the training pipeline does).
    `per_position` adds the per-position mean NLL and counts to each context.
    """
    cfg = model.cfg
    ttt = bool(cfg.prime if ttt is None else ttt)
    window = _model_window(model) if window is None else window
    _check_args(model, contexts, ttt, window, tokens_per_context, batch_tokens)
    contexts, window = [int(c) for c in contexts], None if window is None else int(window)
    limit = default_memory_limit() if memory_limit_bytes is None else int(memory_limit_bytes)
    root = Path(store)
    windows = _Windows(root, split, documents, cfg.bos_token_id, verify)
    graphdef, state = nnx.split(model)
    jitted = jax.jit(window_sums_fn(graphdef, ttt=ttt, inner=inner))

    results: list[ContextResult] = []
    for context in contexts:
        starts, available, why = windows.starts(context)
        if why is not None:
            results.append(_failed(context, why))
            continue
        index = choose_windows(available, max(1, tokens_per_context // context), seed)
        source = TokenWindows(root, split, context, starts=starts,
                              num_tokens=windows.num_tokens, vocab_size=cfg.vocab_size,
                              verify=verify)
        batch = max(1, min(index.size, batch_tokens // context))
        compiled, batch, need, compile_s, why = _compile_fitting(jitted, state, context,
                                                                 batch, limit)
        if why is not None:
            results.append(_failed(context, why, available, need, compile_s, batch))
            continue
        t0 = time.perf_counter()
        sum_T, count_T, bad_T = _run_context(compiled, state, source, index, batch, context,
                                             progress)
        seconds = time.perf_counter() - t0
        s = summarize(sum_T, count_T, bad_T, window)
        error = _bucket_error(context, s, bad_T)
        pp_nll = pp_cnt = None
        if per_position:
            ok = (count_T > 0) & (bad_T == 0)
            pp_nll = tuple(float(x) if k else None
                           for x, k in zip(sum_T / np.maximum(count_T, 1), ok, strict=True))
            pp_cnt = tuple(int(round(c)) for c in count_T)
        results.append(ContextResult(
            context=context, windows=int(index.size), windows_available=available,
            tokens=s["overall"].count, mean_nll=s["overall"].mean_nll, bins=s["bins"],
            inside_window=s["inside_window"], beyond_window=s["beyond_window"],
            seconds=seconds, compile_seconds=compile_s, batch_windows=batch,
            memory_bytes=need, starts=tuple(source.start(int(i)) for i in index),
            error=error, per_position_nll=pp_nll, per_position_count=pp_cnt))

    failures = tuple({"context": r.context, "reason": r.error} for r in results
                     if r.error is not None)
    return SweepResult(
        model=cfg.name, ttt=ttt,
        inner=({"lr": inner.lr, "clip": inner.clip, "spec": list(inner.spec)} if ttt
               else None),
        seed=seed, store=str(root), split=split, window=window, documents=documents,
        tokens_per_context=tokens_per_context, memory_limit_bytes=limit,
        contexts=tuple(results), failed=bool(failures), failures=failures)


def _bucket_error(context: int, s: dict[str, Any], bad_T: np.ndarray) -> str | None:
    """Why a scored context is not a full row of numbers: a non-finite NLL, or a bin or
    slice with positions but no counted target."""
    if bad_T.any():
        return _non_finite_reason(context, bad_T)
    empty = [f"[{b.lo}, {b.hi}{']' if i == len(s['bins']) - 1 else ')'}"
             for i, b in enumerate(s["bins"]) if b.count == 0]
    if empty:
        return (f"context {context}: no counted target (all BOS) in position bins "
                f"{', '.join(empty)}")
    for name in ("inside_window", "beyond_window"):
        if s[name] is not None and s[name].count == 0:
            return f"context {context}: no counted target {name.replace('_', ' ')}"
    return None


def sweep_checkpoint(checkpoint_dir: str | Path, store: str | Path, **kwargs: Any
                     ) -> SweepResult:
    """`sweep` of a checkpoint's model with its run's own inner loop (`run_settings`); any
    checkpoint or store problem is one EvalError line."""
    model, settings = load_run_model(checkpoint_dir)
    try:
        result = sweep(model, store, inner=settings["inner"], **kwargs)
    except DataError as e:
        raise EvalError(one_line(e)) from None
    return dataclasses.replace(result, checkpoint=str(Path(checkpoint_dir).resolve()),
                               checkpoint_step=settings["step"])


__all__ = [
    "DEFAULT_BATCH_TOKENS", "DEFAULT_CONTEXTS", "DEFAULT_TOKENS_PER_CONTEXT", "Bin",
    "ContextResult", "Stats", "SweepResult", "bin_edges", "bin_of_position", "choose_windows",
    "compiled_bytes", "default_memory_limit", "format_bytes", "position_sums", "summarize",
    "sweep", "sweep_checkpoint", "window_sums_fn",
]
