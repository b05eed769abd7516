"""`ttt data tokenize`: a corpus -> a token store (train, val, manifest with checksums)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_data.corpus import FORMATS
from ttt_data.errors import DataError
from ttt_data.token_array import DEFAULT_CHUNK_TOKENS
from ttt_data.tokenization import DEFAULT_VAL_FRACTION


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="fraction of documents, evenly spread, that go to val; at least one "
                        "whenever there are two or more documents; 0 writes an empty val "
                        f"(default {DEFAULT_VAL_FRACTION})")
    p.add_argument("--strict", action="store_true",
                   help="refuse input that is not valid UTF-8, naming the file and byte offset "
                        "(default: replace it by U+FFFD and count it in the manifest)")
    p.add_argument("--workers", type=int, default=1, help="tokenizer processes (default 1)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="input format; auto: by extension, a folder's files are text documents")
    p.add_argument("--field", default="text", help="JSONL field / Parquet column (default text)")
    p.add_argument("--chunk-tokens", type=int, default=DEFAULT_CHUNK_TOKENS,
                   help="zarr chunk length in tokens")
    p.add_argument("--bos", action=argparse.BooleanOptionalAction, default=None,
                   help="prepend BOS to each document (default: the family's convention)")
    p.add_argument("--eos", action=argparse.BooleanOptionalAction, default=None,
                   help="append EOS to each document (default: the family's convention)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_data.summary import format_summary, summarize_store
    from ttt_data.tokenization import tokenize_corpus

    try:
        tokenize_corpus(
            args.tokenizer, args.input, args.out, fmt=args.format, field=args.field,
            val_fraction=args.val_fraction, strict_utf8=args.strict, workers=args.workers,
            chunk_tokens=args.chunk_tokens, add_bos=args.bos, add_eos=args.eos,
            overwrite=args.overwrite, progress=not args.no_progress)
        print(format_summary(summarize_store(args.out, sample_tokens=0)))
    except (DataError, ValueError) as e:
        print(f"ttt data tokenize: {e}", file=sys.stderr)
        return 2
    return 0
