"""A hand-built, completed 10-run Qwen matrix whose comparison answers are worked out
by hand in test_compare.py (the numbers here are chosen to make that arithmetic exact),
and a folder of sweeps (several runs of one kind; table at SWEEP below).

Own budgets per run (tokens, wall-clock s, devices) and final loss:

    run   path     kind ctx  parent tokens     wall s  dev  loss
    Q-A1  adapter  fa   8K   -      1_000_000  1000    1    2.90
    Q-A2  adapter  fa   32K  A1       400_000  3500    1    2.75
    Q-A3  adapter  swa  8K   A1       200_000   300    1    2.95
    Q-A4  adapter  e2e  8K   A3       300_000   500    1    2.88
    Q-A5  adapter  e2e  32K  A4       400_000  1200    1    2.705
    Q-A6  adapter  e2e  32K  A1       500_000  1500    2    2.708
    Q-S1  scratch  fa   8K   -      2_000_000  2400    1    3.10
    Q-S2  scratch  fa   32K  S1       400_000   800    1    2.95
    Q-S3  scratch  e2e  8K   -      2_000_000  3000    1    2.92
    Q-S4  scratch  e2e  32K  S3       500_000  1000    1    2.70

Logged `loss` curves (stage-local step, tokens, wall s, value):
    Q-S3: (100, 500_000, 750, 3.40), (200, 1_000_000, 1500, 3.10), (300, 1_600_000, 2400, 2.98)
    Q-S4: (50, 250_000, 500, 2.80)
    Q-A2: (100, 200_000, 2000, 2.90)
"""

from __future__ import annotations

import pytest

from ttt_ledger import (
    EvalResult,
    Experiment,
    FamilySpec,
    MetricPoint,
    RunRecord,
    RunStatus,
    build_stage_plan,
)

FOLDER = "hand"

# The runbook's two families as the plan sees them (ttt-import's registry holds the real
# entries; this package may not import it).
QWEN = FamilySpec("qwen2_5_0_5b", "Qwen/Qwen2.5-0.5B", "Q", "qwen05", 12000, 300)
SMOL = FamilySpec("smollm2_360m", "HuggingFaceTB/SmolLM2-360M", "S", "smol360", 9600, 240)

OWN = {  # run id: (tokens, wall_clock_s, device_count, final loss)
    "Q-A1": (1_000_000, 1000.0, 1, 2.90),
    "Q-A2": (400_000, 3500.0, 1, 2.75),
    "Q-A3": (200_000, 300.0, 1, 2.95),
    "Q-A4": (300_000, 500.0, 1, 2.88),
    "Q-A5": (400_000, 1200.0, 1, 2.705),
    "Q-A6": (500_000, 1500.0, 2, 2.708),
    "Q-S1": (2_000_000, 2400.0, 1, 3.10),
    "Q-S2": (400_000, 800.0, 1, 2.95),
    "Q-S3": (2_000_000, 3000.0, 1, 2.92),
    "Q-S4": (500_000, 1000.0, 1, 2.70),
}

CURVES = {
    "Q-S3": [(100, 500_000, 750.0, 3.40), (200, 1_000_000, 1500.0, 3.10),
             (300, 1_600_000, 2400.0, 2.98)],
    "Q-S4": [(50, 250_000, 500.0, 2.80)],
    "Q-A2": [(100, 200_000, 2000.0, 2.90)],
}


def position_nll(length: int, floor: float, scale: float) -> tuple[float, ...]:
    """A decreasing per-position NLL profile (later tokens see more context)."""
    return tuple(floor + scale / (1.0 + i / 64.0) for i in range(length))


def hand_records() -> list[RunRecord]:
    records = []
    for planned in build_stage_plan(QWEN, FOLDER, budget="pilot"):
        tokens, wall, devices, loss = OWN[planned.run_id]
        evals: tuple[EvalResult, ...] = ()
        if planned.context_length == 32768:
            evals = (EvalResult("books_32k", {"loss": loss + 0.1}, 32768,
                                position_nll(2048, loss, 1.0 + devices / 10)),)
        records.append(RunRecord(**{
            **{f: getattr(planned, f) for f in (
                "run_id", "exp_folder", "family", "path", "stage", "model_kind", "train_mode",
                "context_length", "checkpoint_source", "output_checkpoint", "recipe",
                "config_name", "data_root", "parent_run_ids", "planned_steps", "restore")},
            "steps_completed": planned.planned_steps, "tokens_seen": tokens,
            "wall_clock_s": wall, "device_kind": "H100", "device_count": devices,
            "final_metrics": {"loss": loss}, "best_metrics": {"loss": loss},
            "eval_results": evals, "status": RunStatus.COMPLETED}))
    return records


def hand_points() -> list[tuple[str, MetricPoint]]:
    return [(run_id, MetricPoint("loss", step, tokens, wall, value))
            for run_id, points in CURVES.items() for step, tokens, wall, value in points]


@pytest.fixture
def hand_experiment() -> Experiment:
    return Experiment.from_records(hand_records(), hand_points())



@pytest.fixture
def hand_run_records() -> list[RunRecord]:
    return hand_records()


@pytest.fixture
def hand_metric_points() -> list[tuple[str, MetricPoint]]:
    return hand_points()


SWEEP_FOLDER = "sweep"
# A folder of sweeps (one family, qwen2_5_0_5b), worked by hand in test_compare.py:
#
#   run    path     stage     kind  ctx  parent  status       tokens     wall s  loss   heldout
#   F-lr1  scratch  pretrain  fa    8K   -       completed    1_000_000  2000    3.10   3.08
#   F-lr2  scratch  pretrain  fa    8K   -       completed    1_000_000  2000    3.05   3.12
#   F-lr3  scratch  pretrain  fa    8K   -       completed    1_000_000  2000    3.20   3.25
#   E-a    scratch  pretrain  e2e   8K   -       completed    1_000_000  3000    2.96   3.01
#   E-b    scratch  pretrain  e2e   8K   -       completed    1_000_000  3000    2.92   2.97
#   E-c    scratch  pretrain  e2e   8K   -       interrupted    500_000  1500    2.80   -
#   I-fa   adapter  pretrain  fa    8K   -       completed      500_000  1000    2.90   2.95
#   T-x    adapter  adapt     e2e   8K   I-fa    completed      400_000   800    2.925  2.975
#   T-y    adapter  adapt     e2e   8K   I-fa    completed      250_000   500    2.95   3.00
#
# E-c's loss is what an earlier, completed attempt recorded before a rerun was
# interrupted: the best value of its group, but never the run that stands for it.
# Logged `loss` curve: E-b (50, 500_000, 1500, 3.10).
SWEEP = {  # run id: (path, stage, kind, parent, status, tokens, wall s, loss, heldout)
    "F-lr1": ("scratch", "pretrain", "fa", None, "completed", 1_000_000, 2000.0, 3.10, 3.08),
    "F-lr2": ("scratch", "pretrain", "fa", None, "completed", 1_000_000, 2000.0, 3.05, 3.12),
    "F-lr3": ("scratch", "pretrain", "fa", None, "completed", 1_000_000, 2000.0, 3.20, 3.25),
    "E-a": ("scratch", "pretrain", "e2e", None, "completed", 1_000_000, 3000.0, 2.96, 3.01),
    "E-b": ("scratch", "pretrain", "e2e", None, "completed", 1_000_000, 3000.0, 2.92, 2.97),
    "E-c": ("scratch", "pretrain", "e2e", None, "interrupted", 500_000, 1500.0, 2.80, None),
    "I-fa": ("adapter", "pretrain", "fa", None, "completed", 500_000, 1000.0, 2.90, 2.95),
    "T-x": ("adapter", "adapt", "e2e", "I-fa", "completed", 400_000, 800.0, 2.925, 2.975),
    "T-y": ("adapter", "adapt", "e2e", "I-fa", "completed", 250_000, 500.0, 2.95, 3.00),
}


def sweep_records() -> list[RunRecord]:
    records = []
    for run_id, (path, stage, kind, parent, status, tokens, wall, loss, heldout) in \
            SWEEP.items():
        evals = () if heldout is None else (EvalResult("heldout", {"loss": heldout}, 8192),)
        records.append(RunRecord(
            run_id=run_id, exp_folder=SWEEP_FOLDER, family="qwen2_5_0_5b", path=path,
            stage=stage, model_kind=kind, train_mode="meta" if kind == "e2e" else "pretrain",
            context_length=8192, parent_run_ids=(parent,) if parent else (),
            steps_completed=50 if status == "interrupted" else 100, tokens_seen=tokens,
            wall_clock_s=wall, device_kind="H100",
            final_metrics={"loss": loss}, eval_results=evals, status=RunStatus(status),
            interrupt_reason="SIGTERM at step 50; resume with training.load_part=all"
            if status == "interrupted" else None))
    return records


@pytest.fixture
def sweep_experiment() -> Experiment:
    return Experiment.from_records(
        sweep_records(), [("E-b", MetricPoint("loss", 50, 500_000, 1500.0, 3.10))])
