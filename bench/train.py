"""Training benchmark: tokens/s of whole `ttt train` stages (data pipeline, compiled step,
checkpoints) for the tiny FA, SWA and TTT-E2E configs (docs/models.md) on this machine.

Writes bench/results/train.json. Each variant trains a few steps on a synthetic token
store; tokens/s is the median over steps after the first (which compiles). The official
TTT-E2E code runs this tiny config at 6.6 s/step (FA) and 6.8 s/step (E2E) on this CPU.

    uv run python bench/train.py [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import jax

OUT = Path(__file__).parent / "results" / "train.json"
SEQ, BATCH = 2048, 2

# tiny config (docs/models.md): vocab 512, hidden 64, 4 layers, 4 heads, seq 2048, batch 2;
# E2E: inter 96, suffix 1, b 256, window 512 (paper family: QK-norm, pre+post norm).
TINY = {"model": "125m", "model.vocab_size": 512, "model.hidden_size": 64,
        "model.num_hidden_layers": 4, "model.num_attention_heads": 4,
        "model.intermediate_size": 128, "model.bos_token_id": 0, "model.eos_token_id": 1,
        "model.compute_dtype": "fp32", "model.sliding_window_size": 512,
        "model.mini_batch_size": 256, "model.attention_block_size": 256,
        "model.seq_len": SEQ}
VARIANTS = {
    "fa": {"model.seq_modeling_block": "self_attention", "training.train_mode": "pretrain"},
    "swa": {"model.seq_modeling_block": "SWA", "training.train_mode": "pretrain"},
    "e2e": {"model.seq_modeling_block": "SWA", "training.train_mode": "meta",
            "model.prime": True, "model.suffix_len": 1, "model.intermediate_size": 96,
            "training.ilr_init": 1.0},
}
OFFICIAL_S_PER_STEP = {"fa": 6.6, "e2e": 6.8}


def make_store(root: Path, tokens_needed: int) -> Path:
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.synth import write_synth_corpus
    from ttt_data.tokenization import tokenize_corpus

    docs = max(40, tokens_needed // 2000)
    corpus = write_synth_corpus(root / "corpus.jsonl", docs, words=1500)
    tok = train_bpe_tokenizer([corpus], root / "tokenizer", vocab_size=512)
    store = root / "store"
    tokenize_corpus(tok, [corpus], store, progress=False)
    return store


def run_variant(name: str, store: Path, work: Path, steps: int) -> dict:
    from ttt_train.config import compose_config
    from ttt_train.run_log import read_metrics
    from ttt_train.stage import run_stage

    settings = {**TINY, **VARIANTS[name], "training.exp_name": f"bench-{name}",
                "training.exp_folder": "bench", "training.exp_dir": work / "experiments",
                "training.checkpoint_path": work / "checkpoints",
                "training.dataset_path": store, "training.seq_length": SEQ,
                "training.global_batch_size": BATCH, "training.total_steps": steps,
                "training.optimizer_outer.lr_decay_steps": steps,
                "training.optimizer_outer.lr_warmup_steps": 1,
                "training.save_checkpoint_freq": steps, "training.eval_batches": 0,
                "training.log_freq": steps, "training.progress": False,
                "backend.compilation_cache_dir": None}
    overrides = [f"{k}={'null' if v is None else v}" for k, v in settings.items()]
    result = run_stage(compose_config(overrides))
    rows = read_metrics(result.run_dir)
    steady = [r["step_s"] for r in rows[1:]]
    median = statistics.median(steady)
    out = {"seconds_per_step_median": median, "seconds_per_step_min": min(steady),
           "first_step_seconds_incl_compile": rows[0]["step_s"],
           "tokens_per_second": BATCH * SEQ / median, "steps": steps,
           "final_train_loss": rows[-1]["loss"], "stage_wall_clock_s": result.wall_clock_s}
    if name in OFFICIAL_S_PER_STEP:
        out["official_seconds_per_step"] = OFFICIAL_S_PER_STEP[name]
        out["speedup_vs_official"] = OFFICIAL_S_PER_STEP[name] / median
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    devices = jax.devices()
    results = {
        "what": "tokens/s of `ttt train` stages (data pipeline + compiled train step + "
                "checkpoint), tiny config (docs/models.md), seq 2048, batch 2, float32; median "
                "step time after the first (compiling) step",
        "backend": jax.default_backend(), "device": str(devices[0].device_kind),
        "device_count": len(devices), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "jax": jax.__version__,
        "gpu": "none: no GPU was available to this session, so the paper's 125m at 8K "
               "(tokens/s, MFU) was not measured",
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = make_store(work, (args.steps + 2) * BATCH * (SEQ + 1))
        for name in VARIANTS:
            results["variants"][name] = r = run_variant(name, store, work, args.steps)
            print(f"{name}: {r['tokens_per_second']:,.0f} tok/s "
                  f"({r['seconds_per_step_median']:.3f} s/step)", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
