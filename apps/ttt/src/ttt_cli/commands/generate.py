"""`ttt generate`: text from a checkpoint, streamed as it is decoded.

    ttt generate --checkpoint DIR --tokenizer DIR (--prompt TEXT | --prompt-file FILE)
                 --max-new-tokens N [--temperature T] [--top-k K] [--top-p P] [--seed S]
                 [--stop TEXT ...] [--ttt/--no-ttt] [--allow-tokenizer-mismatch]

Writes the generated text (not the prompt) to stdout as it is decoded, whole characters
only, then a newline. Greedy by default (temperature 0); a seed reproduces a sampled run.
Decoding stops at the tokenizer's EOS token (or the model's, if the tokenizer names none),
at any --stop text (each must be a single token of the tokenizer), or after N tokens. A
TTT-E2E checkpoint keeps learning while it decodes, with its run's inner lr, clip and spec
(--no-ttt decodes without inner steps). The prompt is framed as training framed documents
(BOS when the tokenizer's family adds one); a prompt file is used byte for byte (a trailing
newline included). The tokenizer must be the one the run trained with
(--allow-tokenizer-mismatch overrides). Errors are one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="generate text from a checkpoint",
                              description="Generate text from a ttt-model checkpoint, "
                                          "streamed to stdout.")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="DIR")
    p.add_argument("--tokenizer", type=Path, required=True, metavar="DIR",
                   help="folder with the run's tokenizer.json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT")
    src.add_argument("--prompt-file", type=Path, metavar="FILE", help="UTF-8 prompt text")
    p.add_argument("--max-new-tokens", type=int, required=True, metavar="N")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T",
                   help="0 (default) is greedy")
    p.add_argument("--top-k", type=int, default=None, metavar="K")
    p.add_argument("--top-p", type=float, default=None, metavar="P")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop at this token (repeatable; each a single token)")
    p.add_argument("--ttt", action=argparse.BooleanOptionalAction, default=None,
                   help="learn while decoding (default: when the model has prime MLPs)")
    p.add_argument("--allow-tokenizer-mismatch", action="store_true",
                   help="generate even if --tokenizer is not the run's tokenizer")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_eval.generate import read_prompt, stream_generation
    from ttt_eval.sampling import Sampling

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        sampling = Sampling(args.temperature, args.top_k, args.top_p, args.seed)
        prompt = args.prompt if args.prompt is not None else read_prompt(args.prompt_file)
        stream_generation(args.checkpoint, args.tokenizer, prompt, args.max_new_tokens, out,
                          sampling=sampling, stops=args.stop, ttt=args.ttt,
                          allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
    except EvalError as e:
        print(f"ttt generate: {e}", file=sys.stderr)
        return 2
    out("\n")
    return 0
