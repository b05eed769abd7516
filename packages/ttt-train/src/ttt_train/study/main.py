"""`python -m ttt_train.study`: train the study's models, measure them, write the page.

    python -m ttt_train.study --out docs/results [--work artifacts/study] [--plan quick]

Runs are trained afresh every time (the corpora are reused when their recipe is unchanged),
so a rerun with the same seeds recomputes every number; `--compare OLD.json` then says
whether the deterministic figures (losses, accuracies, compiled costs) came out equal.
`--page-only study.json` redraws the page and plots from saved figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ttt_train.study.arms import (
    ARMS,
    matched_intermediate,
    model_overrides,
    param_count,
    training_overrides,
)
from ttt_train.study.corpora import CORPORA, build_corpus
from ttt_train.study.ladder import run_ladder
from ttt_train.study.measures import context_sweep, costs, retrieval
from ttt_train.study.plan import PLANS, StudyPlan
from ttt_train.study.report import write_report
from ttt_train.study.reproduce import compare
from ttt_train.study.runs import StudyInterrupted, train

RETRIEVAL_CORPUS = "synth"  # RULER's haystacks are prose: scored on the synthetic models
LADDER_CORPUS = "stdlib"  # real text: what a warm start is for
# Relative cost of each job, for the ETA (measured once on two cores; only the ETA uses it).
_WEIGHT = {"fa": 1.0, "swa": 1.0, "e2e": 2.0, "eval": 0.15, "ruler": 0.3, "costs": 1.5,
           "ladder": 5.0}


class Progress:
    """A tqdm bar over the study's jobs, and the same progress with ETA as log lines."""

    def __init__(self, jobs: list[str]):
        self.total = sum(_WEIGHT[j] for j in jobs)
        self.done = 0.0
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=round(self.total, 2), desc="study", unit="job",
                        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} [{elapsed}<{remaining}]")

    def log(self, text: str) -> None:
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        tqdm.write(f"[study {self.done / self.total:4.0%} | {elapsed / 60:.1f} min elapsed | "
                   f"ETA {eta / 60:.1f} min] {text}")

    def advance(self, kind: str) -> None:
        self.done += _WEIGHT[kind]
        self.bar.update(_WEIGHT[kind])

    def close(self) -> None:
        self.bar.close()


def _environment() -> dict[str, Any]:
    import jax

    return {"python": sys.version.split()[0], "jax": jax.__version__,
            "platform": platform.platform(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "backend": jax.default_backend()}


def _trim(sweep: dict[str, Any], context: int) -> dict[str, Any]:
    """Per-position NLLs only at the training context (the rest are in the bins)."""
    for c in sweep["contexts"]:
        if c["context"] != context:
            c["per_position_nll"] = c["per_position_count"] = None
    return sweep


def run_study(plan: StudyPlan, out: Path, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    shutil.rmtree(work / "runs", ignore_errors=True)
    runs_dir = work / "runs"
    jobs = [arm for _ in CORPORA for _ in plan.seeds for arm in ARMS]
    jobs += ["eval"] * len(jobs) + ["ruler"] * len(plan.seeds) * len(ARMS) + ["costs", "ladder"]
    progress = Progress(jobs)
    corpora = {name: build_corpus(name, plan, work / "corpora", progress.log) for name in CORPORA}
    widths = {arm: int(model_overrides(plan, arm)["model.intermediate_size"]) for arm in ARMS}
    params = {arm: param_count(model_overrides(plan, arm)) for arm in ARMS}
    progress.log(f"parameters {params} (TTT-E2E intermediate {matched_intermediate(plan)})")
    results: dict[str, Any] = {corpus: {arm: {} for arm in ARMS} for corpus in CORPORA}
    trained = {}
    for corpus in corpora.values():
        for seed in plan.seeds:
            for arm in ARMS:
                progress.log(f"train {corpus.name}/{arm}-s{seed}")
                run = train(runs_dir, corpus.name, f"{arm}-s{seed}", corpus.store,
                            corpus.tokenizer, {**model_overrides(plan, arm),
                                               **training_overrides(plan, arm, seed)})
                trained[corpus.name, arm, seed] = run
                progress.advance(arm)
                swept = context_sweep(run.checkpoint_dir, corpus.store, plan,
                                      contexts=plan.eval_contexts, tokens=plan.eval_tokens)
                entry = {"train": run.to_dict(), "sweep": _trim(swept, plan.context)}
                progress.advance("eval")
                if corpus.name == RETRIEVAL_CORPUS:
                    entry["retrieval"] = retrieval(run.checkpoint_dir, corpus.tokenizer, plan)
                    progress.advance("ruler")
                results[corpus.name][arm][seed] = entry
    progress.log("prefill and decode costs")
    seed0 = plan.seeds[0]
    cost = costs({arm: trained[RETRIEVAL_CORPUS, arm, seed0].checkpoint_dir for arm in ARMS},
                 plan)
    progress.advance("costs")
    ladder = run_ladder(plan, corpora[LADDER_CORPUS], runs_dir, trained[LADDER_CORPUS, "fa",
                                                                         seed0], seed0,
                        step=progress.log)
    progress.advance("ladder")
    progress.close()
    study = {
        "plan": asdict(plan), "environment": _environment(),
        "corpora": {n: {"source": c.source, **_store_tokens(c.store)} for n, c in corpora.items()},
        "params": params, "intermediate": widths, "runs": results, "costs": cost,
        "ladder": ladder, "elapsed_s": time.perf_counter() - t0,
    }
    write_report(study, out)
    return study


def _store_tokens(store: Path) -> dict[str, int]:
    manifest = json.loads((store / "manifest.json").read_text())
    return {f"{split}_tokens": int(s["tokens"]) for split, s in manifest["splits"].items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ttt_train.study", description=__doc__.split(
        "\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of study.md and its plots")
    p.add_argument("--work", type=Path, default=Path("artifacts/study"),
                   help="corpora, runs and checkpoints (runs are replaced)")
    p.add_argument("--plan", choices=sorted(PLANS), default="study")
    p.add_argument("--compare", type=Path, default=None,
                   help="an earlier study.json: report whether the figures reproduce")
    p.add_argument("--page-only", type=Path, default=None, metavar="STUDY_JSON",
                   help="rewrite the page and plots from a study.json; train nothing")
    args = p.parse_args(argv)
    if args.page_only is not None:
        write_report(json.loads(args.page_only.read_text()), args.out)
        print(f"page rewritten from {args.page_only}: {args.out / 'study.md'}")
        return 0
    before = json.loads(args.compare.read_text()) if args.compare else None
    try:
        study = run_study(PLANS[args.plan], args.out, args.work)
    except StudyInterrupted as e:
        print(f"study: {e}", file=sys.stderr)
        return 128 + (e.signal or 15)
    print(f"study written to {args.out / 'study.md'} in {study['elapsed_s'] / 60:.1f} min")
    if before is not None:
        diffs = compare(before, json.loads((args.out / "study.json").read_text()))
        if diffs:
            print(f"NOT reproduced: {len(diffs)} figures differ from {args.compare}, e.g. "
                  + "; ".join(diffs[:5]))
            return 1
        print(f"reproduced: every deterministic figure equals {args.compare}'s")
    return 0
