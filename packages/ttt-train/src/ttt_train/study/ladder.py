"""The warm-start ladder at tiny scale, on one corpus and one seed.

Stage A is the study's "8K" stage (its training context), the extension the "32K" stage
(`ext_context`), the bridge a share of stage A's steps:

* S0: FA (stage A) -> FA for the bridge's steps -> FA extension.
* S1: FA -> SWA (the naive switch: same weights, sliding window, pretrain loss) -> SWA
  extension.
* S2: FA -> TTT-E2E bridge (prime MLPs added, zero output projection: step 0 computes the
  FA weights' sliding-window function; meta loss) -> TTT-E2E extension.
* S3: TTT-E2E from scratch for stage A + bridge steps -> extension; and S3-wall, from
  scratch for the bridge's steps only -> extension: about S2's charged wall-clock (the
  same step counts; the charged seconds are measured and shown).

S0-S3 are token-matched. The FA stage A is shared by S0-S2 and is the study's own FA
run of that seed. The gate
(the plan's): S2 passes when its charged wall-clock (bridge + extension; stage A stands
for the public checkpoint a warm start begins from) is at least 30% below the
token-matched S3's and its held-out loss is at most 0.01 above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttt_train.study.arms import model_overrides, training_overrides
from ttt_train.study.corpora import Corpus
from ttt_train.study.measures import context_sweep
from ttt_train.study.plan import StudyPlan
from ttt_train.study.runs import Run, train

RUNGS: tuple[str, ...] = ("S0", "S1", "S2", "S3", "S3-wall")
DESCRIPTIONS = {
    "S0": "FA -> FA (bridge steps) -> FA extension",
    "S1": "FA -> SWA (naive switch) -> SWA extension",
    "S2": "FA -> TTT-E2E bridge -> TTT-E2E extension",
    "S3": "TTT-E2E from scratch (token-matched with S2) -> extension",
    "S3-wall": "TTT-E2E from scratch for S2's bridge steps (~ its wall-clock) -> extension",
}


@dataclass(frozen=True)
class Stage:
    name: str
    arm: str
    steps: int
    source: str | None  # the run whose weights it starts from (load_part=params)
    ttt_recipe: bool = False  # prime MLPs added to a dense source
    extension: bool = False


def _stages(plan: StudyPlan, stage_a: str) -> dict[str, list[Stage]]:
    lp = plan.ladder
    a_b = lp.steps_a + lp.bridge_steps

    def ext(arm: str, source: str) -> Stage:
        return Stage(f"{source}-ext", arm, lp.ext_steps, source, extension=True)

    return {
        "S0": [Stage("fa-bridge", "fa", lp.bridge_steps, stage_a), ext("fa", "fa-bridge")],
        "S1": [Stage("swa-bridge", "swa", lp.bridge_steps, stage_a), ext("swa", "swa-bridge")],
        "S2": [Stage("e2e-bridge", "e2e-warm", lp.bridge_steps, stage_a, ttt_recipe=True),
               ext("e2e-warm", "e2e-bridge")],
        "S3": [Stage("e2e-scratch", "e2e", a_b, None), ext("e2e", "e2e-scratch")],
        "S3-wall": [Stage("e2e-scratch-wall", "e2e", lp.bridge_steps, None),
                    ext("e2e", "e2e-scratch-wall")],
    }


def _overrides(plan: StudyPlan, stage: Stage, seed: int) -> dict[str, object]:
    # A warm-started E2E model keeps the FA MLP whole and adds prime MLPs of its width.
    arm = "e2e" if stage.arm == "e2e-warm" else stage.arm
    o = {**model_overrides(plan, arm, plan.shape.intermediate if stage.arm == "e2e-warm"
                           else None),
         **training_overrides(plan, arm, seed), "training.total_steps": stage.steps}
    if stage.source is not None:
        o |= {"training.load_part": "params", "training.resume_exp_name": stage.source}
    if stage.ttt_recipe:
        o["training.warmstart_recipe"] = "ttt"
    if stage.extension:
        lp = plan.ladder
        o |= {"training.seq_length": lp.ext_context, "model.seq_len": lp.ext_context,
              "training.global_batch_size": lp.ext_batch,
              "model.attention_block_size": lp.ext_context,
              "model.logits_block_size": lp.ext_context,
              "training.optimizer_outer.lr_warmup_steps": 1}
    if stage.ttt_recipe:  # new inner weights: the inner lr warms up within the bridge
        o["training.ilr_warmup_steps"] = max(1, stage.steps // 2)
    elif stage.source is not None and arm == "e2e":  # extending a TTT-E2E model: warm
        o |= {"training.ilr_init": 1.0, "training.ilr_warmup_steps": 0}
    return o


def run_ladder(plan: StudyPlan, corpus: Corpus, work: Path, stage_a: Run, seed: int,
               step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Train every rung's stages (stage A given), score each rung's final model at the
    extension context, and judge the gate."""
    folder = stage_a.folder
    trained: dict[str, Run] = {stage_a.name: stage_a}
    rungs: dict[str, Any] = {}
    for rung, stages in _stages(plan, stage_a.name).items():
        for stage in stages:
            if stage.name not in trained:
                step(f"ladder {rung}: {stage.name}")
                trained[stage.name] = train(work, folder, stage.name, corpus.store,
                                            corpus.tokenizer, _overrides(plan, stage, seed))
        runs = ([stage_a] if rung in ("S0", "S1", "S2") else []) + \
            [trained[s.name] for s in stages]
        final = trained[stages[-1].name]
        swept = context_sweep(final.checkpoint_dir, corpus.store, plan,
                              contexts=(plan.ladder.ext_context,),
                              tokens=plan.ladder.eval_tokens)["contexts"][0]
        charged = [r for r in runs if r is not stage_a]
        rungs[rung] = {
            "description": DESCRIPTIONS[rung],
            "stages": [{"name": r.name, "steps": r.steps, "tokens": r.tokens,
                        "train_s": r.train_s, "final_train_loss": r.final_train_loss}
                       for r in runs],
            "tokens": sum(r.tokens for r in runs),
            "train_s": sum(r.train_s for r in runs),
            "charged_train_s": sum(r.train_s for r in charged),
            "heldout_nll": swept["mean_nll"],
            "heldout_beyond_window": swept["beyond_window"]["mean_nll"],
        }
    return {"corpus": corpus.name, "seed": seed, "ext_context": plan.ladder.ext_context,
            "rungs": rungs, "gate": gate(rungs, plan)}


def gate(rungs: dict[str, Any], plan: StudyPlan) -> dict[str, Any]:
    s2, s3 = rungs["S2"], rungs["S3"]
    saving = 1.0 - s2["charged_train_s"] / s3["charged_train_s"]
    delta = s2["heldout_nll"] - s3["heldout_nll"]
    lp = plan.ladder
    return {"wall_clock_saving": saving, "loss_delta": delta,
            "needs_saving": lp.gate_wall_clock_saving, "needs_delta": lp.gate_loss_delta,
            "passed": bool(saving >= lp.gate_wall_clock_saving and delta <= lp.gate_loss_delta)}
