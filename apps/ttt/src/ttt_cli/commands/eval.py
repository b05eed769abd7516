"""`ttt eval`: evaluations of a checkpoint.

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
import json
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate checkpoints",
                                   description="Evaluations of a ttt-model checkpoint.")
    sub = parser.add_subparsers(dest="eval_command", required=True)
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
    p.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_eval.score import load_tokens, score_checkpoint, tokenize_text

    if args.text is not None and args.tokenizer is None:
        print("ttt eval score: --text needs --tokenizer DIR", file=sys.stderr)
        return 2
    try:
        tokens = (load_tokens(args.tokens) if args.tokens is not None
                  else tokenize_text(args.text, args.tokenizer))
        result = score_checkpoint(args.checkpoint, tokens, ttt=args.ttt,
                                  tokenizer_dir=args.tokenizer if args.text else None,
                                  allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
    except EvalError as e:
        print(f"ttt eval score: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result) + "\n")
    os.replace(tmp, args.out)
    how = (f"ttt, inner lr {result['inner_lr']:.4g} from the run's {result['settings_from']}"
           if result["ttt"] else "no ttt")
    print(f"scored {result['num_sequences']} x {result['tokens_per_sequence']} tokens "
          f"({how}; {result['counted_targets']} counted targets): mean NLL "
          f"{result['mean_nll']:.4f} -> {args.out}")
    return 0
