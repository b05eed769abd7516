"""`ttt eval bundle`: the context sweep, RULER, decode trend and efficiency of checkpoints,
or of an experiment folder's final checkpoints (then recorded in its ledger).

Exit codes: 0 every measure ran, 1 a measure failed (what was measured is still written),
2 bad input (nothing evaluated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_cli.commands.eval.bundle_measures import add_measure_options, spec_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="context sweep, RULER, decode trend and efficiency",
                       description="The evaluation bundle of checkpoints or of an experiment "
                                   "folder's final checkpoints: JSON, CSV, plots and ledger "
                                   "eval records.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, nargs="+", metavar="DIR")
    which.add_argument("--exp-folder", help="evaluate this folder's final checkpoints")
    p.add_argument("--exp-dir", type=Path, default=Path("experiments"),
                   help="directory holding ledger.sqlite and the folder (default: ./experiments)")
    p.add_argument("--checkpoint-path", type=Path, default=None,
                   help="root of <exp_folder>/<checkpoint> (default: the pipeline manifest's)")
    p.add_argument("--dataset", type=Path, default=None, metavar="STORE",
                   help="token store whose validation split is evaluated")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="folder with the run's tokenizer.json (RULER prompts)")
    add_measure_options(p)
    p.add_argument("--allow-tokenizer-mismatch", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: <exp_dir>/<exp_folder>, or ./external_eval)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_eval.bundle import bundle_summary, describe_written, failure_lines, skip_notes
    from ttt_eval.errors import EvalError
    from ttt_ledger import LedgerError

    try:
        bundle, paths = _evaluate(args)
    except (EvalError, LedgerError) as e:
        print(f"ttt eval bundle: {e}", file=sys.stderr)
        return 2
    print(bundle_summary(bundle))
    print(describe_written(paths))
    for note in skip_notes(bundle):
        print(f"ttt eval bundle: note: {note}", file=sys.stderr)
    for failure in failure_lines(bundle):
        print(f"ttt eval bundle: FAILED {failure}", file=sys.stderr)
    return 1 if bundle["failed"] else 0


def _evaluate(args: argparse.Namespace) -> tuple[dict, dict]:
    if args.exp_folder is not None:
        from ttt_train.external_eval import FolderBundle, bundle_folder

        return bundle_folder(FolderBundle(args.exp_dir, args.exp_folder), spec_of(args),
                             out_dir=args.out, checkpoint_path=args.checkpoint_path,
                             dataset=args.dataset, tokenizer=args.tokenizer,
                             allow_tokenizer_mismatch=args.allow_tokenizer_mismatch,
                             progress=not args.no_progress)
    from ttt_eval.bundle import bundle_checkpoints

    return bundle_checkpoints(args.checkpoint, spec_of(args), store=args.dataset,
                              tokenizer=args.tokenizer,
                              allow_tokenizer_mismatch=args.allow_tokenizer_mismatch,
                              out_dir=args.out, progress=not args.no_progress)
