"""Matched comparisons, control deltas and the success gate on the hand-built matrix.

Every expected number below is worked out by hand from the table in conftest.py; the
arithmetic is written next to each literal.
"""

from __future__ import annotations

import dataclasses

import pytest

from ttt_ledger import (
    ComparisonError,
    EvalResult,
    Experiment,
    MetricPoint,
    RunStatus,
    control_deltas,
    cumulative_budget,
    matched_comparisons,
    metric_value,
    success_gate,
    value_at_budget,
)

approx = pytest.approx


def test_cumulative_budgets_sum_each_lineage_once(hand_experiment):
    a5 = cumulative_budget(hand_experiment, "Q-A5")
    assert a5.runs == ("Q-A5", "Q-A4", "Q-A3", "Q-A1")
    assert a5.tokens == 1_900_000  # 400k + 300k + 200k + 1M
    assert a5.wall_clock_s == 3000.0  # 1200 + 500 + 300 + 1000
    s4 = cumulative_budget(hand_experiment, "Q-S4")
    assert (s4.tokens, s4.wall_clock_s) == (2_500_000, 4000.0)  # S3 + S4
    a6 = cumulative_budget(hand_experiment, "Q-A6")
    # A6 runs on 2 devices: 1500 s * 2 / 3600 + A1's 1000 s * 1 / 3600 = 4000 / 3600 h
    assert a6.device_hours == approx(4000 / 3600)
    assert a6.complete


def _pair(rows, run_id, axis):
    (row,) = [r for r in rows if r.run_id == run_id and r.axis == axis]
    return row


def test_token_and_wall_clock_matched_pairs(hand_experiment):
    rows = matched_comparisons(hand_experiment, "loss")
    # every completed adapter run against its context's scratch TTT-E2E run, 2 axes each
    assert len(rows) == 12
    assert {(r.run_id, r.reference_id) for r in rows} == {
        ("Q-A1", "Q-S3"), ("Q-A3", "Q-S3"), ("Q-A4", "Q-S3"),
        ("Q-A2", "Q-S4"), ("Q-A5", "Q-S4"), ("Q-A6", "Q-S4")}

    # A4 tokens: A4 total 1.5M < S3 total 2M, so budget 1.5M. A4 at its total: final 2.88.
    # S3 at 1.5M lies between (1.0M, 3.10) and (1.6M, 2.98): 3.10 - 0.12 * 5/6 = 3.00.
    r = _pair(rows, "Q-A4", "tokens")
    assert (r.budget, r.value, r.value_source) == (1_500_000, 2.88, "final")
    assert (r.reference_value, r.reference_source) == (approx(3.00), "curve")
    assert r.delta == approx(-0.12)

    # A4 wall-clock: A4 1800 s < S3 3000 s. S3 at 1800 s between (1500, 3.10) and
    # (2400, 2.98): 3.10 - 0.12 * 300/900 = 3.06; delta 2.88 - 3.06 = -0.18.
    r = _pair(rows, "Q-A4", "wall_clock_s")
    assert r.budget == 1800.0
    assert r.reference_value == approx(3.06)
    assert r.delta == approx(-0.18)

    # A3 tokens: 1.2M; S3 at 1.2M: 3.10 - 0.12 * 0.2/0.6 = 3.06; delta 2.95 - 3.06 = -0.11.
    r = _pair(rows, "Q-A3", "tokens")
    assert r.budget == 1_200_000 and r.delta == approx(-0.11)

    # A1 tokens: 1M lands exactly on S3's logged point (1.0M, 3.10): delta 2.90 - 3.10.
    r = _pair(rows, "Q-A1", "tokens")
    assert (r.reference_value, r.reference_source) == (3.10, "curve")
    assert r.delta == approx(-0.20)

    # A2 wall-clock: A2 total 1000 + 3500 = 4500 s > S4 total 4000 s, so the candidate is
    # read off its curve: points at 1000 + 2000 = 3000 s (2.90) and final 4500 s (2.75):
    # 2.90 - 0.15 * 1000/1500 = 2.80. S4 at its total: final 2.70. delta +0.10.
    r = _pair(rows, "Q-A2", "wall_clock_s")
    assert (r.budget, r.value_source, r.reference_source) == (4000.0, "curve", "final")
    assert r.value == approx(2.80)
    assert r.delta == approx(0.10)

    # A5 tokens: budget 1.9M, but S4's 32K curve starts at S3's total 2M + 250k: the
    # reference has no value at 1.9M; finals and totals are still reported.
    r = _pair(rows, "Q-A5", "tokens")
    assert (r.value, r.reference_value, r.reference_source) == (2.705, None, "before-curve")
    assert r.delta is None
    assert (r.run_total, r.reference_total) == (1_900_000, 2_500_000)
    assert (r.run_final, r.reference_final) == (2.705, 2.70)


def test_value_at_budget_without_curve_is_none_not_guessed(hand_experiment):
    # S1 logged no curve: only its total (2M tokens) has a value.
    assert value_at_budget(hand_experiment, "Q-S1", "loss", "tokens", 2_000_000) == (3.10,
                                                                                      "final")
    assert value_at_budget(hand_experiment, "Q-S1", "loss", "tokens", 1_000_000) == (None,
                                                                                      "no-curve")


def test_deltas_against_fa_control_and_scratch_e2e(hand_experiment):
    deltas = {d.run_id: d for d in control_deltas(hand_experiment, "loss")}
    expected = {  # run: (FA control, delta vs FA, scratch E2E, delta vs scratch E2E)
        "Q-A1": (None, None, "Q-S3", 2.90 - 2.92),
        "Q-A2": (None, None, "Q-S4", 2.75 - 2.70),
        "Q-A3": ("Q-A1", 2.95 - 2.90, "Q-S3", 2.95 - 2.92),
        "Q-A4": ("Q-A1", 2.88 - 2.90, "Q-S3", 2.88 - 2.92),
        "Q-A5": ("Q-A2", 2.705 - 2.75, "Q-S4", 2.705 - 2.70),
        "Q-A6": ("Q-A2", 2.708 - 2.75, "Q-S4", 2.708 - 2.70),
        "Q-S1": (None, None, "Q-S3", 3.10 - 2.92),
        "Q-S2": (None, None, "Q-S4", 2.95 - 2.70),
        "Q-S3": ("Q-S1", 2.92 - 3.10, None, None),
        "Q-S4": ("Q-S2", 2.70 - 2.95, None, None),
    }
    for run_id, (fa, d_fa, e2e, d_e2e) in expected.items():
        d = deltas[run_id]
        assert (d.fa_control_id, d.scratch_e2e_id) == (fa, e2e), run_id
        assert d.delta_vs_fa == (None if d_fa is None else approx(d_fa)), run_id
        assert d.delta_vs_scratch_e2e == (None if d_e2e is None else approx(d_e2e)), run_id


def test_success_gate_verdicts_and_numbers(hand_experiment):
    gates = {g.run_id: g for g in success_gate(hand_experiment, "loss")}
    assert set(gates) == {"Q-A4", "Q-A5", "Q-A6"}  # the adapter TTT-E2E runs

    a4 = gates["Q-A4"]  # 1800 s vs S3 3000 s: saving 40%; 2.88 - 2.92 = -0.04
    assert (a4.reference_id, a4.cost, a4.reference_cost) == ("Q-S3", 1800.0, 3000.0)
    assert a4.saving == approx(0.40) and a4.loss_delta == approx(-0.04)
    assert a4.verdict == "PASS"

    a5 = gates["Q-A5"]  # 3000 s vs S4 4000 s: saving 25% < 30%, though delta +0.005 is fine
    assert (a5.cost, a5.reference_cost) == (3000.0, 4000.0)
    assert a5.saving == approx(0.25) and a5.loss_delta == approx(0.005)
    assert a5.verdict == "FAIL" and "saving 25.0% < 30%" in a5.reason

    a6 = gates["Q-A6"]  # 2500 s vs 4000 s: saving 37.5%; delta 2.708 - 2.70 = +0.008
    assert a6.saving == approx(0.375) and a6.loss_delta == approx(0.008)
    assert a6.verdict == "PASS"


def test_gate_on_device_hours_counts_the_second_device(hand_experiment):
    # A6: (1000 * 1 + 1500 * 2) / 3600 h = S4's (3000 + 1000) / 3600 h: saving 0 -> FAIL.
    gates = {g.run_id: g for g in success_gate(hand_experiment, cost_axis="device_hours")}
    assert gates["Q-A6"].saving == approx(0.0)
    assert gates["Q-A6"].verdict == "FAIL"
    assert gates["Q-A4"].verdict == "PASS"  # single-device lineage: same as wall-clock


def test_gate_boundaries_are_inclusive(hand_run_records):
    # Exactly 30% saving (2800 s vs 4000 s) and exactly +0.01 loss (2.91 vs 2.90; in floats
    # 2.91 - 2.90 = 0.010000000000000231) must PASS: the gate says >= and <=.
    records = {r.run_id: r for r in hand_run_records}
    records["Q-S4"] = dataclasses.replace(records["Q-S4"], final_metrics={"loss": 2.90})
    records["Q-A6"] = dataclasses.replace(records["Q-A6"], wall_clock_s=900.0,
                                          device_count=1, final_metrics={"loss": 2.91})
    records["Q-A1"] = dataclasses.replace(records["Q-A1"], wall_clock_s=1900.0)
    experiment = Experiment.from_records(list(records.values()))
    gate = {g.run_id: g for g in success_gate(experiment)}["Q-A6"]
    assert gate.cost == 2800.0 and gate.saving == approx(0.30)
    assert gate.loss_delta > 0.01  # the float rounding the tolerance absorbs
    assert gate.verdict == "PASS"
    # A ten-thousandth more loss (delta 0.0101) fails.
    records["Q-A6"] = dataclasses.replace(records["Q-A6"], final_metrics={"loss": 2.9101})
    gate = {g.run_id: g for g in success_gate(Experiment.from_records(
        list(records.values())))}["Q-A6"]
    assert gate.verdict == "FAIL"


def test_gate_is_incomplete_when_lineage_unfinished(hand_run_records):
    records = {r.run_id: r for r in hand_run_records}
    records["Q-A3"] = dataclasses.replace(records["Q-A3"], status=RunStatus.FAILED,
                                          failure_reason="NaN loss at step 3")
    gates = {g.run_id: g for g in success_gate(Experiment.from_records(
        list(records.values())))}
    assert gates["Q-A4"].verdict == "INCOMPLETE"
    assert "lineage has not completed" in gates["Q-A4"].reason
    assert gates["Q-A6"].verdict == "PASS"  # A6 does not descend from A3


def test_gate_without_scratch_reference_is_incomplete(hand_run_records):
    records = [r for r in hand_run_records if r.run_id != "Q-S4"]
    gates = {g.run_id: g for g in success_gate(Experiment.from_records(records))}
    assert gates["Q-A5"].verdict == "INCOMPLETE" and gates["Q-A5"].reference_id is None


def test_scratch_references_of_different_kinds_are_an_error(hand_run_records):
    # a second completed scratch TTT-E2E run at 32K, but trained fresh at 32K (a different
    # stage and lineage from S4): which one is the reference would be a guess
    extra = dataclasses.replace(
        next(r for r in hand_run_records if r.run_id == "Q-S4"), run_id="Q-S4b",
        stage="pretrain", parent_run_ids=(), checkpoint_source=None)
    with pytest.raises(ComparisonError, match=r"2 different kinds.*'ext': \['Q-S4'\]; "
                                              r"stage 'pretrain': \['Q-S4b'\]"):
        success_gate(Experiment.from_records([*hand_run_records, extra]))


def test_interrupted_runs_count_as_incomplete(hand_run_records):
    records = {r.run_id: r for r in hand_run_records}
    reason = "SIGTERM at step 2; resume with training.load_part=all"
    # S4 (the 32K scratch TTT-E2E reference) and A3 (in A4's lineage) were interrupted
    records["Q-S4"] = dataclasses.replace(records["Q-S4"], status=RunStatus.INTERRUPTED,
                                          interrupt_reason=reason)
    records["Q-A3"] = dataclasses.replace(records["Q-A3"], status=RunStatus.INTERRUPTED,
                                          interrupt_reason=reason)
    experiment = Experiment.from_records(list(records.values()))
    gates = {g.run_id: g for g in success_gate(experiment)}
    # A3 interrupted: A4's lineage is unfinished, so no verdict on it
    assert gates["Q-A4"].verdict == "INCOMPLETE"
    assert "lineage has not completed" in gates["Q-A4"].reason
    # S4 interrupted: it is no reference, so the 32K runs have none
    assert (gates["Q-A5"].verdict, gates["Q-A5"].reference_id) == ("INCOMPLETE", None)
    assert (gates["Q-A6"].verdict, gates["Q-A6"].reference_id) == ("INCOMPLETE", None)
    # an interrupted run is never compared itself: A3 has no matched rows, and the 32K
    # adapter runs have no scratch reference to be matched against
    assert {r.run_id for r in matched_comparisons(experiment)} == {"Q-A1", "Q-A4"}
    assert not cumulative_budget(experiment, "Q-A5").complete


def _by_id(rows):
    return {r.run_id: r for r in rows}


def test_sweeps_compare_through_each_group_best(sweep_experiment):
    # groups by train loss: FA scratch {F-lr1 3.10, F-lr2 3.05, F-lr3 3.20} -> F-lr2;
    # E2E scratch {E-a 2.96, E-b 2.92, E-c interrupted} -> E-b (E-c's 2.80 never counts);
    # adapter FA {I-fa}; adapter E2E {T-x 2.925, T-y 2.95} -> T-x.
    deltas = _by_id(control_deltas(sweep_experiment, "loss"))
    expected = {  # run: (FA control, delta vs FA, scratch E2E, delta vs scratch E2E)
        "F-lr1": (None, None, "E-b", 3.10 - 2.92),  # its own group has no control
        "F-lr3": (None, None, "E-b", 3.20 - 2.92),
        "E-a": ("F-lr2", 2.96 - 3.05, None, None),
        "E-c": ("F-lr2", 2.80 - 3.05, None, None),
        "I-fa": (None, None, "E-b", 2.90 - 2.92),
        "T-y": ("I-fa", 2.95 - 2.90, "E-b", 2.95 - 2.92),
    }
    for run_id, (fa, d_fa, e2e, d_e2e) in expected.items():
        d = deltas[run_id]
        assert (d.fa_control_id, d.scratch_e2e_id) == (fa, e2e), run_id
        assert d.delta_vs_fa == (None if d_fa is None else approx(d_fa)), run_id
        assert d.delta_vs_scratch_e2e == (None if d_e2e is None else approx(d_e2e)), run_id

    # the gate: only T-x stands for the adapter E2E sweep (T-y's +0.03 would FAIL).
    # T-x lineage 1000 + 800 = 1800 s vs E-b 3000 s: saving 40%; 2.925 - 2.92 = +0.005.
    (gate,) = success_gate(sweep_experiment, "loss")
    assert (gate.run_id, gate.reference_id, gate.verdict) == ("T-x", "E-b", "PASS")
    assert gate.saving == approx(0.40) and gate.loss_delta == approx(0.005)

    # matched pairs: each adapter group's best (I-fa, T-x) against E-b, on two axes.
    rows = matched_comparisons(sweep_experiment, "loss")
    assert sorted((r.run_id, r.reference_id, r.axis) for r in rows) == [
        ("I-fa", "E-b", "tokens"), ("I-fa", "E-b", "wall_clock_s"),
        ("T-x", "E-b", "tokens"), ("T-x", "E-b", "wall_clock_s")]
    # T-x tokens: 500k + 400k = 900k < E-b's 1M. E-b at 900k lies between its logged
    # (500k, 3.10) and its final (1M, 2.92): 3.10 - 0.18 * 0.8 = 2.956; delta -0.031.
    (t_x,) = [r for r in rows if (r.run_id, r.axis) == ("T-x", "tokens")]
    assert (t_x.budget, t_x.value, t_x.value_source) == (900_000, 2.925, "final")
    assert (t_x.reference_value, t_x.reference_source) == (approx(2.956), "curve")
    assert t_x.delta == approx(-0.031)


def test_the_metric_decides_each_group_best(sweep_experiment):
    # by held-out loss the FA sweep's best is F-lr1 (3.08 < 3.12 < 3.25), not F-lr2
    deltas = _by_id(control_deltas(sweep_experiment, "eval/heldout/loss"))
    assert deltas["E-a"].fa_control_id == "F-lr1"
    assert deltas["E-a"].delta_vs_fa == approx(3.01 - 3.08)
    (gate,) = success_gate(sweep_experiment, "eval/heldout/loss")  # 2.975 - 2.97 = +0.005
    assert (gate.run_id, gate.reference_id, gate.verdict) == ("T-x", "E-b", "PASS")
    assert gate.loss_delta == approx(0.005)


def test_eval_metrics_compare_latest_result(hand_run_records):
    records = {r.run_id: r for r in hand_run_records}
    # conftest gives every 32K run an eval 'books_32k' with loss = final loss + 0.1;
    # a later result for A6 replaces it.
    records["Q-A6"] = dataclasses.replace(records["Q-A6"], eval_results=(
        *records["Q-A6"].eval_results, EvalResult("books_32k", {"loss": 2.75})))
    experiment = Experiment.from_records(list(records.values()))
    assert metric_value(experiment.runs["Q-A6"], "eval/books_32k/loss") == 2.75
    assert metric_value(experiment.runs["Q-A1"], "eval/books_32k/loss") is None
    gates = {g.run_id: g for g in success_gate(experiment, "eval/books_32k/loss")}
    # A6: 2.75 - (2.70 + 0.1) = -0.05, saving 37.5% -> PASS; A4 (8K) has no such eval.
    assert gates["Q-A6"].loss_delta == approx(-0.05) and gates["Q-A6"].verdict == "PASS"
    assert gates["Q-A4"].verdict == "INCOMPLETE"


def test_curve_points_past_the_total_yield_to_the_final_value(hand_run_records):
    records = hand_run_records
    points = [("Q-S3", MetricPoint("loss", 400, 2_000_000, 3000.0, 9.99))]
    experiment = Experiment.from_records(records, points)
    assert value_at_budget(experiment, "Q-S3", "loss", "tokens", 2_000_000) == (2.92, "final")
