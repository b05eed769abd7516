"""`ttt train`: one training stage from a Hydra-style config.

    ttt train +experiment=external/qwen2_5_0_5b/pretrain-fa-scratch-8K \\
        deploy_paths.data.dclm=/data/dclm training.exp_folder=phase1 [key=value ...]

Overrides follow Hydra: `group=option` picks a config file, `a.b=c` sets a key, `+k=v`
adds one. The resolved and unresolved configs, metrics.jsonl, train.log and the ledger
record go to <exp_dir>/<exp_folder>/<exp_name>/; checkpoints to
<checkpoint_path>/<exp_folder>/<exp_name>/.

Exit codes: 0 done (or stopped at training.break_step), 2 bad input (config, checkpoint,
data, or the run is already being written by another process), 3 non-finite loss,
128 + signal (143 SIGTERM, 130 SIGINT) interrupted after checkpointing the current step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="run one training stage (Hydra-style config + overrides)",
        description="Run one training stage: +experiment=<name> picks an experiment file "
                    "(configs/experiment/...), key=value overrides any key. load_part "
                    "none|params|all as in the official TTT-E2E repo.")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="Hydra overrides, e.g. +experiment=125m/pretrain-fa-8K "
                             "training.total_steps=100")
    parser.add_argument("--config-dir", type=Path, action="append", default=[],
                        metavar="DIR", help="extra config directory with more config "
                                            "files (repeatable); a file there may not share "
                                            "a packaged file's name")
    parser.add_argument("--print-config", action="store_true",
                        help="print the config the run would use (derived schedule lengths "
                             "noted) and exit without training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttt_train.config import RunConfigError, compose_config
    from ttt_train.errors import BAD_INPUT_ERRORS
    from ttt_train.stage import NonFiniteLossError, run_stage
    from ttt_train.stage_text import config_text, describe_result

    try:
        composed = compose_config(args.overrides, args.config_dir)
        if args.print_config:
            sys.stdout.write(config_text(composed))
            return 0
        result = run_stage(composed)
    except NonFiniteLossError as e:
        print(f"ttt train: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except (RunConfigError, *BAD_INPUT_ERRORS) as e:
        print(f"ttt train: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"ttt train: {describe_result(result)}")
    if result.status == "interrupted" and result.signal is not None:
        from ttt_train.interrupts import exit_code

        return exit_code(result.signal)
    return 0
