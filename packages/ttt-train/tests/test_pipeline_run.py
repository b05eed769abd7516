"""What decides `ttt pipeline`'s exit status and what `ttt train` ends with: stages that did
not complete come first, then a failed evaluation measure; the stage line says where to
resume an interrupted run."""

from __future__ import annotations

from pathlib import Path

from ttt_eval.heldout import HeldoutLoss
from ttt_train.pipeline import StageOutcome
from ttt_train.pipeline_run import PipelineRun
from ttt_train.stage import StageResult
from ttt_train.stage_text import describe_result
from ttt_train.summary import evaluation_lines


def _outcome(run_id: str, status: str) -> StageOutcome:
    return StageOutcome(run_id, "f", "c", None, f"{run_id}-out", status)


FAILED_BUNDLE = {"failed": True, "models": [
    {"name": "S-S2", "kind": "fa", "skipped": [], "failures": [
        {"measure": "trend", "reason": "too few tokens"}]}]}


def test_problems_are_the_stages_first_then_the_failed_measures():
    done = [_outcome("S-S1", "completed"), _outcome("S-S2", "skipped")]
    assert PipelineRun(done, None, None).problems == []
    assert PipelineRun(done, None, {"failed": False, "models": []}).problems == []
    assert PipelineRun(done, None, FAILED_BUNDLE).problems == [
        "evaluation FAILED S-S2 trend: too few tokens"]
    bad = [*done, _outcome("S-S3", "failed"), _outcome("S-S4", "blocked")]
    assert PipelineRun(bad, None, FAILED_BUNDLE).problems == [
        "2 stage(s) did not complete: S-S3, S-S4"]


def test_evaluation_lines_are_summary_notes_and_what_was_written():
    bundle = {"failed": False, "models": [
        {"name": "S-S2", "kind": "fa", "failures": [], "skipped": [
            {"measure": "ruler", "reason": "no tokenizer given"}]}]}
    paths = {"json": Path("a.json"), "csv": Path("a.csv"), "plots": [], "ledger_records": 2}
    assert evaluation_lines(bundle, paths) == [
        "S-S2 (fa)", "[eval] note: S-S2: ruler not run: no tokenizer given",
        "wrote a.json, a.csv and 0 plots; 2 ledger eval records"]


def test_the_stage_line_has_losses_or_where_to_resume():
    done = StageResult("S-S1", "s1", "completed", 8, 1024, 1.5, 3.25,
                       HeldoutLoss(3.5, 64, 2, ()), Path("ck"), Path("run"))
    assert describe_result(done) == ("S-S1 completed at step 8, train loss 3.2500, held-out "
                                     "loss 3.5000; run dir run")
    stopped = StageResult("S-S1", "s1", "interrupted", 4, 512, 1.0, None, None, Path("ck"),
                          Path("run"), signal=15)
    assert describe_result(stopped) == ("S-S1 interrupted at step 4 (checkpointed); resume "
                                        "with training.load_part=all; run dir run")
