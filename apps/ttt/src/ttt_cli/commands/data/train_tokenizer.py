"""`ttt data train-tokenizer`: a small byte-level BPE in Hugging Face format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_data.corpus import FORMATS
from ttt_data.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tokenizer", help="train a small byte-level BPE tokenizer",
                       description="Train a byte-level BPE with `tokenizers` and save it in "
                                   "Hugging Face format with BOS/EOS tokens.")
    p.add_argument("--input", type=Path, nargs="+", action="extend", required=True,
                   metavar="PATH", help="corpus files or folders")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="snapshot folder")
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--field", default="text")
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--bos-token", default=None, help="default <|begin_of_text|>")
    p.add_argument("--eos-token", default=None, help="default <|end_of_text|>")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_data.bpe import DEFAULT_BOS, DEFAULT_EOS, train_bpe_tokenizer
    from ttt_data.tokenizer import describe_tokenizer, format_tokenizer

    try:
        out = train_bpe_tokenizer(
            args.input, args.out, vocab_size=args.vocab_size, fmt=args.format, field=args.field,
            bos_token=args.bos_token or DEFAULT_BOS, eos_token=args.eos_token or DEFAULT_EOS,
            min_frequency=args.min_frequency, overwrite=args.overwrite)
        info = describe_tokenizer(out)
    except (DataError, ValueError) as e:
        print(f"ttt data train-tokenizer: {e}", file=sys.stderr)
        return 2
    print(f"wrote tokenizer {out}: {format_tokenizer(info)}")
    return 0
