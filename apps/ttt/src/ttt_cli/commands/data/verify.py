"""`ttt data verify`: every chunk of a store against its manifest; exit 0 intact, 2 not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_data.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check every chunk of a store against its manifest",
                       description="Read every chunk of every split (and document index) and "
                                   "check it is present, decodes, and matches the CRC32C and "
                                   "sha256 the manifest recorded. Prints one verdict per split; "
                                   "exit 0 when intact, 2 naming the bad token ranges. Read "
                                   "only.")
    p.add_argument("store", type=Path, metavar="STORE")
    p.add_argument("--split", default=None, help="check only this split (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_data.verify import format_store_verdict, format_verdict, verify_store

    try:
        verdicts = verify_store(args.store, args.split, progress=not args.no_progress)
    except DataError as e:
        print(f"ttt data verify: {e}", file=sys.stderr)
        return 2
    for verdict in verdicts:
        print(format_verdict(verdict))
    print(format_store_verdict(args.store, verdicts))
    return 0 if all(v.intact for v in verdicts) else 2
