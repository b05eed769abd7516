"""Efficiency of FA, SWA and TTT-E2E models against context: what a long context costs.

For each model and context: prefill (tokens/s, ms/token) and decode (ms/token after a prompt
of that context) by wall-clock; from XLA's compiled cost and memory analysis (nothing run),
FLOPs per token and temp bytes of the prefill and of one decode step; from the decode
state's array shapes, its bytes (KV caches, which grow with the context under full
attention, against TTT's window caches and inner weights).

Compiled figures exist for every context; wall-clock only where it is affordable
(`measure_up_to`, `Timing.max_run_s`, `Timing.repeat_budget_s`). Every block says where its
figures come from (`source`: "measured", "compiled" or "shapes") so that a cost-analysis
figure is never read as a measurement, and every measured figure carries its sample count.
Results are plain JSON.

Wall-clock: each program is compiled ahead of time (compilation is never timed), run
`warmup` times, then `repeats` times (median, min, max, spread); a decode step is timed
`decode_tokens` times after `decode_warmup` steps, from the state a real prefill of the
prompt left (or, for a KV cache at a context whose prefill is not run, a synthetic cache of
the same shape: a KV-cache step reads its whole ring whatever it holds). Every timed region
ends in `jax.block_until_ready`, so the same code measures a GPU.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop
from ttt_model.attention import RingCache
from ttt_model.config import ModelConfig
from ttt_model.costs import CompiledCosts, compiled_costs
from ttt_model.decoding import CacheState
from ttt_model.inference import DecodeState, TTTRunner, decoder_for
from ttt_model.model import Transformer, count_params

__all__ = [
    "COMPILED",
    "MEASURED",
    "SHAPES",
    "Timing",
    "crossover",
    "decode_diagnostics",
    "efficiency",
    "model_kind",
    "prefill_crossover",
    "sample_stats",
    "state_bytes",
    "summary_rows",
]

MEASURED = "measured"  # wall-clock of runs on this device
COMPILED = "compiled"  # XLA cost / memory analysis of the compiled program; never run
SHAPES = "shapes"  # counted from the decode state's array shapes and dtypes


@dataclass(frozen=True)
class Timing:
    """How wall-clock is taken.

    `repeats` timed prefill runs follow `warmup` untimed ones; with `repeat_budget_s`, fewer
    (at least one) when the warm-up run says they would take longer than that. A context
    whose one prefill run is predicted to exceed `max_run_s` (a smaller timed context of the
    same model, scaled by the compiled FLOPs) is not timed. Decode: `decode_tokens` timed
    steps after `decode_warmup`; for TTT rounded up to whole chunks of b, so that their mean
    counts one inner step per b tokens, as a long generation does.
    """

    repeats: int = 3
    warmup: int = 1
    decode_tokens: int = 32
    decode_warmup: int = 3
    repeat_budget_s: float | None = None
    max_run_s: float | None = None

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.decode_tokens < 1:
            raise ValueError("Timing needs at least one timed prefill run and decode step")
        if self.warmup < 0 or self.decode_warmup < 0:
            raise ValueError("warm-up counts cannot be negative")


def model_kind(cfg: ModelConfig) -> str:
    """'ttt' (prime MLPs: learns at test time), 'fa' (some layer attends to the whole
    context, so its cache and step grow with it) or 'swa' (sliding windows only)."""
    if cfg.prime:
        return "ttt"
    if any(cfg.window(i) is None for i in range(cfg.num_layers)):
        return "fa"
    return "swa"


def sample_stats(values: Sequence[float]) -> dict[str, Any]:
    """Median, mean, min, max and spread ((max - min) / median) of samples, with their count."""
    if not values:
        raise ValueError("no samples")
    med = statistics.median(values)
    return {"n": len(values), "median": med, "mean": statistics.fmean(values),
            "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / med if med else 0.0}


def _nbytes(x: Any) -> int:
    return math.prod(x.shape) * np.dtype(x.dtype).itemsize


def state_bytes(state: DecodeState | CacheState) -> dict[str, Any]:
    """Bytes a decode state holds (arrays or ShapeDtypeStructs): KV caches (every layer's
    ring), TTT inner weights, and the rest (next-token logits, pending chunk, clocks)."""
    if isinstance(state, DecodeState):
        caches, inner = state.seq.caches, state.seq.inner
    elif isinstance(state, CacheState):
        caches, inner = state.caches, None
    else:
        raise TypeError(f"not a decode state: {type(state).__name__}")
    kv = sum(_nbytes(c.k_BxKxSxD) + _nbytes(c.v_BxKxSxD) for c in caches)
    inner_b = sum(_nbytes(x) for x in jax.tree.leaves(inner)) if inner is not None else 0
    total = sum(_nbytes(x) for x in jax.tree.leaves(state))
    return {"source": SHAPES, "kv_cache": kv, "inner_weights": inner_b,
            "other": total - kv - inner_b, "total": total,
            "ring_slots": [c.k_BxKxSxD.shape[-2] for c in caches]}


# --------------------------------------------------------------------------------------
# Programs of one model
# --------------------------------------------------------------------------------------


class _Programs(NamedTuple):
    prefill: Callable[..., Any]  # (params, tokens_BxN) -> (decode state, summed NLL [B])
    step: Callable[..., Any]  # (params, state, tok_B) -> state


def _programs(graphdef: nnx.GraphDef, max_len: int | None, inner: InnerLoop,
              ttt: bool = True) -> _Programs:
    """Prefill and decode step with the weights as arguments (not constants baked into the
    program), the NLL summed so that nothing but the prompt grows with its length."""
    def decoder(params):
        model = nnx.merge(graphdef, params)
        if model.cfg.prime and not ttt:
            # the same state and token path, without the inner-step branch
            # (TTTRunner(ttt=False) would also drop the inner weights from the state)
            runner = TTTRunner(model, inner_lr=inner.lr, inner_clip=inner.clip, spec=inner.spec)
            runner.ttt = False
            return runner
        return decoder_for(model, max_len=max_len, inner_lr=inner.lr, inner_clip=inner.clip,
                           spec=inner.spec)

    def prefill(params, tokens_BxN):
        return decoder(params).prefill(tokens_BxN, per_token=False)

    def step(params, state, tok_B):
        return decoder(params).decode_step(state, tok_B)

    return _Programs(prefill, step)


def _cost_row(c: CompiledCosts, tokens: int) -> dict[str, Any]:
    return {"flops": c.flops,
            "flops_per_token": None if c.flops is None else c.flops / tokens,
            "xla_flops_loop_bodies_once": c.xla_flops, "temp_bytes": c.temp_bytes,
            "argument_bytes": c.argument_bytes, "output_bytes": c.output_bytes,
            "peak_bytes": c.peak_bytes}


def _synthetic_cache_state(abstract: CacheState, context: int, key: jax.Array) -> CacheState:
    """A KV-cache decode state of `context` consumed tokens with random keys and values:
    a step costs the same whatever its ring holds (it reads every slot)."""
    caches = []
    for ring in abstract.caches:
        key, kk, kv = jax.random.split(key, 3)
        caches.append(RingCache(
            jax.random.normal(kk, ring.k_BxKxSxD.shape, ring.k_BxKxSxD.dtype),
            jax.random.normal(kv, ring.v_BxKxSxD.shape, ring.v_BxKxSxD.dtype),
            jnp.asarray(context, ring.length.dtype),
            jnp.zeros(ring.start_B.shape, ring.start_B.dtype)))
    return CacheState(caches, jnp.zeros(abstract.logits_BxV.shape, abstract.logits_BxV.dtype),
                      jnp.full(abstract.position.shape, context, abstract.position.dtype))


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0, out


class _Bench:
    """One model's programs, compiled figures and timings (programs memoised, so that a
    program compiled for its costs is not compiled again to run)."""

    def __init__(self, model: Transformer, timing: Timing, inner: InnerLoop, batch: int,
                 seed: int):
        self.cfg = model.cfg
        self.kind = model_kind(model.cfg)
        self.graphdef, self.params = nnx.split(model)
        self.n_params = count_params(model)
        self.timing, self.inner, self.batch, self.seed = timing, inner, batch, seed
        b = self.cfg.mini_batch_size
        t = timing.decode_tokens
        self.decode_steps = -(-t // b) * b if self.kind == "ttt" else t
        self._progs: dict[tuple[int | None, bool], _Programs] = {}
        self._steps: dict[int | None, Any] = {}

    def max_len(self, context: int, room: bool = True) -> int | None:
        """Ring length of full-attention layers: the context plus the decoded tokens."""
        if self.kind != "fa":
            return None  # no full layer: every program is the same for every context
        return context + (self.timing.decode_warmup + self.decode_steps if room else 0)

    def programs(self, max_len: int | None, ttt: bool = True) -> _Programs:
        key = (max_len, ttt)
        if key not in self._progs:
            self._progs[key] = _programs(self.graphdef, max_len, self.inner, ttt)
        return self._progs[key]

    def _tokens(self, n: int) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct((self.batch, n), jnp.int32)

    def compiled(self, context: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(compiled costs of prefill and decode step, state bytes at `context`)."""
        B, tok = self.batch, jax.ShapeDtypeStruct((self.batch,), jnp.int32)
        p = self.programs(self.max_len(context))
        pre = compiled_costs(p.prefill, self.params, self._tokens(context))
        state = jax.eval_shape(p.prefill, self.params, self._tokens(context))[0]
        dec = compiled_costs(p.step, self.params, state, tok)
        decode = _cost_row(dec, B)
        if self.kind == "ttt" and dec.flops is not None:
            # the inner step sits behind a conditional, which the count takes as taken; the
            # same step without inner updates separates it, to amortise it over b tokens
            plain = compiled_costs(self.programs(None, ttt=False).step, self.params, state,
                                   tok).flops
            inner_step = dec.flops - plain
            decode.update(
                flops_per_step_with_inner_step=dec.flops, flops_per_step_without=plain,
                inner_step_flops=inner_step,
                flops_per_token=(plain + inner_step / self.cfg.mini_batch_size) / B,
                flops_per_token_note="amortised: one inner step per b tokens")
        if self.kind == "fa":  # the cache for exactly `context` tokens, no decoding room
            q = self.programs(self.max_len(context, room=False))
            state = jax.eval_shape(q.prefill, self.params, self._tokens(context))[0]
        costs = {"source": COMPILED, "prefill": _cost_row(pre, B * context),
                 "decode_step": decode}
        return costs, state_bytes(state)

    def time_prefill(self, context: int, prompt: jax.Array) -> tuple[dict[str, Any], Any]:
        """Warm-up, then timed runs: (figures, decode state the last run left)."""
        tm = self.timing
        ex = jax.jit(self.programs(self.max_len(context)).prefill).lower(
            self.params, prompt).compile()
        warm, out = [], None
        for _ in range(tm.warmup):
            out = None  # free the previous run's state before the next
            dt, out = _timed(ex, self.params, prompt)
            warm.append(dt)
        n = tm.repeats
        if tm.repeat_budget_s is not None and warm:
            n = max(1, min(n, int(tm.repeat_budget_s // warm[-1])))
        runs = []
        for _ in range(n):
            out = None
            dt, out = _timed(ex, self.params, prompt)
            runs.append(dt)
        st = sample_stats(runs)
        tokens = self.batch * context
        row = {"source": MEASURED, "n": st["n"], "warmup": tm.warmup,
               "repeats_asked": tm.repeats, "seconds": runs, "warmup_seconds": warm,
               "median_s": st["median"], "min_s": st["min"], "max_s": st["max"],
               "spread": st["spread"], "ms_per_token": st["median"] / tokens * 1e3,
               "tokens_per_s": tokens / st["median"]}
        return row, out[0]

    def step_program(self, context: int, state: Any) -> Any:
        key = self.max_len(context)
        if key not in self._steps:
            tok = jnp.zeros((self.batch,), jnp.int32)
            self._steps[key] = jax.jit(self.programs(key).step, donate_argnums=1).lower(
                self.params, state, tok).compile()
        return self._steps[key]

    def time_decode(self, context: int, state: Any, tokens_BxT: np.ndarray,
                    synthetic: bool) -> dict[str, Any]:
        """Decode steps from `state` (donated): warm-up, then `decode_steps` timed ones."""
        tm, b = self.timing, self.cfg.mini_batch_size
        step = self.step_program(context, state)
        toks = [jnp.asarray(tokens_BxT[:, j]) for j in range(tokens_BxT.shape[1])]
        for j in range(tm.decode_warmup):
            state = jax.block_until_ready(step(self.params, state, toks[j]))
        pending = np.asarray(state.n_pending) if isinstance(state, DecodeState) else None
        ms, inner_steps = [], 0
        for j in range(self.decode_steps):
            if pending is not None:  # the step takes the inner step when a chunk completes
                need = pending == b
                inner_steps += int(need.any())
                pending = np.where(need, 1, pending + 1)
            dt, state = _timed(step, self.params, state, toks[tm.decode_warmup + j])
            ms.append(dt * 1e3 / self.batch)
        st = sample_stats(ms)
        row = {"source": MEASURED, "state": "synthetic" if synthetic else "prefill",
               "n": st["n"], "warmup": tm.decode_warmup, "ms_per_token": st["median"],
               "ms_per_token_mean": st["mean"], "ms_per_token_min": st["min"],
               "ms_per_token_max": st["max"], "spread": st["spread"]}
        if pending is not None:
            row["inner_steps"] = inner_steps
        if synthetic:
            row["state_note"] = ("KV cache of random keys/values at this context: its prefill "
                                 "is not run here; a step reads every slot whatever it holds")
        return row


def _not_measured(reason: str) -> dict[str, Any]:
    return {"source": None, "not_measured": reason}


def _ratio(prefill: Mapping[str, Any], decode: Mapping[str, Any]) -> dict[str, Any] | None:
    if prefill.get("source") != MEASURED or decode.get("source") != MEASURED:
        return None
    pre = prefill["ms_per_token"]
    return {"source": MEASURED, "median": decode["ms_per_token"] / pre,
            "mean": decode["ms_per_token_mean"] / pre, "n_prefill": prefill["n"],
            "n_decode": decode["n"],
            "note": "decode ms/token (median; mean: with every inner step) over prefill "
                    "ms/token (median)"}


def _cap(measure_up_to: int | Mapping[str, int | None] | None, name: str) -> int | None:
    if isinstance(measure_up_to, Mapping):
        return measure_up_to.get(name)
    return measure_up_to


def efficiency(models: Mapping[str, Transformer], contexts: Sequence[int], *,
               timing: Timing = Timing(), timed: Sequence[int] | None = None,
               measure_up_to: int | Mapping[str, int | None] | None = None,
               inner: InnerLoop = PAPER_INNER_LOOP, batch: int = 1, seed: int = 0,
               progress: bool = False) -> dict[str, Any]:
    """Efficiency of each model (name -> model) at each context (prompt tokens per row).

    Compiled costs and state bytes at every context; wall-clock prefill at the contexts in
    `timed` (all by default) up to `measure_up_to` (one cap, or one per model name), and
    decode after each timed prefill (KV caches: also, from a synthetic cache, where the
    prefill is not timed). Contexts are run in increasing order. Plain-JSON result.
    """
    contexts = sorted(set(int(c) for c in contexts))
    timed_set = set(contexts if timed is None else (int(c) for c in timed))
    benches = {name: _Bench(m, timing, inner, batch, seed) for name, m in models.items()}
    rows: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in models}

    jobs = [(name, n) for name in models for n in contexts]
    for name, n in tqdm(jobs, desc="compiled costs", disable=not progress):
        costs, sbytes = benches[name].compiled(n)
        rows[name][n] = {"context": n, "batch": batch, "compiled": costs, "state_bytes": sbytes}

    def planned(name: str, n: int) -> bool:  # prefill to be timed (max_run_s aside)
        cap = _cap(measure_up_to, name)
        return n in timed_set and (cap is None or n <= cap)

    def weight(name: str, n: int, prefill: bool) -> float:  # work at a context, in FLOPs
        c = rows[name][n]["compiled"]
        pre = (c["prefill"]["flops"] or 0) * (timing.warmup + timing.repeats) if prefill else 0
        dec = (c["decode_step"]["flops_per_token"] or 0) * batch * benches[name].decode_steps
        return pre + dec

    plan = [(name, n) for name, n in jobs if planned(name, n) or benches[name].kind != "ttt"]
    total = sum(weight(name, n, planned(name, n)) for name, n in plan)
    bar = tqdm(total=total, desc="wall-clock", unit="FLOP", unit_scale=True,
               disable=not progress,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} FLOP [{elapsed}<{remaining}]")
    for name, n in plan:
        bench, row = benches[name], rows[name][n]
        bar.set_description(f"wall-clock {name}@{n}")
        rng = np.random.default_rng([seed, n])
        tokens = rng.integers(2, bench.cfg.vocab_size,
                              size=(batch, n + timing.decode_warmup + bench.decode_steps),
                              dtype=np.int32)
        reason = _skip_reason(name, n, rows[name], timed_set, _cap(measure_up_to, name), timing)
        timed_here, state = planned(name, n), None
        if reason is None:
            row["prefill"], state = bench.time_prefill(n, jnp.asarray(tokens[:, :n]))
        else:
            row["prefill"] = _not_measured(reason)
        if state is not None or bench.kind != "ttt":
            synthetic = state is None
            if synthetic:
                abstract = jax.eval_shape(bench.programs(bench.max_len(n)).prefill,
                                          bench.params, bench._tokens(n))[0]
                state = _synthetic_cache_state(abstract, n, jax.random.key(seed))
            row["decode"] = bench.time_decode(n, state, tokens[:, n:], synthetic)
        else:
            row["decode"] = _not_measured("TTT decodes from the state of a real prefill, which "
                                          "is not run at this context")
        row["decode_over_prefill"] = _ratio(row["prefill"], row["decode"])
        bar.update(weight(name, n, prefill=timed_here))
        if progress:
            tqdm.write(_line(name, row))
    bar.close()
    for name in models:  # contexts no plan entry covered (TTT, prefill not timed)
        for n in contexts:
            row = rows[name][n]
            if "prefill" not in row:
                row["prefill"] = _not_measured(_skip_reason(
                    name, n, rows[name], timed_set, _cap(measure_up_to, name), Timing()))
                row["decode"] = _not_measured("TTT decodes from the state of a real prefill, "
                                              "which is not run at this context")
                row["decode_over_prefill"] = None
    return {
        "sources": {
            MEASURED: "wall-clock of compiled programs run on this device, after warm-up; "
                      "n = timed samples",
            COMPILED: "XLA cost and memory analysis of the compiled program (never run): dot "
                      "FLOPs with loop bodies times their trip counts (ttt_model.costs), "
                      "temp bytes of XLA's buffer assignment",
            SHAPES: "bytes of the decode state's arrays, from their shapes"},
        "timing": asdict(timing) | {"timed_contexts": sorted(timed_set),
                                    "measure_up_to": measure_up_to},
        "platform": {"backend": jax.default_backend(),
                     "device": jax.devices()[0].device_kind, "jax": jax.__version__},
        "batch": batch,
        "contexts": contexts,
        "models": {name: {"kind": b.kind, "config": b.cfg.to_dict(), "params": b.n_params,
                          "decode_steps_timed": b.decode_steps,
                          "contexts": {str(n): rows[name][n] for n in contexts}}
                   for name, b in benches.items()},
    }


def _skip_reason(name: str, n: int, rows: Mapping[int, Mapping[str, Any]], timed: set[int],
                 cap: int | None, timing: Timing) -> str | None:
    """Why the prefill at context n is not timed, or None."""
    if n not in timed:
        return "not among the timed contexts"
    if cap is not None and n > cap:
        return f"above measure_up_to={cap} for {name}"
    if timing.max_run_s is None:
        return None
    done = [c for c, r in rows.items() if c < n and r.get("prefill", {}).get("source") == MEASURED]
    if not done:
        return None
    prev = max(done)
    f_prev = rows[prev]["compiled"]["prefill"]["flops"]
    f_n = rows[n]["compiled"]["prefill"]["flops"]
    if not f_prev or not f_n:
        return None
    predicted = rows[prev]["prefill"]["median_s"] * f_n / f_prev
    if predicted > timing.max_run_s:
        return (f"one run predicted to take {predicted:.0f} s (the {prev}-token run's median "
                f"scaled by compiled FLOPs) > max_run_s={timing.max_run_s:g}")
    return None


def _line(name: str, row: Mapping[str, Any]) -> str:
    n = row["context"]
    parts = [f"{name}@{n}:"]
    p, d = row["prefill"], row["decode"]
    if p.get("source") == MEASURED:
        parts.append(f"prefill {p['ms_per_token']:.3f} ms/token (n={p['n']})")
    if d.get("source") == MEASURED:
        parts.append(f"decode {d['ms_per_token']:.2f} ms/token (n={d['n']}, {d['state']})")
    r = row["decode_over_prefill"]
    if r:
        parts.append(f"decode/prefill {r['median']:.1f}x")
    c = row["compiled"]["prefill"]
    if c["flops_per_token"] is not None:
        parts.append(f"[compiled: prefill {c['flops_per_token'] / 1e6:.1f} MFLOP/token, "
                     f"temp {c['temp_bytes'] / 2**20:.0f} MiB]")
    return " ".join(parts)


# --------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------


def crossover(contexts: Sequence[float], a: Sequence[float | None],
              b: Sequence[float | None]) -> dict[str, Any]:
    """Context from which `a` (e.g. TTT's prefill ms/token) stays at or below `b` (FA's).

    log(a/b) is interpolated linearly in log(context) between the last context where a is
    above b and the next; `context` is None when a is above b at the largest compared
    context, or at or below it everywhere (the crossover lies outside the range). Contexts
    where either value is missing are not compared.
    """
    pts = sorted((float(c), float(x), float(y)) for c, x, y in zip(contexts, a, b, strict=True)
                 if x is not None and y is not None and x > 0 and y > 0)
    out: dict[str, Any] = {"context": None, "between": None,
                           "contexts_compared": [c for c, _, _ in pts]}
    if not pts:
        return out | {"method": "no context where both were measured"}
    d = [math.log(x / y) for _, x, y in pts]
    above = [i for i, v in enumerate(d) if v > 0]
    if not above:
        return out | {"method": f"at or below at every compared context: the crossover is "
                                f"at or below the smallest, {pts[0][0]:g}, outside the range"}
    i = above[-1]
    if i == len(pts) - 1:
        return out | {"method": f"still above at the largest compared context, "
                                f"{pts[-1][0]:g}: no crossover within the range"}
    (c0, _, _), (c1, _, _) = pts[i], pts[i + 1]
    t = d[i] / (d[i] - d[i + 1])
    ctx = math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0)))
    earlier = [pts[j][0] for j in range(i) if d[j] <= 0]
    return out | {"context": ctx, "between": [c0, c1], "earlier_at_or_below": earlier,
                  "method": f"log-log interpolation of the ratio between {c0:g} and {c1:g}, "
                            f"the last context above and the first of those at or below"}


def _points(model: Mapping[str, Any], source: str) -> dict[int, tuple[float, int]]:
    pts = {}
    for key, row in model["contexts"].items():
        if source == MEASURED:
            p = row["prefill"]
            if p.get("source") == MEASURED:
                pts[int(key)] = (p["ms_per_token"], p["n"])
        else:
            f = row["compiled"]["prefill"]["flops_per_token"]
            if f is not None:
                pts[int(key)] = (f, 1)
    return pts


def prefill_crossover(result: Mapping[str, Any], fast: str, slow: str,
                      source: str = MEASURED) -> dict[str, Any]:
    """`crossover` of model `fast`'s prefill cost per token against `slow`'s (names in
    `result`): measured ms/token by default, or compiled FLOPs per token (an estimate of
    where compute alone would cross, not a measurement)."""
    if source not in (MEASURED, COMPILED):
        raise ValueError(f"source must be {MEASURED!r} or {COMPILED!r}, got {source!r}")
    fa = _points(result["models"][fast], source)
    sa = _points(result["models"][slow], source)
    common = sorted(set(fa) & set(sa))
    out = crossover(common, [fa[c][0] for c in common], [sa[c][0] for c in common])
    what = ("prefill ms/token, measured" if source == MEASURED
            else "prefill FLOPs per token from compiled cost analysis (estimate, not measured)")
    return out | {"fast": fast, "slow": slow, "source": source, "quantity": what,
                  "samples": {str(c): [fa[c][1], sa[c][1]] for c in common}}


def summary_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (model, context) for a table: measured figures (None where not
    measured) next to compiled ones."""
    out = []
    for name, m in result["models"].items():
        for key, row in m["contexts"].items():
            p, d, r = row["prefill"], row["decode"], row["decode_over_prefill"]
            c, s = row["compiled"], row["state_bytes"]
            measured_p, measured_d = p.get("source") == MEASURED, d.get("source") == MEASURED
            out.append({
                "model": name, "context": int(key),
                "prefill_ms_per_token": p["ms_per_token"] if measured_p else None,
                "prefill_n": p["n"] if measured_p else 0,
                "prefill_spread": p["spread"] if measured_p else None,
                "decode_ms_per_token": d["ms_per_token"] if measured_d else None,
                "decode_ms_per_token_mean": d["ms_per_token_mean"] if measured_d else None,
                "decode_n": d["n"] if measured_d else 0,
                "decode_state": d.get("state"),
                "decode_over_prefill": r["median"] if r else None,
                "decode_over_prefill_mean": r["mean"] if r else None,
                "prefill_flops_per_token": c["prefill"]["flops_per_token"],
                "decode_flops_per_token": c["decode_step"]["flops_per_token"],
                "prefill_temp_bytes": c["prefill"]["temp_bytes"],
                "decode_temp_bytes": c["decode_step"]["temp_bytes"],
                "state_bytes": s["total"], "kv_cache_bytes": s["kv_cache"],
                "inner_weight_bytes": s["inner_weights"],
            })
    return out


# --------------------------------------------------------------------------------------
# Why batch-1 decoding costs what it costs
# --------------------------------------------------------------------------------------


def decode_diagnostics(model: Transformer, context: int, *, steps: int = 32, warmup: int = 3,
                       batch: int = 4, inner: InnerLoop = PAPER_INNER_LOOP,
                       seed: int = 0) -> dict[str, Any]:
    """After a real prefill of `context` tokens (one row): decode step time alternated
    (A/B, so that machine load hits both alike) with the time to read once every array the
    step reads (weights and caches: the memory-bandwidth floor of a batch-1 step), and
    ms/token when `batch` copies of the sequence decode as one batch (weights read once per
    step for all of them). TTT: `steps` rounded up to whole chunks of b."""
    timing = Timing(repeats=1, warmup=0, decode_tokens=steps, decode_warmup=warmup)
    bench = _Bench(model, timing, inner, 1, seed)
    n_steps = bench.decode_steps
    rng = np.random.default_rng([seed, context, 1])
    tokens = rng.integers(2, model.cfg.vocab_size, size=(1, context + warmup + n_steps),
                          dtype=np.int32)
    prefill = jax.jit(bench.programs(bench.max_len(context)).prefill)
    state = jax.block_until_ready(prefill(bench.params, jnp.asarray(tokens[:, :context])))[0]
    step = bench.step_program(context, state)
    params = jax.tree.leaves(bench.params)

    def rings(s):
        caches = s.seq.caches if isinstance(s, DecodeState) else s.caches
        return [a for c in caches for a in (c.k_BxKxSxD, c.v_BxKxSxD)]

    read_once = jax.jit(lambda xs: sum(jnp.sum(x) for x in xs))
    toks = [jnp.asarray(tokens[:, context + j]) for j in range(warmup + n_steps)]
    step_ms, read_ms = [], []
    read_bytes = 0
    for j in range(warmup + n_steps):
        dt, state = _timed(step, bench.params, state, toks[j])
        arrays = params + rings(state)
        dr, _ = _timed(read_once, arrays)
        read_bytes = sum(a.nbytes for a in arrays)
        if j >= warmup:
            step_ms.append(dt * 1e3)
            read_ms.append(dr * 1e3)
    # `batch` copies of the sequence: every leaf but the rings' shared clocks is batched
    state = jax.tree.map(lambda x: jnp.repeat(x, batch, axis=0) if x.ndim else x, state)
    bstep = jax.jit(bench.programs(bench.max_len(context)).step, donate_argnums=1).lower(
        bench.params, state, jnp.zeros((batch,), jnp.int32)).compile()
    batch_ms = []
    for j in range(warmup + n_steps):
        dt, state = _timed(bstep, bench.params, state, jnp.repeat(toks[j], batch))
        if j >= warmup:
            batch_ms.append(dt * 1e3 / batch)
    s, r, bm = sample_stats(step_ms), sample_stats(read_ms), sample_stats(batch_ms)
    return {"source": MEASURED, "context": context, "kind": bench.kind, "warmup": warmup,
            "step_ms": s["median"], "step_ms_mean": s["mean"], "step_n": s["n"],
            "read_once_ms": r["median"], "read_once_n": r["n"], "read_once_bytes": read_bytes,
            "step_over_read_once": s["median"] / r["median"],
            f"batch{batch}_ms_per_token": bm["median"],
            f"batch{batch}_ms_per_token_mean": bm["mean"], f"batch{batch}_n": bm["n"],
            "note": "step and read-once timed alternately; batch figures: step time / batch"}
