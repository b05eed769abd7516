"""`ttt eval score`: per-token NLL of tokens or a text under a checkpoint.

    ttt eval score --checkpoint DIR (--tokens FILE.npy | --text FILE --tokenizer DIR)
                   [--ttt/--no-ttt] --out FILE.json

`score` writes {"token_nll": [[...]], "mean_nll": x, ...}: one row of N-1 next-token NLLs
per sequence (tokens: a 1-D or 2-D integer array); `mean_nll` counts targets as training
does (BOS targets are not counted). With --ttt the sequence is consumed by the TTT inner
loop (prefill) with the run's own inner lr, clip and spec; --no-ttt runs the model once;
default: --ttt for a model with prime MLPs. A text's tokenizer must be the one the run was
trained with (--allow-tokenizer-mismatch overrides). A corrupt checkpoint or a non-finite
score exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="per-token NLL of tokens or a text under a checkpoint",
                       description="Per-token next-token NLL and its mean.")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", type=Path, metavar="FILE.npy",
                     help="1-D or 2-D integer array of token ids")
    src.add_argument("--text", type=Path, metavar="FILE", help="UTF-8 text (needs --tokenizer)")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="folder with tokenizer.json (for --text)")
    p.add_argument("--ttt", action=argparse.BooleanOptionalAction, default=None,
                   help="score with the TTT inner loop (default: when the model has prime MLPs)")
    p.add_argument("--allow-tokenizer-mismatch", action="store_true",
                   help="score a text even if --tokenizer is not the run's tokenizer")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_eval.score import describe_score, score_file, write_score

    if args.text is not None and args.tokenizer is None:
        print("ttt eval score: --text needs --tokenizer DIR", file=sys.stderr)
        return 2
    try:
        result = score_file(args.checkpoint, tokens_file=args.tokens, text_file=args.text,
                            tokenizer_dir=args.tokenizer, ttt=args.ttt,
                            allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
    except EvalError as e:
        print(f"ttt eval score: {e}", file=sys.stderr)
        return 2
    print(describe_score(result, write_score(result, args.out)))
    return 0
