"""Model benchmark: compiled FLOPs and memory of the paper's 125m train steps, tiny wall-clock.

Writes bench/results/model.json. The 125m figures come from XLA's compiled cost and
memory analysis on CPU (lowered and compiled, never run; batch 1, float32): FLOPs are
dot/convolution FLOPs with every while-loop body multiplied by its known trip count
(ttt_model.costs), next to XLA's raw figure that counts each body once. The tiny config
(docs/models.md) is run for wall-clock seconds per step.

    uv run python bench/model.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from tqdm import tqdm

from ttt_model.config import ModelConfig, TrainConfig, paper_config, tiny_config
from ttt_model.costs import compiled_costs
from ttt_model.inference import TTTRunner
from ttt_model.model import Transformer
from ttt_model.train import init_train_state, make_train_step

OUT = Path(__file__).parent / "results" / "model.json"
VARIANTS = {"fa": "pretrain", "swa": "pretrain", "e2e": "meta"}


def abstract_step(cfg: ModelConfig, tc: TrainConfig, batch: int, seq: int):
    """(step_fn, abstract state, abstract tokens): shapes only, nothing allocated."""
    graphdef, state = nnx.eval_shape(
        lambda: init_train_state(Transformer(cfg, rngs=nnx.Rngs(0)), tc))
    step = make_train_step(graphdef, tc, jit=False)
    tokens = jax.ShapeDtypeStruct((tc.grad_accum, batch, seq + 1), jnp.int32)
    return step, state, tokens


def measure_compiled(size: str, seqs: list[int]) -> dict:
    rows = {}
    jobs = [(v, s) for s in seqs for v in VARIANTS]
    for variant, seq in tqdm(jobs, desc=f"compile {size} steps"):
        cfg = paper_config(size, variant)
        tc = TrainConfig(train_mode=VARIANTS[variant], total_steps=1000, warmup_steps=10)
        step, state, tokens = abstract_step(cfg, tc, 1, seq)
        c = compiled_costs(step, state, tokens)
        rows[f"{variant}@{seq}"] = {
            "variant": variant, "seq_len": seq, "train_mode": tc.train_mode,
            "flops": c.flops, "xla_flops_loop_bodies_once": c.xla_flops,
            "temp_bytes": c.temp_bytes, "argument_bytes": c.argument_bytes,
            "output_bytes": c.output_bytes, "peak_bytes": c.peak_bytes,
            "while_loops": len(c.while_loops), "compile_seconds": round(c.compile_seconds, 1),
        }
        tqdm.write(f"{variant}@{seq}: {c.flops / 1e12:.2f} TFLOP, "
                   f"temp {c.temp_bytes / 2**30:.2f} GiB, compile {c.compile_seconds:.0f}s")
    return rows


def ratios(rows: dict, seqs: list[int]) -> dict:
    out = {}
    for s in seqs:
        fa = rows[f"fa@{s}"]
        for v in ("swa", "e2e"):
            r = rows[f"{v}@{s}"]
            out[f"{v}_over_fa_flops@{s}"] = r["flops"] / fa["flops"]
            out[f"{v}_over_fa_temp@{s}"] = r["temp_bytes"] / fa["temp_bytes"]
    if len(seqs) > 1:
        lo, hi = seqs[0], seqs[-1]
        for v in VARIANTS:
            out[f"{v}_temp_growth_{lo}_to_{hi}"] = (rows[f"{v}@{hi}"]["temp_bytes"]
                                                   / rows[f"{v}@{lo}"]["temp_bytes"])
            out[f"{v}_flops_growth_{lo}_to_{hi}"] = (rows[f"{v}@{hi}"]["flops"]
                                                    / rows[f"{v}@{lo}"]["flops"])
    return out


def memory_targets(r: dict) -> dict:
    """The memory targets of the E2E step against FA's (temp bytes, batch 1), met or not."""
    out = {"e2e_over_fa_temp@8192": {"target": "<= 1.5", "value": r["e2e_over_fa_temp@8192"],
                                     "met": r["e2e_over_fa_temp@8192"] <= 1.5}}
    growth = r.get("e2e_temp_growth_8192_to_32768")
    if growth is not None:
        out["e2e_temp_growth_8192_to_32768"] = {"target": "<= 2.1", "value": growth,
                                                "met": growth <= 2.1}
    return out


def measure_prefill(size: str, lengths: list[int]) -> dict:
    """TTT prefill of the E2E model (summed NLL): compiled temp memory at several lengths."""
    graphdef, params = nnx.split(nnx.eval_shape(
        lambda: Transformer(paper_config(size, "e2e"), rngs=nnx.Rngs(0))))

    def prefill(params, tokens):
        return TTTRunner(nnx.merge(graphdef, params)).prefill(tokens, per_token=False)

    out = {}
    for n in tqdm(lengths, desc=f"compile {size} prefill"):
        c = compiled_costs(prefill, params, jax.ShapeDtypeStruct((1, n + 1), jnp.int32))
        out[str(n)] = {"temp_bytes": c.temp_bytes, "argument_bytes": c.argument_bytes,
                       "output_bytes": c.output_bytes, "flops": c.flops}
        tqdm.write(f"prefill {n}: temp {c.temp_bytes / 2**30:.2f} GiB, "
                   f"{c.flops / 1e12:.1f} TFLOP")
    return out


ATTENTION_CASES = {"full@8192": (8192, None), "full@32768": (32768, None),
                   "sliding8192@32768": (32768, 8192)}


def measure_attention(size: str) -> dict:
    """Compiled FLOPs and temp bytes of one attention layer's forward + backward at the
    paper's head shape (batch 1, float32): the reference path, which skips the key blocks
    above the causal diagonal (and outside the window), beside every query block visiting
    every key block it might see (the reference before block skipping, kept here as the
    yardstick: `attend_blocked` without a window, every block over every key)."""
    from ttt_model.attention import attend_blocked, attend_sequence

    cfg = paper_config(size, "fa")
    H, hd, block = cfg.num_heads, cfg.dim_per_head, cfg.attention_block_size
    out = {}
    for name, (T, window) in tqdm(ATTENTION_CASES.items(), desc="compile attention"):
        x = jax.ShapeDtypeStruct((1, T, H, hd), jnp.float32)

        def grads(fn):
            return jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v)), argnums=(0, 1, 2))

        skip = compiled_costs(grads(functools.partial(attend_sequence, window=window,
                                                      block=block)), x, x, x)
        row = {"seq_len": T, "window": window, "block": block, "flops": skip.flops,
               "temp_bytes": skip.temp_bytes}
        if window is None:
            every = compiled_costs(grads(functools.partial(
                attend_blocked, q_offset=0, window=None, block=block)), x, x, x)
            row.update(every_block_flops=every.flops, every_block_temp_bytes=every.temp_bytes,
                       flops_over_every_block=skip.flops / every.flops)
        out[name] = row
        tqdm.write(f"attention {name}: {skip.flops / 1e12:.2f} TFLOP"
                   + (f" (every block: {row['every_block_flops'] / 1e12:.2f})"
                      if window is None else ""))
    return out


def wall_clock_tiny(steps: int) -> dict:
    """Seconds per train step of the tiny config (docs/models.md; seq 2048, batch 2), after
    compile."""
    out = {}
    for variant, mode in VARIANTS.items():
        cfg = tiny_config(variant)
        tc = TrainConfig(train_mode=mode, total_steps=1000, warmup_steps=10)
        graphdef, state = init_train_state(Transformer(cfg, rngs=nnx.Rngs(0)), tc)
        step = make_train_step(graphdef, tc)
        tokens = jax.random.randint(jax.random.key(0), (1, 2, 2049), 2, cfg.vocab_size)
        t0 = time.perf_counter()
        state, m = step(state, tokens)
        jax.block_until_ready(m["loss"])
        compile_s = time.perf_counter() - t0
        times = []
        for _ in tqdm(range(steps), desc=f"tiny {variant} steps", leave=False):
            t0 = time.perf_counter()
            state, m = step(state, tokens)
            jax.block_until_ready(m["loss"])
            times.append(time.perf_counter() - t0)
        times.sort()
        out[variant] = {"seconds_per_step_median": times[len(times) // 2],
                        "seconds_per_step_min": times[0], "first_call_seconds": compile_s,
                        "tokens_per_second": 2 * 2048 / times[len(times) // 2],
                        "final_loss": float(m["loss"])}
        tqdm.write(f"tiny {variant}: {out[variant]['seconds_per_step_median']:.3f} s/step")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8K only, 3 tiny steps")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    seqs = [8192] if args.quick else [8192, 32768]
    rows = measure_compiled("125m", seqs)
    result = {
        "what": "paper 125m train steps, batch 1, float32, compiled on CPU (not run); "
                "flops = dot FLOPs x while trip counts; temp = XLA temp buffer bytes",
        "jax": jax.__version__, "backend": jax.default_backend(),
        "machine": platform.machine(), "cpu_count": __import__("os").cpu_count(),
        "paper_125m": rows,
        "ratios": ratios(rows, seqs),
        "targets": {"e2e_over_fa_flops@8192": "<= 2.0", "e2e_temp_growth_8192_to_32768": "<= 4.5"},
        "memory_targets": memory_targets(ratios(rows, seqs)),
        "attention_125m": measure_attention("125m"),
        "prefill_125m_e2e": measure_prefill("125m", [8192, 32768] if args.quick
                                            else [8192, 32768, 131072, 524288]),
        "tiny_wall_clock": wall_clock_tiny(3 if args.quick else 10),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratios"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
