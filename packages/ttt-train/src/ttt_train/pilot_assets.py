"""Offline inputs of the pilot (`nox -s pilot`): everything the pipeline would otherwise
download, built locally and small enough for a CPU.

    python -m ttt_train.pilot_assets --out DIR [--families qwen2_5_0_5b,smollm2_360m]

Writes
    DIR/corpora/dclm.jsonl     synthetic long-range documents of DCLM-like length
    DIR/corpora/books.jsonl    fewer, book-length synthetic documents (32K-stage data)
    DIR/corpora/web.jsonl      a separate corpus the stand-ins are pretrained on
    DIR/hf/<family>/           a Hugging Face snapshot per family: a byte-level BPE
                               tokenizer trained here on the DCLM-like corpus, and the
                               architecture of `model=pilot/<family>` pretrained
                               by `transformers` (PyTorch) on web.jsonl, a miniature public
                               checkpoint, so the adapter path warm-starts from weights that
                               already model the language (random weights would not)

The pipeline then tokenizes both corpora with each family's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from ttt_model.config import ModelConfig
from ttt_train.config import compose_config
from ttt_train.families import pipeline_default_families
from ttt_train.translate import model_config_of

DCLM_DOCS, DCLM_WORDS = 240, 400
BOOKS_DOCS, BOOKS_WORDS = 48, 2400
WEB_DOCS, WEB_WORDS = 240, 400
# The stand-in's "public pretraining": transformers/PyTorch, context of the pilot's 8K stage.
STANDIN_PRETRAIN = {"steps": 150, "seq_len": 256, "batch_size": 8, "lr": 3e-3,
                    "warmup_steps": 10}


def pilot_model_config(family: str) -> ModelConfig:
    """The tiny stand-in's architecture: the config `model=pilot/<family>` (built from
    the family registry)."""
    return model_config_of(compose_config([f"model=pilot/{family}"]))


def build_corpora(out: Path, seed: int = 0) -> dict[str, Path]:
    from ttt_data.synth import write_synth_corpus

    corpora = out / "corpora"
    corpora.mkdir(parents=True, exist_ok=True)
    plan = {"dclm": (DCLM_DOCS, seed, DCLM_WORDS), "books": (BOOKS_DOCS, seed + 1, BOOKS_WORDS),
            "web": (WEB_DOCS, seed + 2, WEB_WORDS)}
    paths = {}
    for name, (docs, corpus_seed, words) in plan.items():
        paths[name] = corpora / f"{name}.jsonl"
        if not paths[name].exists():
            write_synth_corpus(paths[name], docs, seed=corpus_seed, words=words)
    return paths


def build_snapshot(family: str, out: Path, corpora: dict[str, Path], seed: int = 0) -> Path:
    """HF snapshot of the family's stand-in: tokenizer first (its vocab is the model's),
    then the model pretrained on the web corpus. Rebuilt when its recipe changes."""
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.corpus import iter_documents
    from ttt_data.tokenizer import describe_tokenizer, encode_documents, load_tokenizer
    from ttt_import.families import get_family
    from ttt_import.registry import REGISTRY
    from ttt_import.standins import pretrain_hf_snapshot

    target = out / "hf" / family
    recipe = {"seed": seed, **STANDIN_PRETRAIN}
    marker = target / "standin.json"
    if marker.is_file() and json.loads(marker.read_text()).get("recipe") == recipe:
        return target
    cfg = pilot_model_config(family)
    staging = out / "hf" / f".{family}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    tok_dir = staging / "tokenizer"
    train_bpe_tokenizer([corpora["dclm"]], tok_dir, vocab_size=cfg.vocab_size)
    info = describe_tokenizer(tok_dir)
    if info.vocab_size != cfg.vocab_size or (info.bos_id, info.eos_id) != \
            (cfg.bos_token_id, cfg.eos_token_id):
        raise ValueError(f"{family}: trained tokenizer has vocab {info.vocab_size}, bos/eos "
                         f"{info.bos_id}/{info.eos_id}; model=pilot/{family} "
                         f"says {cfg.vocab_size}, {cfg.bos_token_id}/{cfg.eos_token_id}")
    hf = get_family(REGISTRY[family].profile.model_type).config_to_hf(cfg)
    texts = [doc.text for doc in iter_documents([corpora["web"]])]
    tokens, _ = encode_documents(load_tokenizer(tok_dir), info, texts)
    losses = pretrain_hf_snapshot(staging / "model", hf, tokens, seed=seed, **STANDIN_PRETRAIN)
    print(f"[assets] {family}: stand-in pretrained on {tokens.size:,} web tokens, "
          f"{STANDIN_PRETRAIN['steps']} steps, loss {losses[0]:.3f} -> "
          f"{sum(losses[-10:]) / 10:.3f} (last 10)", flush=True)
    for d in ("model", "tokenizer"):
        for f in (staging / d).iterdir():
            shutil.move(str(f), staging / f.name)
        (staging / d).rmdir()
    (staging / "standin.json").write_text(json.dumps(
        {"recipe": recipe, "pretrain_losses": losses, "web_tokens": int(tokens.size)},
        indent=2))
    shutil.rmtree(target, ignore_errors=True)  # a stand-in of an older recipe, if any
    staging.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default=",".join(pipeline_default_families()))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    corpora = build_corpora(args.out, args.seed)
    print(f"[assets] corpora: {corpora['dclm']} ({DCLM_DOCS} docs), {corpora['books']} "
          f"({BOOKS_DOCS} docs), {corpora['web']} ({WEB_DOCS} docs)", flush=True)
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        path = build_snapshot(family, args.out, corpora, args.seed)
        print(f"[assets] {family}: HF snapshot with tokenizer at {path}", flush=True)
    print(f"[assets] ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
