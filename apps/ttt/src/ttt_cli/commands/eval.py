"""`ttt eval`: evaluations of a checkpoint.

    ttt eval score --checkpoint DIR (--tokens FILE.npy | --text FILE --tokenizer DIR)
                   [--ttt/--no-ttt] --out FILE.json

`score` writes {"token_nll": [[...]], "mean_nll": x, ...}: one row of N-1 next-token NLLs
per sequence (tokens: a 1-D or 2-D integer array); `mean_nll` counts targets as training
does (BOS targets are not counted). With --ttt the sequence is consumed by the TTT inner
loop (prefill) with the run's own inner lr, clip and spec; --no-ttt runs the model once;
default: --ttt for a model with prime MLPs. A text's tokenizer must be the one the run was
trained with (--allow-tokenizer-mismatch overrides). A corrupt checkpoint or a non-finite
score exits 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate checkpoints",
                                   description="Evaluations of a ttt-model checkpoint.")
    sub = parser.add_subparsers(dest="eval_command", required=True)
    p = sub.add_parser("score", help="per-token NLL of tokens or a text under a checkpoint",
                       description="Per-token next-token NLL and its mean.")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", type=Path, metavar="FILE.npy",
                     help="1-D or 2-D integer array of token ids")
    src.add_argument("--text", type=Path, metavar="FILE", help="UTF-8 text (needs --tokenizer)")
    p.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                   help="folder with tokenizer.json (for --text)")
    p.add_argument("--ttt", action=argparse.BooleanOptionalAction, default=None,
                   help="score with the TTT inner loop (default: when the model has prime MLPs)")
    p.add_argument("--allow-tokenizer-mismatch", action="store_true",
                   help="score a text even if --tokenizer is not the run's tokenizer")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    p.set_defaults(func=run_score)
    _register_bundle(sub)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {text!r}"
                                         ) from None
    if not values or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected fractions in 0..1, got {text!r}")
    return values


def _register_bundle(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--contexts", type=_ints, default=None,
                   help="sweep contexts (default 8192,32768,65536,131072)")
    p.add_argument("--tokens-per-context", type=int, default=None,
                   help="token budget of each sweep context")
    p.add_argument("--split", default="val", help="store split (default: val)")
    p.add_argument("--ruler-tasks", default=None, help="comma-separated RULER tasks "
                                                       "(default: all 11)")
    p.add_argument("--ruler-lengths", type=_ints, default=None,
                   help="RULER prompt lengths (default: the sweep contexts)")
    p.add_argument("--ruler-depths", type=_fractions, default=None,
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
    p.add_argument("--efficiency-contexts", type=_ints, default=None)
    p.add_argument("--no-efficiency", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (median)")
    p.add_argument("--memory-limit-gib", type=float, default=None,
                   help="refuse contexts whose XLA memory analysis exceeds this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-tokenizer-mismatch", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: <exp_dir>/<exp_folder>, or ./external_eval)")
    p.set_defaults(func=run_bundle_command)


def bundle_spec(args: argparse.Namespace):
    from ttt_eval.bundle import BundleSpec
    from ttt_eval.retrieval import DEFAULT_DEPTHS, RetrievalSpec
    from ttt_eval.ruler import TASKS
    from ttt_eval.sweep import DEFAULT_CONTEXTS

    contexts = args.contexts or DEFAULT_CONTEXTS
    retrieval = None
    if not args.no_ruler:
        tasks = (tuple(t.strip() for t in args.ruler_tasks.split(",") if t.strip())
                 if args.ruler_tasks else tuple(TASKS))
        retrieval = RetrievalSpec(tasks=tasks, lengths=args.ruler_lengths or contexts,
                                  depths=args.ruler_depths or DEFAULT_DEPTHS,
                                  samples_per_cell=args.samples_per_cell,
                                  generation=not args.no_generation,
                                  max_new_tokens=args.max_new_tokens, seed=args.seed)
    limit = None if args.memory_limit_gib is None else int(args.memory_limit_gib * 2**30)
    return BundleSpec(contexts=contexts, sweep_tokens=args.tokens_per_context,
                      retrieval=retrieval, trend_prompt=args.trend_prompt,
                      trend_tokens=args.trend_tokens, trend_reference=args.trend_reference,
                      efficiency=not args.no_efficiency,
                      efficiency_contexts=args.efficiency_contexts,
                      efficiency_repeats=args.repeats, seed=args.seed,
                      memory_limit_bytes=limit, split=args.split)


def run_bundle_command(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_ledger import LedgerError

    try:
        spec = bundle_spec(args)
        if args.exp_folder is not None:
            from ttt_train.external_eval import FolderBundle, bundle_folder

            bundle, paths = bundle_folder(
                FolderBundle(args.exp_dir, args.exp_folder), spec, out_dir=args.out,
                checkpoint_path=args.checkpoint_path, dataset=args.dataset,
                tokenizer=args.tokenizer, allow_tokenizer_mismatch=args.allow_tokenizer_mismatch,
                progress=not args.no_progress)
        else:
            from ttt_eval.bundle import BundleTarget, run_bundle, write_bundle

            targets = [BundleTarget(name=c.name, checkpoint=c, store=args.dataset,
                                    tokenizer=args.tokenizer,
                                    allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
                       for c in args.checkpoint]
            bundle = run_bundle(targets, spec, progress=not args.no_progress)
            paths = write_bundle(bundle, args.out or Path("external_eval"), "external_eval")
    except (EvalError, LedgerError) as e:
        print(f"ttt eval bundle: {e}", file=sys.stderr)
        return 2
    print(bundle_summary(bundle))
    print(f"wrote {paths['json']}, {paths['csv']} and {len(paths['plots'])} plots"
          + (f"; {paths['ledger_records']} ledger eval records" if "ledger_records" in paths
             else ""))
    for m in bundle["models"]:
        for skip in m.get("skipped", []):
            print(f"ttt eval bundle: note: {m['name']}: {skip['measure']} not run: "
                  f"{skip['reason']}", file=sys.stderr)
    if bundle["failed"]:
        for m in bundle["models"]:
            for f in m["failures"]:
                print(f"ttt eval bundle: FAILED {m['name']} {f['measure']}: {f['reason']}",
                      file=sys.stderr)
        return 1
    return 0


def bundle_summary(bundle: dict) -> str:
    """One line per checkpoint: loss at each context, RULER accuracies, decode slope."""
    lines = []
    for m in bundle["models"]:
        parts = [f"{m['name']} ({m['kind']})"]
        for r in m.get("sweep", {}).get("contexts", []):
            if r.get("mean_nll") is not None:
                beyond = r.get("beyond_window") or {}
                parts.append(f"{r['context']}: {r['mean_nll']:.3f}"
                             + (f" (beyond window {beyond['mean_nll']:.3f})"
                                if beyond.get("count") else ""))
        for way in ("rank", "generation"):
            accs = [t[way]["accuracy"] for t in m.get("ruler", {}).get("tasks", {}).values()
                    if way in t]
            if accs:
                parts.append(f"RULER {way} {sum(accs) / len(accs):.3f}")
        if m.get("trend"):
            parts.append(f"decode slope {m['trend']['decode_nll_slope']['per_1k_tokens']:+.4f}/1K")
        if m.get("free_trend"):
            slope = m["free_trend"]["decode_nll_slope"]["per_1k_tokens"]
            parts.append(f"free-generation slope {slope:+.4f}/1K")
        lines.append("  ".join(parts))
    return "\n".join(lines)


def run_score(args: argparse.Namespace) -> int:
    from ttt_eval.errors import EvalError
    from ttt_eval.score import load_tokens, score_checkpoint, tokenize_text

    if args.text is not None and args.tokenizer is None:
        print("ttt eval score: --text needs --tokenizer DIR", file=sys.stderr)
        return 2
    try:
        tokens = (load_tokens(args.tokens) if args.tokens is not None
                  else tokenize_text(args.text, args.tokenizer))
        result = score_checkpoint(args.checkpoint, tokens, ttt=args.ttt,
                                  tokenizer_dir=args.tokenizer if args.text else None,
                                  allow_tokenizer_mismatch=args.allow_tokenizer_mismatch)
    except EvalError as e:
        print(f"ttt eval score: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result) + "\n")
    os.replace(tmp, args.out)
    how = (f"ttt, inner lr {result['inner_lr']:.4g} from the run's {result['settings_from']}"
           if result["ttt"] else "no ttt")
    print(f"scored {result['num_sequences']} x {result['tokens_per_sequence']} tokens "
          f"({how}; {result['counted_targets']} counted targets): mean NLL "
          f"{result['mean_nll']:.4f} -> {args.out}")
    return 0
