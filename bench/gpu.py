"""GPU figures of the kernels: one prepared run for a lent GPU (`--smoke`: tiny shapes, any
backend, to check the script itself).

Writes --out (default bench/results/gpu.json):
- attention: one layer at the paper 125m head shape (12 × 64, batch 1, bf16), causal, at 8K
  and 32K, for each `attention_impl` that runs here (reference, pallas, cudnn): forward and
  forward + backward seconds and TFLOP/s (causal FLOPs: 2 products of T²/2 · H · d MACs
  forward, 2.5x that backward);
- steps: the paper 125m FA pretrain step and E2E meta step at 8K (batch 1, bf16 compute):
  seconds per step, FA's MFU (XLA's trip-corrected compiled FLOPs / time / --peak-tflops) and
  E2E time / FA time;
- prefill: TTT-E2E prefill against FA's, ms/token at 32K and 128K (ttt_eval.efficiency).

Not part of `nox -s bench`, which runs on CPU: run `python bench/gpu.py` on the machine to
be measured.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from tqdm import tqdm

from ttt_model.attention import attend_sequence
from ttt_model.config import ModelConfig, TrainConfig, paper_config, tiny_config
from ttt_model.costs import compiled_costs
from ttt_model.model import Transformer
from ttt_model.train import init_train_state, make_train_step

OUT = Path(__file__).parent / "results" / "gpu.json"
IMPLS = ("reference", "pallas", "cudnn")


def timed(fn, *args, reps: int) -> list[float]:
    """Seconds of `reps` calls after one untimed (compiling) call."""
    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def _summary(seconds: list[float], flops: float | None) -> dict:
    med = statistics.median(seconds)
    return {"seconds_median": med, "seconds": seconds,
            "tflops_per_s": None if flops is None else flops / med / 1e12}


def measure_attention(seqs: list[int], heads: int, head_dim: int, reps: int) -> dict:
    rows = {}
    for T in seqs:
        shape = (1, T, heads, head_dim)
        q, k, v = (jax.random.normal(jax.random.key(i), shape, jnp.bfloat16) for i in range(3))
        fwd_flops = 2 * 2 * (T * T / 2) * heads * head_dim
        for impl in IMPLS:
            attn = functools.partial(attend_sequence, window=None, block=512, impl=impl)
            fwd = jax.jit(attn)
            both = jax.jit(jax.grad(lambda q, k, v, f=attn: jnp.sum(f(q, k, v).astype(
                jnp.float32)), argnums=(0, 1, 2)))
            try:
                row = {"forward": _summary(timed(fwd, q, k, v, reps=reps), fwd_flops),
                       "forward_backward": _summary(timed(both, q, k, v, reps=reps),
                                                    3.5 * fwd_flops)}
            except Exception as e:  # noqa: BLE001 - a backend without this impl: say why
                row = {"not_run": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            rows[f"{impl}@{T}"] = row
            tqdm.write(f"attention {impl}@{T}: " + (row.get("not_run") or
                       f"fwd {row['forward']['seconds_median'] * 1e3:.2f} ms, fwd+bwd "
                       f"{row['forward_backward']['seconds_median'] * 1e3:.2f} ms"))
    return rows


def measure_steps(cfgs: dict[str, ModelConfig], seq: int, reps: int, peak: float) -> dict:
    rows = {}
    for name, cfg in cfgs.items():
        mode = "meta" if cfg.prime else "pretrain"
        tc = TrainConfig(train_mode=mode, total_steps=1000, warmup_steps=10)
        graphdef, state = init_train_state(Transformer(cfg, rngs=nnx.Rngs(0)), tc)
        step = make_train_step(graphdef, tc, jit=False)
        tokens = jax.random.randint(jax.random.key(0), (1, 1, seq + 1), 2, cfg.vocab_size)
        costs = compiled_costs(step, state, tokens)
        compiled = jax.jit(step, donate_argnums=0)
        holder = {"state": state}

        def run(tokens, holder=holder, compiled=compiled):
            holder["state"], m = compiled(holder["state"], tokens)
            return m["loss"]

        row = _summary(timed(run, tokens, reps=reps), costs.flops)
        row.update(flops=costs.flops, train_mode=mode, attention_impl=cfg.attention_impl,
                   mfu=None if costs.flops is None else row["tflops_per_s"] / peak)
        rows[name] = row
        tqdm.write(f"step {name}@{seq}: {row['seconds_median'] * 1e3:.1f} ms"
                   + (f", MFU {row['mfu']:.1%}" if row["mfu"] is not None else ""))
    if {"fa", "e2e"} <= rows.keys():
        rows["e2e_over_fa_time"] = rows["e2e"]["seconds_median"] / rows["fa"]["seconds_median"]
    return rows


def measure_prefill(cfgs: dict[str, ModelConfig], contexts: list[int]) -> dict:
    from ttt_eval.efficiency import Timing, efficiency

    models = {name: Transformer(cfg, rngs=nnx.Rngs(0)) for name, cfg in cfgs.items()}
    result = efficiency(models, contexts, timing=Timing(repeats=2, warmup=1, decode_tokens=8),
                        progress=True)
    out = {}
    for name, m in result["models"].items():
        for n, row in m["contexts"].items():
            out[f"{name}@{n}"] = {"prefill": row.get("prefill"), "decode": row.get("decode")}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 1 rep (any backend)")
    ap.add_argument("--impl", default="auto", help="attention_impl of the measured steps")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="dense bf16 peak for MFU (H100/H200 SXM datasheet: 989)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma list of attention,steps,prefill")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    bf16 = dict(compute_dtype="bfloat16", attention_impl=args.impl)
    if args.smoke:
        seqs, heads, hd, reps = [256], 4, 16, 1
        steps = {v: tiny_config(v, **bf16) for v in ("fa", "e2e")}
        step_seq, contexts = 512, [512]
    else:
        seqs, heads, hd, reps = [8192, 32768], 12, 64, args.reps
        steps = {v: paper_config("125m", v, **bf16) for v in ("fa", "e2e")}
        step_seq, contexts = 8192, [32768, 131072]
    result = {"what": __doc__.splitlines()[0], "smoke": args.smoke,
              "device": str(jax.devices()[0]), "backend": jax.default_backend(),
              "jax": jax.__version__, "machine": platform.machine(),
              "peak_tflops": args.peak_tflops}
    if "attention" not in skip:
        result["attention"] = measure_attention(seqs, heads, hd, reps)
    if "steps" not in skip:
        result["steps"] = measure_steps(steps, step_seq, reps, args.peak_tflops)
    if "prefill" not in skip:
        result["prefill"] = measure_prefill({"fa": steps["fa"], "ttt": steps["e2e"]}, contexts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
