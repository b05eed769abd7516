"""Which metric a comparison reads, and how a run's value of it is found.

A metric is a final-metric name (`loss`, `heldout_loss`: what the training app records
at the end of a run) or `eval/<eval name>/<key>` (the latest eval result of that name).
Reports compare the held-out loss `eval/heldout/loss` by default when any run of the
folder records it (it measures what the run learned, not what it memorised), and the
train loss `loss` otherwise; the report says which one it used and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttt_ledger.records import Experiment, LedgerError, RunRecord

HELDOUT_METRIC = "eval/heldout/loss"
TRAIN_METRIC = "loss"


class MetricError(LedgerError, ValueError):
    """A metric name that is malformed or that no run of the folder records."""


@dataclass(frozen=True)
class MetricChoice:
    """The metric a report compares, and why (default or asked for)."""

    name: str
    reason: str


def metric_value(record: RunRecord, metric: str) -> float | None:
    """A run's value of `metric`: `eval/<eval name>/<key>` reads the latest eval result of
    that name; any other name reads final_metrics. None when absent."""
    if metric.startswith("eval/"):
        parts = metric.split("/", 2)
        if len(parts) != 3:
            raise MetricError(f"metric {metric!r}: expected 'eval/<eval name>/<key>'")
        for result in reversed(record.eval_results):
            if result.name == parts[1] and parts[2] in result.metrics:
                return result.metrics[parts[2]]
        return None
    return record.final_metrics.get(metric)


def available_metrics(experiment: Experiment) -> list[str]:
    """Every metric some run of the folder records: final-metric names and eval forms."""
    names: set[str] = set()
    for record in experiment.runs.values():
        names.update(record.final_metrics)
        names.update(f"eval/{result.name}/{key}" for result in record.eval_results
                     for key in result.metrics)
    return sorted(names)


def default_metric(experiment: Experiment) -> MetricChoice:
    """The held-out loss when any run records one, else the train loss."""
    with_heldout = sum(metric_value(r, HELDOUT_METRIC) is not None
                       for r in experiment.runs.values())
    if with_heldout:
        return MetricChoice(HELDOUT_METRIC, f"default: held-out loss, recorded by "
                                            f"{with_heldout} of {len(experiment.runs)} runs")
    return MetricChoice(TRAIN_METRIC, "default: train loss; no run records a held-out loss")


def check_metric(experiment: Experiment, metric: str) -> None:
    """Refuse a metric no run of the folder records, naming the ones it does record."""
    known = available_metrics(experiment)
    if metric not in known:
        raise MetricError(f"metric {metric!r} is not recorded in experiment folder "
                          f"{experiment.exp_folder!r}; metrics there: "
                          f"{', '.join(known) or 'none'}")
