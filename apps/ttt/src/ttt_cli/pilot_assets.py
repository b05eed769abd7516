"""Offline inputs of the pilot (`nox -s pilot`): everything the pipeline would otherwise
download, built locally and small enough for a CPU.

    python -m ttt_cli.pilot_assets --out DIR [--families qwen2_5_0_5b,smollm2_360m]

Writes
    DIR/corpora/dclm.jsonl     synthetic long-range documents of DCLM-like length
    DIR/corpora/books.jsonl    fewer, book-length synthetic documents (32K-stage data)
    DIR/hf/<family>/           a Hugging Face snapshot per family: the architecture of
                               configs/model/pilot/<family>.yaml built by `transformers`
                               with random weights (safetensors), plus a byte-level BPE
                               tokenizer trained here on the DCLM-like corpus

The pipeline then tokenizes both corpora with each family's tokenizer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from ttt_cli.config import compose_config
from ttt_cli.translate import model_config_of
from ttt_model.config import ModelConfig

HF_MODEL_TYPE = {"qwen2_5_0_5b": "qwen2", "qwen2_5_1_5b": "qwen2", "smollm2_135m": "llama",
                 "smollm2_360m": "llama"}
DCLM_DOCS, DCLM_WORDS = 240, 400
BOOKS_DOCS, BOOKS_WORDS = 48, 2400


def pilot_model_config(family: str) -> ModelConfig:
    """The tiny stand-in's architecture, read from configs/model/pilot/<family>.yaml."""
    return model_config_of(compose_config([f"model=pilot/{family}"]))


def build_corpora(out: Path, seed: int = 0) -> dict[str, Path]:
    from ttt_data.synth import write_synth_corpus

    corpora = out / "corpora"
    corpora.mkdir(parents=True, exist_ok=True)
    paths = {"dclm": corpora / "dclm.jsonl", "books": corpora / "books.jsonl"}
    if not paths["dclm"].exists():
        write_synth_corpus(paths["dclm"], DCLM_DOCS, seed=seed, words=DCLM_WORDS)
    if not paths["books"].exists():
        write_synth_corpus(paths["books"], BOOKS_DOCS, seed=seed + 1, words=BOOKS_WORDS)
    return paths


def build_snapshot(family: str, out: Path, corpus: Path, seed: int = 0) -> Path:
    """HF snapshot of the family's stand-in: tokenizer first (its vocab is the model's)."""
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.tokenizer import describe_tokenizer
    from ttt_import.families import get_family
    from ttt_import.standins import build_hf_snapshot

    target = out / "hf" / family
    if (target / "config.json").is_file():
        return target
    cfg = pilot_model_config(family)
    staging = out / "hf" / f".{family}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    tok_dir = staging / "tokenizer"
    train_bpe_tokenizer([corpus], tok_dir, vocab_size=cfg.vocab_size)
    info = describe_tokenizer(tok_dir)
    if info.vocab_size != cfg.vocab_size or (info.bos_id, info.eos_id) != \
            (cfg.bos_token_id, cfg.eos_token_id):
        raise ValueError(f"{family}: trained tokenizer has vocab {info.vocab_size}, bos/eos "
                         f"{info.bos_id}/{info.eos_id}; configs/model/pilot/{family}.yaml "
                         f"says {cfg.vocab_size}, {cfg.bos_token_id}/{cfg.eos_token_id}")
    hf = get_family(HF_MODEL_TYPE[family]).config_to_hf(cfg)
    build_hf_snapshot(staging / "model", hf, seed=seed)
    for d in ("model", "tokenizer"):
        for f in (staging / d).iterdir():
            shutil.move(str(f), staging / f.name)
        (staging / d).rmdir()
    staging.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default="qwen2_5_0_5b,smollm2_360m")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    corpora = build_corpora(args.out, args.seed)
    print(f"[assets] corpora: {corpora['dclm']} ({DCLM_DOCS} docs), {corpora['books']} "
          f"({BOOKS_DOCS} docs)", flush=True)
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        path = build_snapshot(family, args.out, corpora["dclm"], args.seed)
        print(f"[assets] {family}: HF snapshot with tokenizer at {path}", flush=True)
    print(f"[assets] ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
