"""Runs of one kind form a group (a sweep); the plan's arms stay apart; the best completed
run of each group is picked by the metric, never an unfinished or diverged one."""

from __future__ import annotations

import dataclasses

import pytest

from ttt_ledger import (
    EvalResult,
    Experiment,
    GroupKey,
    LineageError,
    RunStatus,
    best_completed,
    group_keys,
    run_groups,
)


def test_the_plan_has_ten_groups_and_keeps_bridge_and_direct_apart(hand_experiment):
    groups = run_groups(hand_experiment, "loss")
    assert [g.run_ids for g in groups] == [(f"Q-{s}",) for s in (
        "A1", "A2", "A3", "A4", "A5", "A6", "S1", "S2", "S3", "S4")]
    keys = group_keys(hand_experiment)
    # A5 (bridge) and A6 (direct) share family, path, stage, kind and context; their
    # parents differ: A5 extends the 8K TTT-E2E run A4, A6 the 8K FA run A1.
    a1 = GroupKey("qwen2_5_0_5b", "adapter", "pretrain", "fa", 8192)
    assert keys["Q-A6"] == GroupKey("qwen2_5_0_5b", "adapter", "ext", "e2e", 32768, (a1,))
    assert keys["Q-A5"].parents[0].parents[0].parents == (a1,)  # A5 <- A4 <- A3 <- A1
    assert not any(g.is_sweep for g in groups)


def test_a_sweep_over_a_parent_sweep_is_one_group(hand_run_records):
    records = {r.run_id: r for r in hand_run_records}
    # S3 swept over two learning rates, and a 32K extension of each: two groups of two
    records["Q-S3b"] = dataclasses.replace(records["Q-S3"], run_id="Q-S3b",
                                           final_metrics={"loss": 2.91})
    records["Q-S4b"] = dataclasses.replace(records["Q-S4"], run_id="Q-S4b",
                                           parent_run_ids=("Q-S3b",),
                                           final_metrics={"loss": 2.72})
    groups = {g.run_ids: g for g in run_groups(Experiment.from_records(
        list(records.values())), "loss")}
    assert groups[("Q-S3", "Q-S3b")].best_id == "Q-S3b"  # 2.91 < 2.92
    assert groups[("Q-S4", "Q-S4b")].best_id == "Q-S4"  # 2.70 < 2.72
    assert len(groups) == 10 and groups[("Q-S4", "Q-S4b")].is_sweep


def test_best_skips_unfinished_and_non_finite_runs(sweep_experiment):
    e2e = [sweep_experiment.runs[r] for r in ("E-a", "E-b", "E-c")]
    assert best_completed(e2e, "loss").run_id == "E-b"  # E-c (2.80) is interrupted
    diverged = [dataclasses.replace(e2e[1], final_metrics={"loss": float("nan")}), e2e[0]]
    assert best_completed(diverged, "loss").run_id == "E-a"
    # no completed run has the metric: the first completed one stands for the group
    assert best_completed(e2e, "eval/books/loss").run_id == "E-a"
    assert best_completed([e2e[2]], "loss") is None


def test_higher_is_better_for_other_metrics(sweep_experiment):
    runs = [dataclasses.replace(sweep_experiment.runs[r], eval_results=(
        EvalResult("niah", {"accuracy": acc}),)) for r, acc in (("E-a", 0.5), ("E-b", 0.75))]
    assert best_completed(runs, "eval/niah/accuracy").run_id == "E-b"
    runs[1] = dataclasses.replace(runs[1], status=RunStatus.FAILED, failure_reason="OOM")
    assert best_completed(runs, "eval/niah/accuracy").run_id == "E-a"


def test_an_unrecorded_parent_is_a_lineage_error(sweep_experiment):
    records = [dataclasses.replace(r, parent_run_ids=("gone",)) if r.run_id == "T-x" else r
               for r in sweep_experiment.runs.values()]
    with pytest.raises(LineageError, match="T-x names parent 'gone'"):
        run_groups(Experiment.from_records(records), "loss")
