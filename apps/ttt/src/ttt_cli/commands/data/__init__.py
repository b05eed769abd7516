"""`ttt data`: token stores and corpora; one module per subcommand.

    ttt data tokenize --tokenizer DIR --input PATH... --out STORE [--val-fraction f] [--workers n]
                      [--strict]
    ttt data inspect STORE [--tokenizer DIR]
    ttt data verify STORE [--split S]
    ttt data synth --out PATH --docs N [--words W] [--seed S] [--kinds k,...]
    ttt data train-tokenizer --input PATH... --out DIR [--vocab-size V]

All work is done by ttt_data; these commands parse, call it, and print. Bad input is one
line on stderr and exit 2.
"""

from __future__ import annotations

import argparse

from ttt_cli.commands.data import inspect, synth, tokenize, train_tokenizer, verify


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="tokenize corpora into token stores, inspect stores, make corpora",
        description="Token stores (zarr v3 flat token arrays at <store>/<split> plus "
                    "manifest.json), written with the model family's own tokenizer.")
    sub = parser.add_subparsers(dest="data_command", required=True)
    for command in (tokenize, inspect, verify, synth, train_tokenizer):
        command.register(sub)
