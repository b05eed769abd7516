"""`ttt data`: token stores and corpora.

    ttt data tokenize --tokenizer DIR --input PATH... --out STORE [--val-fraction f] [--workers n]
                      [--strict]
    ttt data inspect STORE [--tokenizer DIR]
    ttt data verify STORE [--split S]
    ttt data synth --out PATH --docs N [--words W] [--seed S] [--kinds k,...]
    ttt data train-tokenizer --input PATH... --out DIR [--vocab-size V]

All work is done by ttt_data; these commands parse, call it, and print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_data.corpus import FORMATS as _FORMATS
from ttt_data.errors import DataError
from ttt_data.synth import KINDS as _KINDS
from ttt_data.tokenization import DEFAULT_VAL_FRACTION as _VAL_FRACTION


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="tokenize corpora into token stores, inspect stores, make corpora",
        description="Token stores (zarr v3 flat token arrays at <store>/<split> plus "
                    "manifest.json), written with the model family's own tokenizer.")
    sub = parser.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("tokenize", help="tokenize a corpus into a token store",
                       description="Tokenize text files/folders, JSONL or Parquet with a local "
                                   "tokenizer snapshot into <out>/train, <out>/val and "
                                   "<out>/manifest.json (with a CRC32C per chunk, checked as "
                                   "the store is read). The same input gives the same bytes. "
                                   "Invalid UTF-8 is replaced by U+FFFD and counted (refused "
                                   "with --strict); binary files in input folders are skipped "
                                   "and listed; an empty corpus is refused.")
    p.add_argument("--tokenizer", type=Path, required=True, metavar="DIR",
                   help="tokenizer snapshot folder (tokenizer.json, tokenizer_config.json, ...)")
    p.add_argument("--input", type=Path, nargs="+", action="extend", required=True,
                   metavar="PATH", help="corpus files or folders (sorted before reading)")
    p.add_argument("--out", type=Path, required=True, metavar="STORE", help="store folder to write")
    p.add_argument("--val-fraction", type=float, default=_VAL_FRACTION,
                   help="fraction of documents, evenly spread, that go to val; at least one "
                        "whenever there are two or more documents; 0 writes an empty val "
                        f"(default {_VAL_FRACTION})")
    p.add_argument("--strict", action="store_true",
                   help="refuse input that is not valid UTF-8, naming the file and byte offset "
                        "(default: replace it by U+FFFD and count it in the manifest)")
    p.add_argument("--workers", type=int, default=1, help="tokenizer processes (default 1)")
    p.add_argument("--format", choices=_FORMATS, default="auto",
                   help="input format; auto: by extension, a folder's files are text documents")
    p.add_argument("--field", default="text", help="JSONL field / Parquet column (default text)")
    p.add_argument("--chunk-tokens", type=int, default=None, help="zarr chunk length in tokens")
    p.add_argument("--bos", action=argparse.BooleanOptionalAction, default=None,
                   help="prepend BOS to each document (default: the family's convention)")
    p.add_argument("--eos", action=argparse.BooleanOptionalAction, default=None,
                   help="append EOS to each document (default: the family's convention)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_tokenize)

    p = sub.add_parser("inspect", help="print a store's manifest or splits, and a sample",
                       description="Print the manifest (or, for a store without one, its "
                                   "splits and token counts) and a decoded sample.")
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="decode the sample with this tokenizer snapshot")
    p.add_argument("--split", default=None, help="split to sample (default: first non-empty)")
    p.add_argument("--sample-tokens", type=int, default=64, help="ids to sample (default 64)")
    p.set_defaults(func=run_inspect)

    p = sub.add_parser("verify", help="check every chunk of a store against its manifest",
                       description="Read every chunk of every split (and document index) and "
                                   "check it is present, decodes, and matches the CRC32C and "
                                   "sha256 the manifest recorded. Prints one verdict per split; "
                                   "exit 0 when intact, 2 naming the bad token ranges. Read "
                                   "only.")
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--split", default=None, help="check only this split (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("synth", help="write a synthetic long-range corpus",
                       description="Documents whose later part depends on facts stated far "
                                   "earlier (key-value recall, repeated passages, needles); "
                                   "deterministic given the seed.")
    p.add_argument("--out", type=Path, required=True,
                   help="JSONL file, or folder with --format text")
    p.add_argument("--docs", type=int, required=True, help="number of documents")
    p.add_argument("--words", type=int, default=2000, help="filler words per document")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default=",".join(_KINDS),
                   help=f"comma-separated, taken in turn (default {','.join(_KINDS)})")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_synth)

    p = sub.add_parser("train-tokenizer", help="train a small byte-level BPE tokenizer",
                       description="Train a byte-level BPE with `tokenizers` and save it in "
                                   "Hugging Face format with BOS/EOS tokens.")
    p.add_argument("--input", type=Path, nargs="+", action="extend", required=True,
                   metavar="PATH", help="corpus files or folders")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="snapshot folder")
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--format", choices=_FORMATS, default="auto")
    p.add_argument("--field", default="text")
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--bos-token", default=None, help="default <|begin_of_text|>")
    p.add_argument("--eos-token", default=None, help="default <|end_of_text|>")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_train_tokenizer)


def _fail(command: str, error: Exception) -> int:
    print(f"ttt data {command}: {error}", file=sys.stderr)
    return 2


def run_tokenize(args: argparse.Namespace) -> int:
    from ttt_data.summary import format_summary, summarize_store
    from ttt_data.tokenization import tokenize_corpus

    extra = {} if args.chunk_tokens is None else {"chunk_tokens": args.chunk_tokens}
    try:
        tokenize_corpus(
            args.tokenizer, args.input, args.out, fmt=args.format, field=args.field,
            val_fraction=args.val_fraction, strict_utf8=args.strict, workers=args.workers,
            add_bos=args.bos, add_eos=args.eos, overwrite=args.overwrite,
            progress=not args.no_progress, **extra)
        print(format_summary(summarize_store(args.out, sample_tokens=0)))
    except (DataError, ValueError) as e:
        return _fail("tokenize", e)
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from ttt_data.summary import format_summary, summarize_store

    try:
        summary = summarize_store(args.store, tokenizer_dir=args.tokenizer,
                                  sample_tokens=args.sample_tokens, split=args.split)
    except DataError as e:
        return _fail("inspect", e)
    print(format_summary(summary))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ttt_data.verify import format_verdict, verify_store

    try:
        verdicts = verify_store(args.store, args.split, progress=not args.no_progress)
    except DataError as e:
        return _fail("verify", e)
    for verdict in verdicts:
        print(format_verdict(verdict))
    bad = [v.split for v in verdicts if not v.intact]
    if bad:
        print(f"token store {args.store}: CORRUPT in split(s) {', '.join(bad)}")
        return 2
    print(f"token store {args.store}: intact ({len(verdicts)} split(s))")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from ttt_data.synth import write_synth_corpus

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    try:
        out = write_synth_corpus(args.out, args.docs, seed=args.seed, words=args.words,
                                 kinds=kinds, fmt=args.format, overwrite=args.overwrite)
    except (DataError, ValueError) as e:
        return _fail("synth", e)
    print(f"wrote {args.docs} synthetic documents ({', '.join(kinds)}; seed {args.seed}) to {out}")
    return 0


def run_train_tokenizer(args: argparse.Namespace) -> int:
    from ttt_data.bpe import DEFAULT_BOS, DEFAULT_EOS, train_bpe_tokenizer
    from ttt_data.tokenizer import describe_tokenizer

    try:
        out = train_bpe_tokenizer(
            args.input, args.out, vocab_size=args.vocab_size, fmt=args.format, field=args.field,
            bos_token=args.bos_token or DEFAULT_BOS, eos_token=args.eos_token or DEFAULT_EOS,
            min_frequency=args.min_frequency, overwrite=args.overwrite)
        info = describe_tokenizer(out)
    except (DataError, ValueError) as e:
        return _fail("train-tokenizer", e)
    print(f"wrote tokenizer {out}: vocab {info.vocab_size}, bos {info.bos_token!r}={info.bos_id}, "
          f"eos {info.eos_token!r}={info.eos_id}, sha256 {info.sha256}")
    return 0
