"""`ttt report`: reads <exp-dir>/ledger.sqlite, renders every format, writes plots,
reports sweeps and interrupted runs, defaults to the held-out loss, and fails with a
clear message (exit 2) on a missing ledger or folder or an unknown metric."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ttt_cli.main import main
from ttt_ledger import EvalResult, Ledger, MetricPoint, RestoreStatus, RunRecord, build_stage_plan
from ttt_train.families import plan_family

FOLDER = "pilot_cli"
# run id: (tokens, wall-clock s, final loss); the lineages are the runbook's
BUDGETS = {"Q-A1": (600, 100.0, 3.00), "Q-A3": (200, 40.0, 3.05), "Q-A4": (200, 60.0, 2.95),
           "Q-A6": (400, 90.0, 2.905), "Q-S3": (800, 200.0, 3.10), "Q-S4": (400, 100.0, 2.90)}


@pytest.fixture
def exp_dir(tmp_path):
    """A ledger written the way the pipeline writes it: plan, start, progress, complete."""
    exp_dir = tmp_path / "experiments"
    ledger = Ledger.open(exp_dir)
    ledger.add_plan(build_stage_plan(plan_family("qwen2_5_0_5b"), FOLDER, budget="pilot"))
    for run_id, (tokens, wall, loss) in BUDGETS.items():
        restore = RestoreStatus.fresh() if run_id in ("Q-S3",) else RestoreStatus.params()
        ledger.start_run(FOLDER, run_id, restore=restore, device_kind="cpu")
        ledger.record_progress(FOLDER, run_id, steps_completed=2, tokens_seen=tokens // 2,
                               wall_clock_s=wall / 2, points=[
                                   MetricPoint("loss", 2, tokens // 2, wall / 2, loss + 0.2)])
        ledger.complete_run(FOLDER, run_id, final_metrics={"loss": loss}, steps_completed=4,
                            tokens_seen=tokens, wall_clock_s=wall)
    for run_id in ("Q-A6", "Q-S4"):
        ledger.append_eval(FOLDER, run_id, EvalResult(
            "books_32k", {"loss": 3.0}, 32768, [3.5 - i / 1000 for i in range(512)]))
    ledger.fail_run(FOLDER, "Q-A5", "source checkpoint adapt-qwen05-e2e-8K-from-import missing")
    ledger.close()
    return exp_dir


def run_cli(capsys, *args):
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_every_format(capsys, exp_dir):
    base = ["--exp-folder", FOLDER, "--exp-dir", str(exp_dir)]
    code, table, _ = run_cli(capsys, *base)  # table is the default
    assert code == 0 and "Success gate" in table and "Q-A5: source checkpoint" in table

    code, out, _ = run_cli(capsys, *base, "--format", "csv")
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and len(rows) == 10
    # A6 lineage: A1 100 s + A6 90 s = 190 s vs S3 200 s + S4 100 s = 300 s:
    # saving 1 - 190/300 = 36.7%, delta 2.905 - 2.90 = +0.005 -> PASS
    assert rows["Q-A6"]["gate"] == "PASS"
    assert float(rows["Q-A6"]["gate_saving"]) == pytest.approx(1 - 190 / 300)
    # A4 lineage: 100 + 40 + 60 = 200 s vs S3 200 s: saving 0 -> FAIL
    assert rows["Q-A4"]["gate"] == "FAIL"
    assert rows["Q-A5"]["status"] == "failed"

    code, out, _ = run_cli(capsys, *base, "--format", "json")
    data = json.loads(out)
    assert code == 0 and {g["run_id"]: g["verdict"] for g in data["gates"]} == {
        "Q-A4": "FAIL", "Q-A6": "PASS"}

    code, out, _ = run_cli(capsys, *base, "--format", "md")
    assert code == 0 and out.startswith(f"### Runs: `{FOLDER}`")
    assert "| Q-A6 | Q-S4 |" in out  # a gate row


def test_report_writes_plots(capsys, exp_dir, tmp_path):
    plots = tmp_path / "plots"
    code, _, err = run_cli(capsys, "--exp-folder", FOLDER, "--exp-dir", str(exp_dir),
                           "--plots", str(plots))
    assert code == 0
    written = sorted(p.name for p in plots.iterdir())
    assert written == ["frontier_loss.png", "position_nll_qwen2_5_0_5b_books_32k.png",
                       "train_loss_qwen2_5_0_5b.png"]
    for name in written:
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"wrote {plots / name}" in err


def test_default_exp_dir_is_experiments_in_cwd(capsys, exp_dir, monkeypatch):
    monkeypatch.chdir(exp_dir.parent)
    code, out, _ = run_cli(capsys, "--exp-folder", FOLDER, "--format", "csv")
    assert code == 0 and out.startswith("exp_folder,run_id")


def test_missing_ledger_and_folder_are_clear_errors(capsys, exp_dir, tmp_path):
    code, out, err = run_cli(capsys, "--exp-folder", FOLDER, "--exp-dir",
                             str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert f"no ledger at {tmp_path / 'nope' / 'ledger.sqlite'}" in err
    assert not (tmp_path / "nope").exists()

    code, _, err = run_cli(capsys, "--exp-folder", "other", "--exp-dir", str(exp_dir))
    assert code == 2 and "no runs in experiment folder 'other'" in err and FOLDER in err


def test_help_lists_report(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "report" in capsys.readouterr().out


SWEEP = "lr_sweep"
# `ttt train` runs of one kind (run id: lr), the way the training app records them:
# run id: (final train loss, held-out loss); None: SIGTERM at step 3 of 8
LR_SWEEP = {"fa-lr1e-3": (3.30, 3.40), "fa-lr3e-3": (3.20, 3.45), "fa-lr1e-2": (3.50, 3.60),
            "fa-lr3e-2": None}


@pytest.fixture
def sweep_dir(tmp_path):
    exp_dir = tmp_path / "experiments"
    with Ledger.open(exp_dir) as ledger:
        for run_id, losses in LR_SWEEP.items():
            ledger.add_run(RunRecord(run_id=run_id, exp_folder=SWEEP, family="smollm2_135m",
                                     path="scratch", stage="pretrain", model_kind="fa",
                                     train_mode="pretrain", context_length=8192,
                                     planned_steps=8))
            ledger.start_run(SWEEP, run_id, restore=RestoreStatus.fresh(), device_kind="cpu")
            if losses is None:
                ledger.interrupt_run(SWEEP, run_id, reason="SIGTERM at step 3; resume with "
                                     "training.load_part=all", steps_completed=3,
                                     tokens_seen=3 * 8192, wall_clock_s=6.0)
                continue
            train, heldout = losses
            ledger.append_eval(SWEEP, run_id, EvalResult(
                "heldout", {"loss": heldout, "tokens": 4096, "sequences": 4}, 8192))
            ledger.complete_run(SWEEP, run_id, final_metrics={"loss": train,
                                                              "heldout_loss": heldout},
                                steps_completed=8, tokens_seen=8 * 8192, wall_clock_s=16.0)
    return exp_dir


def test_report_of_a_sweep(capsys, sweep_dir):
    base = ["--exp-folder", SWEEP, "--exp-dir", str(sweep_dir)]
    code, table, err = run_cli(capsys, *base)
    assert (code, err) == (0, "")
    # held-out loss by default: 3.40 < 3.45 < 3.60, so lr 1e-3 is the best of the sweep
    assert "(metric eval/heldout/loss: default: held-out loss, recorded by 3 of 4 runs;" \
        in table
    assert ("  smollm2_135m scratch pretrain FA 8K: fa-lr1e-3 3.4000*, fa-lr3e-3 3.4500, "
            "fa-lr1e-2 3.6000, fa-lr3e-2 - (interrupted)") in table
    assert "  fa-lr3e-2 at step 3: SIGTERM at step 3; resume with training.load_part=all" \
        in table

    # by train loss 3.20 < 3.30 < 3.50: lr 3e-3 is the best
    code, out, _ = run_cli(capsys, *base, "--metric", "loss", "--format", "csv")
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and {k for k, r in rows.items() if r["best_in_group"] == "True"} == {
        "fa-lr3e-3"}
    assert rows["fa-lr3e-2"]["status"] == "interrupted"
    assert rows["fa-lr3e-2"]["steps_completed"] == "3"


def test_unknown_metric_is_refused_listing_the_folders_metrics(capsys, sweep_dir):
    code, out, err = run_cli(capsys, "--exp-folder", SWEEP, "--exp-dir", str(sweep_dir),
                             "--metric", "val_loss")
    assert (code, out) == (2, "")
    assert err == ("ttt report: metric 'val_loss' is not recorded in experiment folder "
                   "'lr_sweep'; metrics there: eval/heldout/loss, eval/heldout/sequences, "
                   "eval/heldout/tokens, heldout_loss, loss\n")
