"""The options of `ttt eval bundle` that choose what is measured (sweep, RULER, decode
trend, efficiency), and the `BundleSpec` they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ttt_cli.arg_types import fractions, lengths, names

if TYPE_CHECKING:
    from ttt_eval.bundle import BundleSpec


def add_measure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--contexts", type=lengths, default=None,
                   help="sweep contexts (default 8192,32768,65536,131072)")
    p.add_argument("--tokens-per-context", type=int, default=None,
                   help="token budget of each sweep context")
    p.add_argument("--split", default="val", help="store split (default: val)")
    p.add_argument("--ruler-tasks", type=names, default=None,
                   help="comma-separated RULER tasks (default: all 11)")
    p.add_argument("--ruler-lengths", type=lengths, default=None,
                   help="RULER prompt lengths (default: the sweep contexts)")
    p.add_argument("--ruler-depths", type=fractions, default=None,
                   help="needle depths (default 0,0.25,0.5,0.75,1)")
    p.add_argument("--samples-per-cell", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="cap on each RULER task's generation budget")
    p.add_argument("--no-generation", action="store_true",
                   help="RULER by log-likelihood rank only")
    p.add_argument("--no-ruler", action="store_true")
    p.add_argument("--trend-prompt", type=int, default=None,
                   help="prompt tokens before the decode trend (default: shortest context)")
    p.add_argument("--trend-tokens", type=int, default=1024,
                   help="reference tokens teacher-forced through decoding")
    p.add_argument("--trend-reference", type=Path, default=None, metavar="DIR",
                   help="a checkpoint (same tokenizer) that scores each model's free "
                        "generation of --trend-tokens tokens after the trend's prompt")
    p.add_argument("--efficiency-contexts", type=lengths, default=None)
    p.add_argument("--no-efficiency", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--memory-limit-gib", type=float, default=None,
                   help="refuse contexts whose XLA memory analysis exceeds this")
    p.add_argument("--seed", type=int, default=0)


def spec_of(args: argparse.Namespace) -> BundleSpec:
    from ttt_eval.bundle import bundle_spec

    return bundle_spec(
        contexts=args.contexts, sweep_tokens=args.tokens_per_context, ruler=not args.no_ruler,
        ruler_tasks=args.ruler_tasks, ruler_lengths=args.ruler_lengths,
        ruler_depths=args.ruler_depths, ruler_samples=args.samples_per_cell,
        ruler_generation=not args.no_generation, ruler_max_new_tokens=args.max_new_tokens,
        trend_prompt=args.trend_prompt, trend_tokens=args.trend_tokens,
        trend_reference=args.trend_reference, efficiency=not args.no_efficiency,
        efficiency_contexts=args.efficiency_contexts, efficiency_repeats=args.repeats,
        memory_limit_gib=args.memory_limit_gib, seed=args.seed, split=args.split)
