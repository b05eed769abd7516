"""`ttt data synth`: a deterministic synthetic corpus whose later text depends on facts
stated far earlier."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_cli.arg_types import names
from ttt_data.errors import DataError
from ttt_data.synth import KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic long-range corpus",
                       description="Documents whose later part depends on facts stated far "
                                   "earlier (key-value recall, repeated passages, needles); "
                                   "deterministic given the seed.")
    p.add_argument("--out", type=Path, required=True,
                   help="JSONL file, or folder with --format text")
    p.add_argument("--docs", type=int, required=True, help="number of documents")
    p.add_argument("--words", type=int, default=2000, help="filler words per document")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", type=names, default=",".join(KINDS),
                   help=f"comma-separated, taken in turn (default {','.join(KINDS)})")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_data.synth import write_synth_corpus

    try:
        out = write_synth_corpus(args.out, args.docs, seed=args.seed, words=args.words,
                                 kinds=args.kinds, fmt=args.format, overwrite=args.overwrite)
    except (DataError, ValueError) as e:
        print(f"ttt data synth: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.docs} synthetic documents ({', '.join(args.kinds)}; seed {args.seed}) "
          f"to {out}")
    return 0
