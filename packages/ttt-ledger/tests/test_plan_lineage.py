"""The stage plan reproduces docs/protocol.md's matrix row by row; lineage queries across
the matrix."""

from __future__ import annotations

import pytest

from conftest import QWEN, SMOL
from ttt_ledger import (
    FamilySpec,
    Ledger,
    LineageError,
    PlanError,
    StepBudget,
    ancestors,
    build_plans,
    build_stage_plan,
    check_lineage,
    descendants,
    roots,
)

# Seed 000 §9, copied by hand: run id, input checkpoint, output checkpoint, full, pilot.
QWEN_TABLE = [
    ("Q-A1", "import-qwen05-fa-base", "pretrain-qwen05-fa-import-8K", 12000, 8),
    ("Q-A2", "pretrain-qwen05-fa-import-8K", "ext-qwen05-fa-32K-from-import", 300, 4),
    ("Q-A3", "pretrain-qwen05-fa-import-8K", "adapt-qwen05-swa-8K-from-import", 12000, 4),
    ("Q-A4", "adapt-qwen05-swa-8K-from-import", "adapt-qwen05-e2e-8K-from-import", 12000, 4),
    ("Q-A5", "adapt-qwen05-e2e-8K-from-import", "ext-qwen05-e2e-32K-from-import-bridge", 300,
     4),
    ("Q-A6", "pretrain-qwen05-fa-import-8K", "ext-qwen05-e2e-32K-from-import-direct", 300, 4),
    ("Q-S1", None, "pretrain-qwen05-fa-scratch-8K", 12000, 8),
    ("Q-S2", "pretrain-qwen05-fa-scratch-8K", "ext-qwen05-fa-32K-from-scratch", 300, 4),
    ("Q-S3", None, "pretrain-qwen05-e2e-scratch-8K", 12000, 8),
    ("Q-S4", "pretrain-qwen05-e2e-scratch-8K", "ext-qwen05-e2e-32K-from-scratch", 300, 4),
]
SMOL_TABLE = [
    ("S-A1", "import-smol360-fa-base", "pretrain-smol360-fa-import-8K", 9600, 8),
    ("S-A2", "pretrain-smol360-fa-import-8K", "ext-smol360-fa-32K-from-import", 240, 4),
    ("S-A3", "pretrain-smol360-fa-import-8K", "adapt-smol360-swa-8K-from-import", 9600, 4),
    ("S-A4", "adapt-smol360-swa-8K-from-import", "adapt-smol360-e2e-8K-from-import", 9600, 4),
    ("S-A5", "adapt-smol360-e2e-8K-from-import", "ext-smol360-e2e-32K-from-import-bridge", 240,
     4),
    ("S-A6", "pretrain-smol360-fa-import-8K", "ext-smol360-e2e-32K-from-import-direct", 240, 4),
    ("S-S1", None, "pretrain-smol360-fa-scratch-8K", 9600, 8),
    ("S-S2", "pretrain-smol360-fa-scratch-8K", "ext-smol360-fa-32K-from-scratch", 240, 4),
    ("S-S3", None, "pretrain-smol360-e2e-scratch-8K", 9600, 8),
    ("S-S4", "pretrain-smol360-e2e-scratch-8K", "ext-smol360-e2e-32K-from-scratch", 240, 4),
]


@pytest.mark.parametrize(("family", "table"), [(QWEN, QWEN_TABLE), (SMOL, SMOL_TABLE)])
def test_plan_matches_the_runbook_table(family, table):
    full = build_stage_plan(family, "x", budget="full")
    pilot = build_stage_plan(family, "x", budget="pilot")
    got = [(r.run_id, r.checkpoint_source, r.output_checkpoint, r.planned_steps, p.planned_steps)
           for r, p in zip(full, pilot, strict=True)]
    assert got == table
    for r in full:
        assert r.config_name == f"external/{family.key}/" + r.output_checkpoint.replace(
            "-qwen05", "").replace("-smol360", "")
        assert r.data_root == ("books" if r.stage == "ext" else "dclm")
        assert r.train_mode == ("meta" if r.model_kind == "e2e" else "pretrain")
        assert r.restore.label == ("fresh" if r.checkpoint_source is None else "params")
        assert r.context_length == (32768 if r.stage == "ext" else 8192)


def test_recipes_mark_each_conversion():
    recipes = {r.run_id: r.recipe for r in build_stage_plan(QWEN, "x")}
    assert recipes == {"Q-A1": "fa", "Q-A2": None, "Q-A3": "swa", "Q-A4": "ttt",
                       "Q-A5": None, "Q-A6": "ttt", "Q-S1": None, "Q-S2": None,
                       "Q-S3": None, "Q-S4": None}


# Worked out from the runbook's input/output columns (nearest first).
ANCESTORS = {
    "Q-A1": [], "Q-A2": ["Q-A1"], "Q-A3": ["Q-A1"], "Q-A4": ["Q-A3", "Q-A1"],
    "Q-A5": ["Q-A4", "Q-A3", "Q-A1"], "Q-A6": ["Q-A1"],
    "Q-S1": [], "Q-S2": ["Q-S1"], "Q-S3": [], "Q-S4": ["Q-S3"],
}
DESCENDANTS = {
    "Q-A1": ["Q-A2", "Q-A3", "Q-A6", "Q-A4", "Q-A5"], "Q-A2": [], "Q-A3": ["Q-A4", "Q-A5"],
    "Q-A4": ["Q-A5"], "Q-A5": [], "Q-A6": [],
    "Q-S1": ["Q-S2"], "Q-S2": [], "Q-S3": ["Q-S4"], "Q-S4": [],
}


def test_lineage_across_the_matrix_from_the_ledger(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.add_plan(build_plans([QWEN, SMOL], "both"))
    runs = ledger.experiment("both").runs
    assert len(runs) == 20
    check_lineage(runs)
    for run_id, expected in ANCESTORS.items():
        assert ancestors(runs, run_id) == expected, run_id
        smol = "S-" + run_id[2:]  # the same shape in the other family, never crossing
        assert ancestors(runs, smol) == ["S-" + a[2:] for a in expected], smol
    for run_id, expected in DESCENDANTS.items():
        assert descendants(runs, run_id) == expected, run_id
    assert roots(runs) == ["Q-A1", "Q-S1", "Q-S3", "S-A1", "S-S1", "S-S3"]


def test_lineage_errors_are_clear():
    plan = {r.run_id: r for r in build_stage_plan(QWEN, "x")}
    del plan["Q-A3"]
    with pytest.raises(LineageError, match="Q-A4 names parent 'Q-A3'"):
        check_lineage(plan)
    with pytest.raises(LineageError, match="descends from 'Q-A3'"):
        ancestors(plan, "Q-A5")
    assert ancestors(plan, "Q-A5", strict=False) == ["Q-A4"]
    with pytest.raises(LineageError, match="no run 'Q-Z9'"):
        descendants(plan, "Q-Z9")


def test_lineage_cycle_is_detected():
    import dataclasses
    plan = {r.run_id: r for r in build_stage_plan(QWEN, "x")}
    plan["Q-A1"] = dataclasses.replace(plan["Q-A1"], parent_run_ids=("Q-A5",))
    with pytest.raises(LineageError, match="cycle"):
        check_lineage(plan)


def test_a_family_without_a_full_budget_plans_pilot_or_custom_budgets():
    gemma = FamilySpec("gemma3_1b", "google/gemma-3-1b-pt", "G", "gemma1b")
    plan = build_stage_plan(gemma, "x")
    assert [r.run_id for r in plan][:2] == ["G-A1", "G-A2"]
    assert plan[0].checkpoint_source == "import-gemma1b-fa-base"
    with pytest.raises(PlanError, match="no full step budget"):
        build_stage_plan(gemma, "x", budget="full")
    custom = build_stage_plan(gemma, "x", budget=StepBudget(100, 10, 5))
    assert [r.planned_steps for r in custom] == [100, 5, 10, 10, 5, 5, 100, 5, 100, 5]
    with pytest.raises(PlanError, match="budget 'huge'"):
        build_stage_plan(QWEN, "x", budget="huge")
    same_prefix = FamilySpec("qwen_other", "x/y", "Q", "other")
    with pytest.raises(PlanError, match="collides"):
        build_plans([QWEN, same_prefix], "x")


def test_a_family_name_is_refused_saying_where_the_families_went():
    with pytest.raises(PlanError, match="plan_family"):
        build_stage_plan("qwen2_5_0_5b", "x")
    with pytest.raises(ImportError, match="registry"):
        from ttt_ledger import FAMILIES  # noqa: F401