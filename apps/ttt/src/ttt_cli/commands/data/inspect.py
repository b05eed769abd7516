"""`ttt data inspect`: a store's manifest (or its splits) and a decoded sample."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_data.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print a store's manifest or splits, and a sample",
                       description="Print the manifest (or, for a store without one, its "
                                   "splits and token counts) and a decoded sample.")
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="decode the sample with this tokenizer snapshot")
    p.add_argument("--split", default=None, help="split to sample (default: first non-empty)")
    p.add_argument("--sample-tokens", type=int, default=64, help="ids to sample (default 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_data.summary import format_summary, summarize_store

    try:
        summary = summarize_store(args.store, tokenizer_dir=args.tokenizer,
                                  sample_tokens=args.sample_tokens, split=args.split)
    except DataError as e:
        print(f"ttt data inspect: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0
