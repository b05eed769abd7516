"""`ttt import`: a local Hugging Face snapshot -> a ttt-model checkpoint, audited.

    ttt import [--model KEY|auto] --hf-dir DIR --out DIR [--recipe fa|swa|ttt] [--window K]
               [--suffix-len N] [--prime-init zeros|copy|normal] [--no-parity]

Writes <out>/0/... (orbax, step 0; training loads it with load_part=params), <out>/latest.json
and <out>/audit.{json,md}. Any unjustified difference or failed parity writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_import.errors import ImportFailure
from ttt_import.profiles import PROFILES
from ttt_import.recipes import DEFAULT_WINDOW, PRIME_INITS, RECIPES
from ttt_model.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import", help="import a local HF snapshot (audit + logits parity)",
        description="Convert a local Hugging Face snapshot (config.json + safetensors) into a "
                    "ttt-model checkpoint with a recipe (fa as is, swa window K, ttt prime "
                    "MLPs in the last N blocks), audited and checked for logits parity "
                    "against transformers. Never downloads; refuses pickle checkpoints.")
    parser.add_argument("--model", default="auto", choices=[*sorted(PROFILES), "auto"],
                        metavar="KEY|auto",
                        help="profile to check the snapshot against (default auto: the family "
                             "from config.json's model_type, any size)")
    parser.add_argument("--hf-dir", type=Path, required=True, metavar="DIR",
                        help="local snapshot folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="checkpoint folder to create (must not exist or be empty)")
    parser.add_argument("--recipe", choices=RECIPES, default="fa", help="default fa")
    parser.add_argument("--window", type=int, default=None, metavar="K",
                        help=f"sliding window for swa/ttt (default {DEFAULT_WINDOW})")
    parser.add_argument("--suffix-len", type=int, default=None, metavar="N",
                        help="ttt: blocks that get a prime MLP (default: a quarter of depth)")
    parser.add_argument("--prime-init", choices=PRIME_INITS, default="zeros",
                        help="ttt: prime MLP init (default zeros: function-preserving)")
    parser.add_argument("--mini-batch-size", type=int, default=None, metavar="B",
                        help="TTT chunk size (default: the model config's, 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random prime weights")
    parser.add_argument("--param-dtype", choices=("auto", "float32", "bfloat16"),
                        default="auto",
                        help="dtype of the stored parameters (default auto: the snapshot's "
                             "own, bit for bit; training restores into its own dtype)")
    parser.add_argument("--no-parity", dest="parity", action="store_false",
                        help="skip the logits check against transformers")
    parser.add_argument("--parity-tol", type=float, default=None, metavar="X",
                        help="max |Δlogit| allowed (default 1e-3)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_import.convert import describe_import, import_snapshot
    from ttt_import.parity import DEFAULT_TOLERANCE
    from ttt_import.recipes import Recipe

    try:
        recipe = Recipe(args.recipe, window=args.window, suffix_len=args.suffix_len,
                        prime_init=args.prime_init, mini_batch_size=args.mini_batch_size,
                        seed=args.seed)
        result = import_snapshot(args.hf_dir, args.out, model=args.model, recipe=recipe,
                                 parity=args.parity, param_dtype=args.param_dtype,
                                 tolerance=args.parity_tol or DEFAULT_TOLERANCE)
    except (ImportFailure, ConfigError) as e:
        print(f"ttt import: {e}", file=sys.stderr)
        return 2
    print(describe_import(result, args.hf_dir))
    return 0
