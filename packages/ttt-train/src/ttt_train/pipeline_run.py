"""One `ttt pipeline` end to end: the stages, then their table, the evaluation bundle on
the final checkpoints and the ledger report, echoed in that order; and what decides its
exit status (an interrupt, a stage that did not complete, a failed measure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttt_eval.bundle import failure_lines
from ttt_train.pipeline import Pipeline, PipelineOptions, StageOutcome
from ttt_train.summary import evaluation_lines, stage_summary


@dataclass(frozen=True)
class PipelineRun:
    """What a pipeline did: each stage's outcome, the signal that stopped it (None: not
    interrupted) and its evaluation bundle (None: not run)."""

    outcomes: list[StageOutcome]
    interrupted: int | None
    bundle: dict[str, Any] | None

    @property
    def problems(self) -> list[str]:
        """Why the pipeline failed, one line each: the stages that did not complete, else
        the bundle's failed measures; empty when it succeeded."""
        bad = [o.run_id for o in self.outcomes if o.status in ("failed", "blocked")]
        if bad:
            return [f"{len(bad)} stage(s) did not complete: {', '.join(bad)}"]
        if self.bundle is not None and self.bundle["failed"]:
            return [f"evaluation FAILED {line}" for line in failure_lines(self.bundle)]
        return []


def run_pipeline(opts: PipelineOptions, echo: Callable[[str], None] = print) -> PipelineRun:
    """Run every stage; then echo their table, the bundle (unless `opts.bundle` is off or
    a signal stopped the stages) and the ledger report. Bad input raises (PipelineError,
    LedgerError, EvalError); a failed stage or measure is in `problems`, never raised."""
    pipeline = Pipeline(opts, echo)
    outcomes = pipeline.run()
    echo("")
    echo(stage_summary(pipeline))
    bundle = None
    if opts.bundle and pipeline.interrupted is None:
        evaluated = pipeline.evaluate()
        if evaluated is not None:
            bundle = evaluated[0]
            for line in evaluation_lines(*evaluated):
                echo(line)
    echo("")
    echo(pipeline.report())
    return PipelineRun(outcomes, pipeline.interrupted, bundle)
