"""Efficiency benchmark: prefill and decode of a small model as TTT-E2E, SWA and FA, 2K-128K.

Writes bench/results/eval.json (ttt_eval.efficiency). The model: vocab 32000, hidden 256,
8 layers, 8 heads, window 1024, b 256 (E2E: suffix 2 with prime MLPs), float32, batch 1.
At every context, from XLA's compiled cost and memory analysis (never run): FLOPs per token
and temp bytes of the prefill and of one decode step; from the shapes: decode-state bytes.
By wall-clock, at the timed contexts: prefill ms/token (median of up to 3 runs after one
warm-up; fewer where one run is long, the count recorded), and decode ms/token after that
prompt (32 steps after 3 of warm-up; TTT 256, one inner step among them), from the state
the prefill left. FA is timed up to 8K (its 32K prefill alone takes minutes on 2 cores);
above, its decode runs from a synthetic cache of that context's size and is marked so.
Then: the context where TTT's prefill ms/token crosses below FA's (measured; and, as an
estimate, from compiled FLOPs), the decode/prefill ratio against the 3x target, and why
batch-1 decode costs what it does (step vs reading its arrays once, batch 4) at 2K.

    uv run python bench/eval.py [--quick] [--contexts 2048,8192] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from tqdm import tqdm

from ttt_eval.efficiency import (
    COMPILED,
    MEASURED,
    Timing,
    decode_diagnostics,
    efficiency,
    prefill_crossover,
    summary_rows,
)
from ttt_model.config import ModelConfig
from ttt_model.model import build_model

OUT = Path(__file__).parent / "results" / "eval.json"
KINDS = ("ttt", "swa", "fa")
CONTEXTS = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
TIMED = (2048, 4096, 8192, 32768, 131072)  # 16K and 64K: compiled costs only, for time
FA_TIMED_UP_TO = 8192
TARGET_DECODE_OVER_PREFILL = 3.0


def small_config(kind: str) -> ModelConfig:
    return ModelConfig(
        name=f"small-{kind}", vocab_size=32000, hidden_size=256, intermediate_size=768,
        num_layers=8, num_heads=8, qk_norm=True, post_norm=True,
        attention="full" if kind == "fa" else "sliding", sliding_window=1024,
        mini_batch_size=256, attention_block_size=256, suffix_len=2 if kind == "ttt" else 0,
        prime=kind == "ttt", bos_token_id=0)


def _figure(result: dict, model: str, context: int) -> dict:
    """Prefill ms/token where measured (with n), else only the compiled FLOPs per token."""
    row = result["models"][model]["contexts"][str(context)]
    p, c = row["prefill"], row["compiled"]["prefill"]
    out = {"prefill_flops_per_token": c["flops_per_token"], "flops_source": COMPILED,
           "prefill_temp_bytes": c["temp_bytes"]}
    if p.get("source") == MEASURED:
        out |= {"prefill_ms_per_token": p["ms_per_token"], "n": p["n"], "source": MEASURED}
    else:
        out |= {"prefill_ms_per_token": None, "not_measured": p["not_measured"]}
    return out


def headline(result: dict, contexts: list[int]) -> dict:
    lo, hi = contexts[0], contexts[-1]
    out: dict = {"contexts": [lo, hi]}
    for m in KINDS:
        a, b = _figure(result, m, lo), _figure(result, m, hi)
        out[m] = {str(lo): a, str(hi): b,
                  "flops_per_token_growth": b["prefill_flops_per_token"]
                  / a["prefill_flops_per_token"],
                  "temp_bytes_growth": b["prefill_temp_bytes"] / a["prefill_temp_bytes"]}
        if a.get("source") == MEASURED and b.get("source") == MEASURED:
            out[m]["ms_per_token_growth"] = b["prefill_ms_per_token"] / a["prefill_ms_per_token"]
    ratios, met = {}, {}
    for m in KINDS:
        for key, row in result["models"][m]["contexts"].items():
            r = row["decode_over_prefill"]
            if r:
                ratios.setdefault(m, {})[key] = {"median": r["median"], "mean": r["mean"],
                                                 "n_prefill": r["n_prefill"],
                                                 "n_decode": r["n_decode"]}
                met.setdefault(m, {})[key] = r["median"] <= TARGET_DECODE_OVER_PREFILL
    out["decode_over_prefill"] = ratios
    out["decode_over_prefill_target"] = {
        "target": f"<= {TARGET_DECODE_OVER_PREFILL:g}x (decode ms/token median over prefill "
                  "ms/token median)",
        "met": met, "met_everywhere": all(v for d in met.values() for v in d.values())}
    return out


def _fmt(x, spec: str, scale: float = 1.0) -> str:
    return "-" if x is None else format(x / scale, spec)


def print_table(result: dict) -> None:
    head = (f"{'model':5} {'ctx':>7} {'prefill ms/t':>13} {'decode ms/t':>15} {'dec/pre':>7} "
            f"{'pre MFLOP/t':>11} {'dec MFLOP/t':>11} {'pre temp MiB':>12} "
            f"{'dec temp MiB':>12} {'state MiB':>9}")
    print(head)
    print("-" * len(head))
    for r in summary_rows(result):
        pre = (f"{r['prefill_ms_per_token']:.3f} (n={r['prefill_n']})"
               if r["prefill_ms_per_token"] is not None else "-")
        dec = "-"
        if r["decode_ms_per_token"] is not None:
            dec = f"{r['decode_ms_per_token']:.2f}{'*' if r['decode_state'] == 'synthetic' else ''}"
            dec += f" (n={r['decode_n']})"
        print(f"{r['model']:5} {r['context']:>7} {pre:>13} {dec:>15} "
              f"{_fmt(r['decode_over_prefill'], '.1f'):>7} "
              f"{_fmt(r['prefill_flops_per_token'], '.1f', 1e6):>11} "
              f"{_fmt(r['decode_flops_per_token'], '.1f', 1e6):>11} "
              f"{_fmt(r['prefill_temp_bytes'], '.0f', 2**20):>12} "
              f"{_fmt(r['decode_temp_bytes'], '.1f', 2**20):>12} "
              f"{_fmt(r['state_bytes'], '.1f', 2**20):>9}")
    print("ms/t: measured (median, n samples); MFLOP/t, temp: compiled cost analysis; "
          "* decode from a synthetic cache (prefill not run at that context)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2K and 4K, 2 repeats, 8 decode steps")
    ap.add_argument("--contexts", type=lambda s: [int(x) for x in s.split(",") if x],
                    help="comma-separated contexts (all timed, FA up to 8K)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.contexts:
        contexts, timed = sorted(args.contexts), sorted(args.contexts)
    elif args.quick:
        contexts, timed = [2048, 4096], [2048, 4096]
    else:
        contexts, timed = list(CONTEXTS), list(TIMED)
    timing = (Timing(repeats=2, warmup=1, decode_tokens=8, decode_warmup=2) if args.quick
              else Timing(repeats=3, warmup=1, decode_tokens=32, decode_warmup=3,
                          repeat_budget_s=40.0, max_run_s=300.0))
    models = {k: build_model(small_config(k)) for k in KINDS}
    result = efficiency(models, contexts, timing=timing, timed=timed,
                        measure_up_to={"fa": FA_TIMED_UP_TO}, progress=True)
    diag = {}
    for k in tqdm(KINDS, desc=f"decode diagnostics @{contexts[0]}"):
        diag[k] = decode_diagnostics(models[k], contexts[0], steps=8 if args.quick else 32)
    result = {
        "what": "small model (vocab 32000, hidden 256, 8 layers, 8 heads, window 1024, b 256; "
                "E2E suffix 2), float32, batch 1: prefill and decode against context, "
                "measured where timed, compiled costs everywhere",
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "headline": headline(result, contexts),
        "prefill_crossover": prefill_crossover(result, "ttt", "fa"),
        "prefill_crossover_from_flops": prefill_crossover(result, "ttt", "fa", COMPILED),
        "decode_diagnostics": diag,
        **result,
    }
    result["runtime_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    x, xf = result["prefill_crossover"], result["prefill_crossover_from_flops"]
    print(f"crossover (TTT prefill ms/token below FA's, measured): "
          f"{_fmt(x['context'], '.0f')} - {x['method']}")
    print(f"crossover from compiled FLOPs (estimate): {_fmt(xf['context'], '.0f')} - "
          f"{xf['method']}")
    for k, d in diag.items():
        print(f"{k}@{d['context']}: step {d['step_ms']:.2f} ms vs reading its "
              f"{d['read_once_bytes'] / 1e6:.0f} MB once {d['read_once_ms']:.2f} ms; "
              f"batch 4: {d['batch4_ms_per_token']:.2f} ms/token")
    t = result["headline"]["decode_over_prefill_target"]
    print(f"decode/prefill <= {TARGET_DECODE_OVER_PREFILL:g}x met everywhere: "
          f"{t['met_everywhere']}")
    print(f"wrote {args.out} in {result['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
