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
    from ttt_eval.generate import PromptCodec, load_generator
    from ttt_eval.sampling import Sampling

    def out(text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    try:
        sampling = Sampling(args.temperature, args.top_k, args.top_p, args.seed)
        if args.prompt is not None:
            prompt = args.prompt
        else:
            try:
                prompt = args.prompt_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise EvalError(f"{args.prompt_file}: cannot read UTF-8 text ({e})") from None
        codec = PromptCodec.load(args.tokenizer)
        generator = load_generator(args.checkpoint, args.max_new_tokens, ttt=args.ttt,
                                   tokenizer_dir=args.tokenizer,
                                   allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
        eos = codec.info.eos_id if codec.info.eos_id is not None else generator.cfg.eos_token_id
        stops = [codec.stop_id(s) for s in args.stop] + ([eos] if eos is not None else [])
        stream = codec.stream()

        def on_tokens(new: list[int | None]) -> None:
            if new[0] is not None:
                out(stream.push(new))

        generator.generate([codec.encode(prompt)], sampling=sampling, stop_ids=stops,
                           on_tokens=on_tokens)
    except EvalError as e:
        print(f"ttt generate: {e}", file=sys.stderr)
        return 2
    out(stream.flush() + "\n")
    return 0
