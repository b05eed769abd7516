"""The study's settings, written once: sizes, budgets, seeds and what is measured.

`STUDY` is what `nox -s study` runs (about twenty minutes on two CPU cores); `QUICK` is
the same study at a size a test can afford. Nothing else in the study holds a number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelShape:
    """The dense model every arm starts from (the FA arm is exactly this)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    vocab: int = 512


@dataclass(frozen=True)
class LadderPlan:
    """The warm-start ladder: stage A (the "8K" stage, at the study's context), the bridge
    (a share of stage A's steps) and the extension (the "32K" stage, at `ext_context`)."""

    steps_a: int = 150
    bridge_fraction: float = 0.2
    ext_steps: int = 20
    ext_context: int = 1024
    ext_batch: int = 2
    eval_tokens: int = 8192
    gate_wall_clock_saving: float = 0.30  # the plan's gate: >= 30% less wall-clock ...
    gate_loss_delta: float = 0.01  # ... at <= 0.01 loss delta vs the matched scratch run

    @property
    def bridge_steps(self) -> int:
        return max(1, round(self.bridge_fraction * self.steps_a))


@dataclass(frozen=True)
class StudyPlan:
    seeds: tuple[int, ...] = (0, 1, 2)
    shape: ModelShape = ModelShape()
    context: int = 256  # T: the training context
    window: int = 64  # k: the SWA and TTT-E2E sliding window
    chunk: int = 16  # b: the TTT mini-batch
    batch: int = 8
    steps: int = 150
    lr: float = 3e-3
    lr_warmup_steps: int = 10
    ilr_init: float = 0.1  # the inner lr warms up from this to 1 (the paper's)
    ilr_warmup_steps: int = 50
    # Corpora: synthetic documents of about one training context, so that the fact and its
    # use both fall inside a training window but apart by more than the window; the
    # standard library's Python files (each a document), cut at `stdlib_bytes`.
    synth_docs: int = 1800
    synth_words: int = 60
    stdlib_bytes: int = 3_000_000
    val_fraction: float = 0.03
    # Measures.
    eval_contexts: tuple[int, ...] = (256, 512, 1024, 2048)  # up to 8x the training context
    eval_tokens: int = 8192  # per context and model
    ruler_tasks: tuple[str, ...] = ("niah_single_1", "niah_multikey_2")  # noise, needle haystacks
    ruler_lengths: tuple[int, ...] = (256, 512, 1024)
    ruler_depths: tuple[float, ...] = (0.1, 0.5, 0.9)
    ruler_samples: int = 4
    cost_contexts: tuple[int, ...] = (256, 512, 1024, 2048)
    ladder: LadderPlan = LadderPlan()


STUDY = StudyPlan()

QUICK = replace(
    STUDY, seeds=(0, 1), steps=4, lr_warmup_steps=1, ilr_warmup_steps=2, synth_docs=120,
    stdlib_bytes=300_000, eval_contexts=(256, 512), eval_tokens=1024,
    ruler_tasks=("niah_single_1",), ruler_lengths=(256,), ruler_depths=(0.5,),
    ruler_samples=1, cost_contexts=(256, 512),
    ladder=LadderPlan(steps_a=4, bridge_fraction=0.5, ext_steps=2, ext_context=512,
                      eval_tokens=1024),
)

PLANS = {"study": STUDY, "quick": QUICK}
