"""What the study measures on each trained model, all through ttt-eval: the context sweep
(per-position NLL inside and beyond the window, loss against context), RULER retrieval
scored by log-likelihood, and prefill/decode cost against context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttt_data.tokenizer import load_tokenizer
from ttt_eval.efficiency import Timing, efficiency
from ttt_eval.retrieval import RetrievalSpec, evaluate_retrieval
from ttt_eval.score import load_run_model
from ttt_eval.sweep import sweep
from ttt_train.study.plan import StudyPlan


def context_sweep(checkpoint: Path, store: Path, plan: StudyPlan, *, contexts: tuple[int, ...],
                  tokens: int) -> dict[str, Any]:
    """The sweep on the store's validation split, split at the study's window for every
    arm (FA included, so that its 'beyond' positions are the same positions); failed
    contexts or non-finite NLLs raise rather than enter a table."""
    model, settings = load_run_model(checkpoint)
    result = sweep(model, store, contexts=contexts, inner=settings["inner"],
                   window=plan.window, tokens_per_context=tokens, seed=0, progress=False,
                   per_position=True).to_dict()
    if result["failed"]:
        raise RuntimeError(f"{checkpoint}: sweep failed: {result['failures']}")
    return result


def retrieval(checkpoint: Path, tokenizer: Path, plan: StudyPlan) -> dict[str, Any]:
    model, settings = load_run_model(checkpoint)
    spec = RetrievalSpec(tasks=plan.ruler_tasks, lengths=plan.ruler_lengths,
                         depths=plan.ruler_depths, samples_per_cell=plan.ruler_samples,
                         generation=False, seed=0)
    return evaluate_retrieval(model, load_tokenizer(tokenizer), spec, inner=settings["inner"],
                              progress=False)


def costs(checkpoints: dict[str, Path], plan: StudyPlan) -> dict[str, Any]:
    """Prefill and decode cost of each arm against context: compiled FLOPs and state bytes
    (exact, machine-independent) and wall-clock (this machine, for shape only)."""
    loaded = {name: load_run_model(path) for name, path in checkpoints.items()}
    inner = next(s["inner"] for model, s in loaded.values() if model.cfg.prime)
    return efficiency({name: model for name, (model, _) in loaded.items()}, plan.cost_contexts,
                      timing=Timing(repeats=2, warmup=1), inner=inner)
