"""`ttt profile`: the pinned facts of supported public checkpoints (docs/models.md).

    ttt profile list
    ttt profile show KEY [--json]
    ttt profile prepare --model KEY|all [--hf-dir DIR] [--root DIR] [--hf-cache DIR]

`prepare` never downloads: it reads a local snapshot (`--hf-dir`, or the local hub cache),
checks its config.json against the profile, and writes
<root>/<key>/{hf_config.json, model_profile.json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ttt_import.errors import ImportFailure
from ttt_import.profile_text import count_profile, describe_prepared, profile_keys, profiles_table
from ttt_import.profiles import DEFAULT_ROOT, PROFILES, prepare_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile", help="pinned facts of supported HF checkpoints; prepare them locally",
        description="Model profiles: HF id, pinned revision and architecture facts of each "
                    "supported checkpoint; `prepare` records a local snapshot's revision and "
                    "config sha256 after checking it against the profile.")
    sub = parser.add_subparsers(dest="profile_command", required=True)
    p = sub.add_parser("list", help="list the profiles")
    p.set_defaults(func=run_list)
    p = sub.add_parser("show", help="one profile, with the parameter count of its model")
    p.add_argument("key", choices=sorted(PROFILES), metavar="KEY")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_show)
    p = sub.add_parser("prepare", help="check a local snapshot against a profile and record it",
                       description="Write <root>/<key>/hf_config.json (the snapshot's exact "
                                   "config) and model_profile.json (facts, source revision, "
                                   "config sha256). Offline only.")
    p.add_argument("--model", required=True, choices=[*sorted(PROFILES), "all"],
                   metavar="KEY|all")
    p.add_argument("--hf-dir", type=Path, default=None, metavar="DIR",
                   help="local snapshot folder (one KEY only); default: the local hub cache")
    p.add_argument("--hf-cache", type=Path, default=None, metavar="DIR",
                   help="hub cache to look in (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, metavar="DIR",
                   help=f"output root (default: {DEFAULT_ROOT})")
    p.set_defaults(func=run_prepare)


def run_list(args: argparse.Namespace) -> int:
    print(profiles_table())
    return 0


def run_show(args: argparse.Namespace) -> int:
    counted = count_profile(args.key)
    print(json.dumps(counted.to_dict(), indent=2, sort_keys=True) if args.json
          else counted.describe())
    return 0 if counted.matches else 1


def run_prepare(args: argparse.Namespace) -> int:
    keys = profile_keys(args.model)
    if args.hf_dir is not None and len(keys) > 1:
        print("ttt profile prepare: --hf-dir names one snapshot; use it with one --model KEY "
              "(with `all`, snapshots come from the hub cache)", file=sys.stderr)
        return 2
    failed = 0
    for key in keys:
        try:
            print(describe_prepared(key, prepare_profile(key, args.hf_dir, args.root,
                                                         args.hf_cache)))
        except ImportFailure as e:
            print(f"ttt profile prepare {key}: {e}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0
