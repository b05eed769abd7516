"""`ttt pipeline`: the staged research flow (docs/protocol.md) for one or more families.

    ttt pipeline --model qwen2_5_0_5b|smollm2_360m|all --path scratch|adapter|all \\
        --budget pilot|full --exp-folder X --dclm-root D --books-root B \\
        [--hf-root H] [--skip-existing] [OVERRIDE ...]

Data roots are token stores, or corpora tokenized per family with the tokenizer of the
family's HF snapshot (<hf-root>/<family>). The adapter path imports that snapshot into
checkpoint `import-<short>-fa-base` first. Ends with the evaluation bundle on each
branch's final checkpoints (`ttt eval bundle`, at the budget's scale) and the ledger
report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline", help="run the 10-stage matrix per model family (docs/protocol.md)",
        description="Run scratch and adapter stages (8K pretrain/adapt, 32K extensions) in "
                    "dependency order, import pretrained checkpoints, write a manifest, and "
                    "print the ledger report.")
    parser.add_argument("--model", default="all",
                        help="family key(s), comma-separated, or 'all' (qwen2_5_0_5b and "
                             "smollm2_360m)")
    parser.add_argument("--path", default="all", choices=("scratch", "adapter", "all"))
    parser.add_argument("--budget", default="pilot", choices=("pilot", "full"),
                        help="pilot: 8/4/4 steps at CPU scale (contexts /32, tiny stand-in "
                             "models); full: the training files' budgets")
    parser.add_argument("--exp-folder", default="external_phase1_pilot")
    parser.add_argument("--exp-dir", type=Path, default=Path("experiments"))
    parser.add_argument("--checkpoint-path", type=Path, default=Path("checkpoints"))
    parser.add_argument("--dclm-root", type=Path, required=True,
                        help="token store or corpus for pretrain/adapt stages")
    parser.add_argument("--books-root", type=Path, required=True,
                        help="token store or corpus for ext stages")
    parser.add_argument("--hf-root", type=Path, default=None,
                        help="folder with one HF snapshot per family: <hf-root>/<family>")
    parser.add_argument("--skip-existing", action="store_true",
                        help="keep completed stages (ledger + checkpoint) and run the rest")
    parser.add_argument("--no-import-parity", action="store_true",
                        help="import without the transformers logits parity check")
    parser.add_argument("--config-dir", type=Path, action="append", default=[])
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="held-out fraction when tokenizing corpora (default 0.1)")
    parser.add_argument("--no-bundle", action="store_true",
                        help="skip the evaluation bundle on the final checkpoints")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="Hydra overrides applied to every stage")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_ledger import LedgerError
    from ttt_train.interrupts import exit_code
    from ttt_train.pipeline import PipelineError, PipelineOptions, resolve_families
    from ttt_train.pipeline_run import run_pipeline

    try:
        done = run_pipeline(PipelineOptions(
            families=resolve_families(args.model), path=args.path, budget=args.budget,
            exp_folder=args.exp_folder, exp_dir=args.exp_dir.absolute(),
            checkpoint_path=args.checkpoint_path.absolute(), dclm_root=args.dclm_root,
            books_root=args.books_root, hf_root=args.hf_root,
            skip_existing=args.skip_existing, import_parity=not args.no_import_parity,
            overrides=args.overrides, config_dirs=args.config_dir,
            val_fraction=args.val_fraction, bundle=not args.no_bundle))
    except (PipelineError, LedgerError, EvalError) as e:
        print(f"ttt pipeline: {e}", file=sys.stderr)
        return 2
    if done.interrupted is not None:
        return exit_code(done.interrupted)
    for problem in done.problems:
        print(f"ttt pipeline: {problem}", file=sys.stderr)
    return 1 if done.problems else 0
