"""`ttt export`: an FA or SWA checkpoint -> a Hugging Face snapshot `from_pretrained` loads.

    ttt export --checkpoint DIR --out HF_DIR [--family llama|qwen2|mistral]

SWA models of the Llama family are written as Mistral (HF Llama has no sliding window);
TTT models are refused (prime MLPs have no transformers counterpart).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_import.errors import ImportFailure
from ttt_import.families import FAMILIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export an FA/SWA checkpoint to Hugging Face format",
        description="Write model.safetensors + config.json that transformers' from_pretrained "
                    "loads, computing the same logits as the checkpoint.")
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="HF_DIR",
                        help="folder to create (must not exist or be empty)")
    parser.add_argument("--family", choices=sorted(FAMILIES), default=None,
                        help="HF family (default: from the import metadata)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_import.export import export_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.out, family=args.family)
    except ImportFailure as e:
        print(f"ttt export: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out} (model.safetensors, config.json)")
    return 0
