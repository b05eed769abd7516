"""Benchmark of ttt-data; writes bench/results/data.json and prints the figures.

* Tokenization throughput (tokens/s, MB/s of UTF-8 text) of `tokenize_corpus` with 1 and
  2 worker processes, end to end (read JSONL, encode, write the zarr store + manifest),
  including worker start-up. Corpus: synthetic long-range documents (`ttt data synth`),
  tokenizer: a byte-level BPE (vocab 8192) trained here; nothing is downloaded.
* Pipeline throughput (batches/s, tokens/s) of the Grain pipeline (shuffled windows,
  batching, loss masks, read-ahead threads) at seq_len 8K and 32K over a 64M-token store
  made by repeating the tokenized corpus (real token statistics, so real compression).
  Target: more than 1M tokens/s.

Heavy imports live inside functions: tokenizer worker processes are spawned and re-import
this file as their main module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "data.json"
TARGET_TOKENS_PER_S = 1_000_000


def make_corpus(work: Path, docs: int, words: int, copies: int) -> list[Path]:
    """One synthetic JSONL file and `copies - 1` byte copies (distinct files, same text)."""
    from ttt_data.synth import write_synth_corpus

    first = write_synth_corpus(work / "corpus_00.jsonl", docs, seed=0, words=words)
    files = [first]
    for i in range(1, copies):
        files.append(work / f"corpus_{i:02d}.jsonl")
        shutil.copyfile(first, files[-1])
    return files


def bench_tokenize(work: Path, files: list[Path], tokenizer: Path, workers: int) -> dict:
    from ttt_data.tokenization import tokenize_corpus

    out = work / f"store_w{workers}"
    t0 = time.perf_counter()
    m = tokenize_corpus(tokenizer, files, out, val_fraction=0.01, workers=workers,
                        progress=False)
    dt = time.perf_counter() - t0
    return {"workers": workers, "seconds": round(dt, 3), "documents": m.documents,
            "tokens": m.tokens, "raw_bytes": m.raw_bytes,
            "tokens_per_s": round(m.tokens / dt), "mb_per_s": round(m.raw_bytes / dt / 1e6, 3),
            "fingerprint": m.fingerprint}


def build_pipeline_store(source: Path, out: Path, tokens: int) -> int:
    """Repeat the source store's train tokens into a `tokens`-long train split."""
    import numpy as np

    from ttt_data.store import open_split, write_group
    from ttt_data.token_array import DEFAULT_CHUNK_TOKENS, TOKEN_DTYPE, FlatArrayWriter

    src = np.asarray(open_split(source, "train").read().result())
    write_group(out)
    writer = FlatArrayWriter(out / "train", TOKEN_DTYPE, DEFAULT_CHUNK_TOKENS)
    while writer.length < tokens:
        writer.append(src[: tokens - writer.length])
    shutil.copyfile(source / "manifest.json", out / "manifest.json")  # bos id for masks
    return writer.close()


def bench_pipeline(store: Path, seq_len: int, batch: int, seconds: float, threads: int) -> dict:
    from ttt_data.pipeline import PipelineConfig, batches

    cfg = PipelineConfig(str(store), seq_len=seq_len, global_batch_size=batch, seed=0,
                         read_threads=threads, prefetch_batches=2 * threads)
    t0 = time.perf_counter()
    it = batches(cfg)
    first = next(it)
    first_s = time.perf_counter() - t0
    masked = int((~first["loss_mask"]).sum())
    for _ in range(2):
        next(it)
    n, t0 = 0, time.perf_counter()
    while (dt := time.perf_counter() - t0) < seconds:
        b = next(it)
        assert b["tokens"].shape == (batch, seq_len + 1)
        n += 1
    dt = time.perf_counter() - t0
    return {"seq_len": seq_len, "batch": batch, "read_threads": threads, "batches": n,
            "seconds": round(dt, 3), "batches_per_s": round(n / dt, 2),
            "tokens_per_s": round(n * batch * seq_len / dt),
            "first_batch_s": round(first_s, 3), "bos_targets_masked_in_first_batch": masked,
            "windows": len(it.source)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200, help="synthetic documents per file")
    ap.add_argument("--words", type=int, default=4000, help="filler words per document")
    ap.add_argument("--copies", type=int, default=6, help="corpus files (copies)")
    ap.add_argument("--pipeline-tokens", type=int, default=1 << 26)
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per pipeline run")
    ap.add_argument("--threads", type=int, default=4, help="pipeline read threads")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from ttt_data.bpe import train_bpe_tokenizer

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="ttt-data-bench-"))
    try:
        files = make_corpus(work, args.docs, args.words, args.copies)
        tok = train_bpe_tokenizer(files[:1], work / "tokenizer", vocab_size=8192)
        tokenize = [bench_tokenize(work, files, tok, w) for w in (1, 2)]
        assert tokenize[0]["fingerprint"] == tokenize[1]["fingerprint"]
        for r in tokenize:
            print(f"tokenize workers={r['workers']}: {r['tokens_per_s']:,} tokens/s "
                  f"({r['mb_per_s']} MB/s; {r['tokens']:,} tokens, {r['raw_bytes']:,} bytes, "
                  f"{r['seconds']} s)")
        store = work / "pipeline_store"
        n = build_pipeline_store(work / "store_w1", store, args.pipeline_tokens)
        pipeline = {}
        for seq_len, batch in ((8192, 8), (32768, 8)):
            r = bench_pipeline(store, seq_len, batch, args.seconds, args.threads)
            pipeline[str(seq_len)] = r
            print(f"pipeline seq_len={seq_len} batch={batch}: {r['batches_per_s']} batches/s, "
                  f"{r['tokens_per_s']:,} tokens/s (first batch {r['first_batch_s']} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    slowest = min(r["tokens_per_s"] for r in pipeline.values())
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    # Other processes on the machine skew the figures; load shows how busy.
                    "loadavg_1m_before": round(load_before[0], 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2)},
        "versions": {p: version(p) for p in ("ttt-data", "grain", "tensorstore", "tokenizers")},
        "corpus": {"kind": "synthetic long-range JSONL (ttt data synth)", "files": args.copies,
                   "docs_per_file": args.docs, "words_per_doc": args.words,
                   "tokenizer": "byte-level BPE, vocab 8192, trained locally"},
        "tokenize": {f"workers_{r['workers']}": r for r in tokenize},
        "tokenize_speedup_2_vs_1": round(
            tokenize[1]["tokens_per_s"] / tokenize[0]["tokens_per_s"], 3),
        "pipeline_store_tokens": n,
        "pipeline": pipeline,
        "pipeline_target_tokens_per_s": TARGET_TOKENS_PER_S,
        "pipeline_meets_target": slowest > TARGET_TOKENS_PER_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tokenize speedup 2 vs 1 workers: {result['tokenize_speedup_2_vs_1']}x; pipeline "
          f"slowest {slowest:,} tokens/s vs target {TARGET_TOKENS_PER_S:,}: "
          f"{'met' if result['pipeline_meets_target'] else 'NOT met'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
