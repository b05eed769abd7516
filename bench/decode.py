"""Decoding benchmark: prefill and decode ms/token of a small model as TTT-E2E, SWA and FA.

Writes bench/results/decode.json. The model: vocab 32000, hidden 256, 8 layers, 8 heads,
window 1024, b 256 (E2E: suffix 2 with prime MLPs), float32, batch 1, after prompts of
2K, 8K and 32K tokens. Prefill ms/token is one compiled prefill's wall-clock over its
prompt (median of 3 at 2K); decode ms/token the median of the timed steps after 3 of
warm-up (TTT: b consecutive steps, so that their mean also counts exactly one inner step).
Next to each decode figure: the time to read once every array a step must read (weights
and caches), timed alternately with the steps (at batch 1 on a CPU decoding is bound by
memory bandwidth, prefill by compute), and ms/token when 4 copies of the sequence decode
as one batch (step time / 4: the weights are read once per step).

    uv run python bench/decode.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.config import ModelConfig
from ttt_model.inference import decoder_for
from ttt_model.model import build_model

OUT = Path(__file__).parent / "results" / "decode.json"
KINDS = ("ttt", "swa", "fa")
DECODE_ROOM = 512  # FA: max_len = prompt + this
BATCH = 4  # the batched decode rows: ms/token = step time / BATCH


def small_config(kind: str) -> ModelConfig:
    return ModelConfig(
        name=f"small-{kind}", vocab_size=32000, hidden_size=256, intermediate_size=768,
        num_layers=8, num_heads=8, qk_norm=True, post_norm=True,
        attention="full" if kind == "fa" else "sliding", sliding_window=1024,
        mini_batch_size=256, attention_block_size=256, suffix_len=2 if kind == "ttt" else 0,
        prime=kind == "ttt", bos_token_id=0)


def wall(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0, out


def ring_arrays(state) -> list[jax.Array]:
    caches = state.seq.caches if hasattr(state, "seq") else state.caches  # TTT or KV cache
    return [a for c in caches for a in (c.k_BxKxSxD, c.v_BxKxSxD)]


def measure(kind: str, n_prompt: int, n_steps: int, prefill_reps: int) -> dict:
    model = build_model(small_config(kind))
    decoder = decoder_for(model, max_len=n_prompt + DECODE_ROOM)
    tokens = jax.random.randint(jax.random.key(0), (1, n_prompt + n_steps + 3), 2, 32000)
    prompt = tokens[:, :n_prompt]
    prefill = jax.jit(decoder.prefill).lower(prompt).compile()
    prefill_s = []
    for _ in range(prefill_reps):
        dt, (state, _) = wall(prefill, prompt)
        prefill_s.append(dt)
    step = jax.jit(decoder.decode_step, donate_argnums=0)
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    read_all = jax.jit(lambda xs: sum(jnp.sum(x) for x in xs))
    step_s, read_s = [], []
    for j in range(n_steps + 3):
        dt, state = wall(step, state, tokens[:, n_prompt + j])
        arrays = params + ring_arrays(state)
        dr, _ = wall(read_all, arrays)
        if j >= 3:
            step_s.append(dt)
            read_s.append(dr)
    # BATCH copies of this sequence decode together: the weights are read once per step
    state = jax.tree.map(lambda x: jnp.repeat(x, BATCH, axis=0) if x.ndim else x, state)
    batch_s = []
    for j in range(n_steps + 3):
        dt, state = wall(step, state, jnp.repeat(tokens[:, n_prompt + j], BATCH))
        if j >= 3:
            batch_s.append(dt / BATCH)
    prefill_ms = statistics.median(prefill_s) / n_prompt * 1e3
    decode_ms = statistics.median(step_s) * 1e3
    batch_ms = statistics.median(batch_s) * 1e3
    row = {"prompt": n_prompt, "prefill_ms_per_token": prefill_ms,
           "decode_ms_per_token": decode_ms, "decode_over_prefill": decode_ms / prefill_ms,
           "decode_steps_timed": len(step_s), "decode_ms_max": max(step_s) * 1e3,
           "read_once_ms": statistics.median(read_s) * 1e3,
           "read_once_mbytes": sum(a.nbytes for a in arrays) / 1e6,
           f"batch{BATCH}_decode_ms_per_token": batch_ms,
           f"batch{BATCH}_decode_over_prefill": batch_ms / prefill_ms}
    if kind == "ttt":  # b steps: one of them takes the inner step
        mean_ms = statistics.mean(step_s) * 1e3
        batch_mean_ms = statistics.mean(batch_s) * 1e3
        row.update(decode_ms_per_token_with_inner_steps=mean_ms,
                   decode_with_inner_steps_over_prefill=mean_ms / prefill_ms,
                   **{f"batch{BATCH}_decode_ms_per_token_with_inner_steps": batch_mean_ms})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2K prompts only")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    prompts = [2048] if args.quick else [2048, 8192, 32768]
    rows = {}
    for kind in KINDS:
        for n in prompts:
            steps = small_config(kind).mini_batch_size if kind == "ttt" else 16
            r = measure(kind, n, steps, prefill_reps=3 if n <= 2048 else 1)
            rows[f"{kind}@{n}"] = r
            print(f"{kind}@{n}: prefill {r['prefill_ms_per_token']:.3f} ms/token, decode "
                  f"{r['decode_ms_per_token']:.2f} ms/token ({r['decode_over_prefill']:.1f}x; "
                  f"reading its {r['read_once_mbytes']:.0f} MB once: {r['read_once_ms']:.2f} ms; "
                  f"batch {BATCH}: {r[f'batch{BATCH}_decode_ms_per_token']:.2f} ms/token)",
                  flush=True)
    result = {
        "what": "small model (vocab 32000, hidden 256, 8 layers, 8 heads, window 1024, b 256; "
                "E2E suffix 2), float32, batch 1 (and decode at batch 4): prefill and decode "
                "ms/token",
        "jax": jax.__version__, "backend": jax.default_backend(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
