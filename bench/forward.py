"""Forward speed on CPU, side by side with Hugging Face transformers (PyTorch).

Writes bench/results/forward.json. One true-size Qwen2.5-0.5B (random weights, written
locally: nothing is fetched) is run by transformers (float32, its default attention, the
same number of threads as XLA's CPU client) and by ttt-model (float32, the reference
attention) on the same tokens, for two jobs:

- `logits`: the [T, vocab] logits of one sequence (what `model(ids)` returns);
- `nll`: the next-token NLL of its T targets (what an evaluation needs; transformers from its
  logits, ttt-model through `pretrain_loss`, which never holds all of them).

The two sides run alternately (A, B, A, B, ...) after one warm-up each, so drifts of the
machine hit both; the figure is the median seconds per call. Both sides' outputs are
compared (the same computation, to float32 rounding) before anything is timed.

    uv run python bench/forward.py [--quick] [--seq 2048] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

OUT = Path(__file__).parent / "results" / "forward.json"
MODEL = "qwen2_5_0_5b"
TARGET_RATIO = 1.2  # ttt-model tokens/s over transformers'


def _threads() -> int:
    return len(os.sched_getaffinity(0))


def build_sides(seq: int, snapshot: Path):
    import torch
    import transformers

    from ttt_import.checkpoints import model_from_params
    from ttt_import.convert import base_parameters, load_parameters, plan_import
    from ttt_import.standins import true_size_hf_config, write_random_snapshot
    from ttt_model.losses import pretrain_loss

    write_random_snapshot(snapshot, true_size_hf_config(MODEL), dtype="bfloat16")
    torch.set_num_threads(_threads())
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(snapshot), local_files_only=True, trust_remote_code=False, use_safetensors=True,
        dtype=torch.float32).eval()
    plan = plan_import(snapshot, param_dtype="float32")
    ours = model_from_params(plan.base_config, base_parameters(plan, load_parameters(plan)))

    @jax.jit
    def ours_logits(m, t):
        return m(t)

    @jax.jit
    def ours_nll(m, t):
        return pretrain_loss(m, t, average="token")[1]["token_nll"]

    def hf_logits(t):
        with torch.inference_mode():
            return hf(torch.as_tensor(np.asarray(t), dtype=torch.long)).logits

    def hf_nll(t):
        with torch.inference_mode():
            t = torch.as_tensor(np.asarray(t), dtype=torch.long)
            logits = hf(t[:, :-1]).logits
            return torch.nn.functional.cross_entropy(
                logits[0], t[0, 1:], reduction="none")[None]

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, plan.base_config.vocab_size, (1, seq + 1), dtype=np.int32)
    jobs = {
        "logits": (lambda: hf_logits(tokens[:, :seq]),
                   lambda: ours_logits(ours, jnp.asarray(tokens[:, :seq])).block_until_ready()),
        "nll": (lambda: hf_nll(tokens),
                lambda: ours_nll(ours, jnp.asarray(tokens)).block_until_ready()),
    }
    desc = (f"transformers {transformers.__version__} {type(hf).__name__}, torch "
            f"{torch.__version__}, float32, attention {hf.config._attn_implementation!r}, "
            f"{torch.get_num_threads()} threads")
    return jobs, desc


def agreement(hf_out, ours_out) -> float:
    return float(np.max(np.abs(hf_out.float().numpy() - np.asarray(ours_out, np.float32))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="T=256, 2 reps (a smoke run)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    seq, reps = (256, 2) if args.quick else (args.seq, args.reps)
    with tempfile.TemporaryDirectory() as tmp:
        jobs, desc = build_sides(seq, Path(tmp) / MODEL)
        rows = {}
        for job, (hf_fn, ours_fn) in jobs.items():
            diff = agreement(hf_fn(), ours_fn())  # also the warm-up (and our compile)
            times: dict[str, list[float]] = {"transformers": [], "ttt_model": []}
            for _ in tqdm(range(reps), desc=f"{job} A/B x{reps}"):
                for side, fn in (("transformers", hf_fn), ("ttt_model", ours_fn)):
                    t0 = time.perf_counter()
                    fn()
                    times[side].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}
            rows[job] = {
                "seconds_per_call": {k: round(v, 3) for k, v in med.items()},
                "tokens_per_s": {k: round(seq / v, 1) for k, v in med.items()},
                "ratio_ttt_over_transformers": round(med["transformers"] / med["ttt_model"], 3),
                "max_abs_diff": diff,
                "all_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            }
            tqdm.write(f"{job}: transformers {seq / med['transformers']:.0f} tok/s, ttt-model "
                       f"{seq / med['ttt_model']:.0f} tok/s, ratio "
                       f"{rows[job]['ratio_ttt_over_transformers']:.2f} (max |diff| {diff:.1e})")
    result = {
        "benchmark": f"forward of one {seq}-token sequence, {MODEL} at true size (random "
                     "weights), CPU float32, side by side (alternating A/B)",
        "reference": desc,
        "target": {"ratio_min": TARGET_RATIO, "job": "logits",
                   "met": rows["logits"]["ratio_ttt_over_transformers"] >= TARGET_RATIO},
        "seq_len": seq, "reps": reps, "jobs": rows,
        "machine": {"cpus": _threads(), "python": platform.python_version(),
                    "jax": jax.__version__, "platform": platform.platform()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
