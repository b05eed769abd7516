"""`ttt report`: the ledger of one experiment folder as a table, CSV, JSON or Markdown.

The ledger lives at `<exp-dir>/ledger.sqlite` (default exp-dir: ./experiments) and
holds every experiment folder of that directory; `--exp-folder` picks one. Reading
never creates a ledger: a missing file is an error that names the path. The metric is
the held-out loss when the runs record one, else the train loss, unless `--metric`
names another that the folder records.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttt_ledger import AXES, FORMATS, LedgerError, build_report, check_metric, render
from ttt_ledger.store import read_experiment


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="report runs, matched comparisons and the success gate",
        description="Report the runs of one experiment folder from <exp-dir>/ledger.sqlite: "
                    "budgets, lineage-cumulative cost, deltas vs FA and scratch TTT-E2E, "
                    "token- and wall-clock-matched comparisons, and the success gate. "
                    "Runs of one kind (a sweep) are compared through each group's best "
                    "completed run.")
    parser.add_argument("--exp-folder", required=True, help="experiment folder to report")
    parser.add_argument("--exp-dir", type=Path, default=Path("experiments"),
                        help="directory holding ledger.sqlite (default: ./experiments)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: table)")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="also write PNG plots (frontier, per-position NLL, training "
                             "loss) to DIR")
    parser.add_argument("--metric", default=None,
                        help="metric compared: a final-metric name (loss, heldout_loss) or "
                             "eval/<eval>/<key> (default: eval/heldout/loss when the runs "
                             "record a held-out loss, else loss)")
    parser.add_argument("--cost-axis", choices=AXES, default="wall_clock_s",
                        help="cost the success gate compares (default: wall_clock_s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        experiment = read_experiment(args.exp_dir, args.exp_folder)
        if args.metric is not None:
            check_metric(experiment, args.metric)
        report = build_report(experiment, args.metric, cost_axis=args.cost_axis)
        sys.stdout.write(render(report, args.format))
        if args.plots is not None:
            from ttt_ledger.plots import write_plots

            for path in write_plots(experiment, args.plots, report.metric):
                print(f"wrote {path}", file=sys.stderr)
    except LedgerError as e:
        print(f"ttt report: {e}", file=sys.stderr)
        return 2
    return 0
