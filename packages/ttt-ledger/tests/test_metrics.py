"""The metric a report compares: the held-out loss by default when recorded, else the
train loss; a metric no run records is refused naming the ones that are."""

from __future__ import annotations

import dataclasses

import pytest

from ttt_ledger import (
    EvalResult,
    Experiment,
    MetricError,
    available_metrics,
    check_metric,
    default_metric,
    metric_value,
)


def test_metrics_found_in_a_folder(sweep_experiment):
    # every run records final `loss`; the completed ones an eval `heldout` with key `loss`
    assert available_metrics(sweep_experiment) == ["eval/heldout/loss", "loss"]
    check_metric(sweep_experiment, "eval/heldout/loss")  # accepted: no error


def test_unknown_metric_is_refused_in_one_line(sweep_experiment):
    with pytest.raises(MetricError) as e:
        check_metric(sweep_experiment, "eval/heldout/los")
    assert str(e.value) == ("metric 'eval/heldout/los' is not recorded in experiment folder "
                            "'sweep'; metrics there: eval/heldout/loss, loss")
    empty = Experiment.from_records([dataclasses.replace(r, final_metrics={}, eval_results=())
                                     for r in sweep_experiment.runs.values()])
    with pytest.raises(MetricError, match="metrics there: none$"):
        check_metric(empty, "loss")
    with pytest.raises(MetricError, match="expected 'eval/<eval name>/<key>'"):
        metric_value(sweep_experiment.runs["E-a"], "eval/heldout")


def test_default_is_heldout_loss_when_any_run_records_it(sweep_experiment, hand_experiment):
    choice = default_metric(sweep_experiment)
    assert choice.name == "eval/heldout/loss"
    assert choice.reason == "default: held-out loss, recorded by 8 of 9 runs"  # not E-c
    # the hand matrix records only books_32k evals: the train loss it is
    choice = default_metric(hand_experiment)
    assert (choice.name, choice.reason) == (
        "loss", "default: train loss; no run records a held-out loss")
    # an eval named heldout without a loss key is no held-out loss
    records = [dataclasses.replace(r, eval_results=(EvalResult("heldout", {"tokens": 8.0}),))
               for r in hand_experiment.runs.values()]
    assert default_metric(Experiment.from_records(records)).name == "loss"
