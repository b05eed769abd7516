"""`ttt eval`: evaluations of a checkpoint; one module per subcommand.

    ttt eval score --checkpoint DIR (--tokens FILE.npy | --text FILE --tokenizer DIR) ...
    ttt eval bundle (--checkpoint DIR... | --exp-folder X) ...
"""

from __future__ import annotations

import argparse

from ttt_cli.commands.eval import bundle, score


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate checkpoints",
                                   description="Evaluations of a ttt-model checkpoint.")
    sub = parser.add_subparsers(dest="eval_command", required=True)
    score.register(sub)
    bundle.register(sub)
