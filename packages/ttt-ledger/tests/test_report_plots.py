"""Reports render in all four formats with the hand-worked numbers; plots are real PNGs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import struct

import pytest

from ttt_ledger import FORMATS, Experiment, Ledger, LedgerError, RunStatus, build_report, render
from ttt_ledger.plots import binned, pareto_front, plot_frontier, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def report(tmp_path, hand_run_records, hand_metric_points):
    # through the store, so the report sees exactly what a reader of the ledger sees
    ledger = Ledger.open(tmp_path)
    for record in hand_run_records:
        ledger.add_run(record)
    for run_id, point in hand_metric_points:
        ledger.log_metrics("hand", run_id, [point])
    ledger.fail_run("hand", "Q-S2", "NaN loss at step 3")
    return build_report(ledger.experiment("hand"))


def test_all_formats_render(report):
    for fmt in FORMATS:
        text = render(report, fmt)
        assert "Q-A6" in text and "Q-S4" in text, fmt
    with pytest.raises(LedgerError, match="report format 'xml'"):
        render(report, "xml")


def test_table_shows_runs_pairs_gate_and_failures(report):
    text = render(report, "table")
    assert text.count("PASS") == 2 and text.count("FAIL") == 1
    assert "Q-S2: NaN loss at step 3" in text
    a5 = next(line for line in text.splitlines() if line.startswith("Q-A5") and "FAIL" in line)
    assert "25.0%" in a5 and "+0.0050" in a5


def test_csv_has_raw_cumulative_numbers(report):
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(render(report, "csv")))}
    assert len(rows) == 10
    assert float(rows["Q-A5"]["cum_wall_clock_s"]) == 3000.0  # 1200 + 500 + 300 + 1000
    assert int(rows["Q-A5"]["cum_tokens"]) == 1_900_000
    assert rows["Q-A5"]["parent_run_ids"] == "Q-A4"
    assert float(rows["Q-A6"]["delta_vs_scratch_e2e"]) == pytest.approx(0.008)
    assert float(rows["Q-A6"]["device_hours"]) == pytest.approx(1500 * 2 / 3600)
    assert (rows["Q-A4"]["gate"], rows["Q-A5"]["gate"], rows["Q-A1"]["gate"]) == ("PASS",
                                                                                  "FAIL", "")
    assert rows["Q-S2"]["status"] == "failed"
    assert rows["Q-S2"]["failure_reason"] == "NaN loss at step 3"


def test_json_is_strict_and_complete(report):
    data = json.loads(render(report, "json"))
    assert data["exp_folder"] == "hand" and data["metric"] == "loss"
    runs = {r["run_id"]: r for r in data["runs"]}
    assert runs["Q-A5"]["cumulative"]["runs"] == ["Q-A5", "Q-A4", "Q-A3", "Q-A1"]
    assert len(runs["Q-A5"]["eval_results"][0]["per_position_nll"]) == 2048
    assert {g["run_id"]: g["verdict"] for g in data["gates"]} == {
        "Q-A4": "PASS", "Q-A5": "FAIL", "Q-A6": "PASS"}
    # S2 failed, so S2 is not a completed FA control: S4 has no FA delta
    assert runs["Q-S4"]["fa_control"] is None
    assert len(data["comparisons"]) == 12


def test_json_survives_a_diverged_loss(hand_run_records):
    records = [dataclasses.replace(r, final_metrics={"loss": float("nan")})
               if r.run_id == "Q-A2" else r for r in hand_run_records]
    data = json.loads(render(build_report(Experiment.from_records(records)), "json"))
    assert {r["run_id"]: r for r in data["runs"]}["Q-A2"]["value"] == "nan"


def _md_tables(text):
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _cells(line):
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def test_markdown_tables_are_paste_ready(report):
    text = render(report, "md")
    tables = _md_tables(text)
    assert len(tables) == 3  # runs, matched comparisons, gate
    for table in tables:
        width = len(_cells(table[0]))
        assert all(c in ("---", "---:") for c in _cells(table[1]))
        assert all(len(_cells(row)) == width for row in table), table[0]
    runs = {(cells := _cells(row))[0]: dict(zip(_cells(tables[0][0]), cells, strict=True))
            for row in tables[0][2:]}
    assert len(runs) == 10
    assert runs["Q-A6"]["Δloss vs E2E scratch"] == "+0.008"
    assert runs["Q-A6"]["Ctx"] == "32K" and runs["Q-A6"]["Tokens (cum.)"] == "1.50M"
    assert runs["Q-A4"]["Δloss vs FA"] == "-0.020"
    assert runs["Q-S3"]["Δloss vs E2E scratch"] == "—"
    gate_rows = {_cells(r)[0]: _cells(r) for r in tables[2][2:]}
    assert gate_rows["Q-A5"][4:] == ["25.0%", "2.7050", "2.7000", "+0.0050", "FAIL",
                                     "saving 25.0% < 30%; delta loss +0.0050 <= 0.01"]
    assert "- Q-S2 failed: NaN loss at step 3" in text


def test_default_metric_is_named_in_every_format(report):
    # the hand matrix records no held-out eval: the train loss, and the report says why
    reason = "default: train loss; no run records a held-out loss"
    assert (report.metric, report.metric_reason) == ("loss", reason)
    assert f"(metric loss: {reason}; generated" in render(report, "table")
    assert f"Metric: `loss` ({reason})." in render(report, "md")
    assert json.loads(render(report, "json"))["metric_reason"] == reason
    assert {r["metric"] for r in csv.DictReader(io.StringIO(render(report, "csv")))} == {
        "loss"}


@pytest.fixture
def sweep_report(tmp_path, sweep_experiment):
    ledger = Ledger.open(tmp_path)
    for record in sweep_experiment.runs.values():
        ledger.add_run(record)
    return build_report(ledger.experiment("sweep"))


def test_sweep_report_lists_every_run_and_marks_each_group_best(sweep_report):
    # by the default held-out loss: FA scratch F-lr1 3.08 < 3.12 < 3.25; E2E scratch
    # E-b 2.97 < 3.01 (E-c interrupted); adapter E2E T-x 2.975 < 3.00
    assert sweep_report.metric == "eval/heldout/loss"
    assert sweep_report.metric_reason == "default: held-out loss, recorded by 8 of 9 runs"
    text = render(sweep_report, "table")
    assert ("Sweeps (runs of one kind; the matched comparisons and the gate use each group's "
            "best completed run by eval/heldout/loss, marked *):\n"
            "  qwen2_5_0_5b scratch pretrain FA 8K: F-lr1 3.0800*, F-lr2 3.1200, F-lr3 3.2500\n"
            "  qwen2_5_0_5b scratch pretrain E2E 8K: E-a 3.0100, E-b 2.9700*, "
            "E-c - (interrupted)\n"
            "  qwen2_5_0_5b adapter adapt E2E 8K from pretrain FA 8K: T-x 2.9750*, T-y 3.0000\n"
            ) in text
    assert ("Interrupted (not finished; start the run again to resume):\n"
            "  E-c at step 50: SIGTERM at step 50; resume with training.load_part=all") in text
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(render(sweep_report, "csv")))}
    assert len(rows) == 9
    assert [k for k, r in rows.items() if r["best_in_group"] == "True"] == [
        "F-lr1", "E-b", "I-fa", "T-x"]
    assert rows["E-c"]["status"] == "interrupted"
    assert rows["E-c"]["interrupt_reason"].startswith("SIGTERM at step 50")
    assert rows["T-y"]["group"] == "qwen2_5_0_5b adapter adapt E2E 8K from pretrain FA 8K"
    # T-x: 2.975 - E-b 2.97 = +0.005 at 1800 s vs 3000 s -> PASS; T-y is not gated
    assert (rows["T-x"]["gate"], rows["T-y"]["gate"]) == ("PASS", "")
    assert float(rows["E-a"]["delta_vs_fa"]) == pytest.approx(3.01 - 3.08)

    data = json.loads(render(sweep_report, "json"))
    assert [(g["run_ids"], g["best_id"]) for g in data["groups"]] == [
        (["F-lr1", "F-lr2", "F-lr3"], "F-lr1"), (["E-a", "E-b", "E-c"], "E-b"),
        (["I-fa"], "I-fa"), (["T-x", "T-y"], "T-x")]
    assert data["groups"][3]["key"]["parents"][0]["model_kind"] == "fa"

    tables = _md_tables(render(sweep_report, "md"))
    marks = {_cells(row)[0]: _cells(row)[-1] for row in tables[0][2:]}
    assert marks == {"F-lr1": "*", "F-lr2": "", "F-lr3": "", "E-a": "", "E-b": "*",
                     "E-c": "", "I-fa": "", "T-x": "*", "T-y": ""}  # I-fa is no sweep
    assert "- E-c interrupted at step 50: SIGTERM" in render(sweep_report, "md")


def test_no_sweep_section_without_sweeps(report):
    assert "Sweeps" not in render(report, "table") and "Sweeps" not in render(report, "md")


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def test_plots_are_written_and_non_empty(tmp_path, hand_experiment):
    written = write_plots(hand_experiment, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert names == ["frontier_loss.png", "position_nll_qwen2_5_0_5b_books_32k.png",
                     "train_loss_qwen2_5_0_5b.png"]
    for path in written:
        assert path.stat().st_size > 10_000
    # two context lengths (8K, 32K) -> two panels of 5.5 x 4.5 inches at 120 dpi
    assert _png_size(tmp_path / "plots" / "frontier_loss.png") == (1320, 540)
    assert _png_size(tmp_path / "plots" / "position_nll_qwen2_5_0_5b_books_32k.png") == (840,
                                                                                        540)


def test_no_plot_without_data(tmp_path, hand_run_records):
    planned = [dataclasses.replace(r, status=RunStatus.PLANNED, eval_results=())
               for r in hand_run_records]
    experiment = Experiment.from_records(planned)
    assert plot_frontier(experiment, tmp_path / "f.png") is None
    assert write_plots(experiment, tmp_path) == []


def test_frontier_and_binning_helpers():
    # (cost, loss): (3, 2.0) is dominated by (2, 1.9); (1, 2.5) and (4, 1.5) are not.
    assert pareto_front([(3, 2.0), (1, 2.5), (2, 1.9), (4, 1.5)]) == [(1, 2.5), (2, 1.9),
                                                                       (4, 1.5)]
    xs, ys = binned([1.0, 3.0, 5.0, 7.0, 9.0, 11.0], 3)
    assert ys == [2.0, 6.0, 10.0] and xs == [1.5, 3.5, 5.5]


@pytest.mark.parametrize("seconds, text", [(3.24, "3.2 s"), (59.9, "59.9 s"), (90, "1.5 min"),
                                           (3600 * 12.4149, "12.41 h")])
def test_durations_keep_a_readable_unit(seconds, text):
    from ttt_ledger.report import fmt_duration

    assert fmt_duration(seconds) == text


@pytest.mark.parametrize("hours, text", [(0.0, "0.00"), (0.000482, "0.00048"), (0.35, "0.35"),
                                         (12.44, "12.4"), (1204.0, "1,204.0")])
def test_device_hours_of_a_cpu_pilot_are_not_rounded_to_zero(hours, text):
    from ttt_ledger.report import fmt_hours

    assert fmt_hours(hours) == text


def test_bundle_evals_get_their_own_columns(tmp_path, hand_run_records):
    """Eval results a bundle records (ctx<N>, ruler, decode) appear as report columns with
    the recorded values; runs without them are left out of that section."""
    from ttt_ledger import EvalResult
    from ttt_ledger.external import context_eval_name

    ledger = Ledger.open(tmp_path)
    for record in hand_run_records:
        ledger.add_run(record)
    run = hand_run_records[0].run_id
    ledger.append_eval("hand", run, EvalResult(context_eval_name(1024), {
        "loss": 3.25, "inside_window": 3.5, "beyond_window": 3.125, "tokens": 4096}, 1024))
    ledger.append_eval("hand", run, EvalResult(context_eval_name(256), {"loss": 3.75}, 256))
    ledger.append_eval("hand", run, EvalResult("ruler", {"rank": 0.625, "generation": 0.0}))
    ledger.append_eval("hand", run, EvalResult("decode", {"nll_slope_per_1k": -0.0625}))
    report = build_report(ledger.experiment("hand"))
    table = render(report, "table")
    section = table.split("External evaluation")[1]
    header = section.splitlines()[2].split()
    assert header[:2] == ["run", "model"]
    assert "loss@256" in header and "loss@1024" in header and "beyond-window@1024" in header
    row = next(line for line in section.splitlines() if line.startswith(run))
    for value in ("3.7500", "3.2500", "3.1250", "0.6250", "0.0000", "-0.0625"):
        assert value in row
    assert sum(line.startswith("Q-") for line in section.splitlines()) == 1
    assert "### External evaluation" in render(report, "md")
