"""The pipeline's closing outputs: the table of every stage with its lineage (input ->
output checkpoint, parent run), tokens, wall-clock and held-out loss, read from the ledger;
and the lines of its evaluation bundle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ttt_eval.bundle import bundle_summary, describe_written, skip_notes
from ttt_ledger import Ledger, ledger_path

if TYPE_CHECKING:
    from ttt_train.pipeline import Pipeline


def stage_summary(pipeline: Pipeline) -> str:
    opts = pipeline.opts
    with Ledger(ledger_path(opts.exp_dir)) as ledger:
        runs = {r.run_id: r for r in ledger.runs(opts.exp_folder)}
    headers = ["run", "parent", "input checkpoint", "output checkpoint", "ctx", "steps",
               "tokens", "wall s", "train loss", "held-out loss", "status"]
    rows = []
    for o in pipeline.outcomes:
        r = runs.get(o.run_id)
        held = None
        if r is not None:
            for e in reversed(r.eval_results):
                if e.name == "heldout":
                    held = e.metrics.get("loss")
                    break
        rows.append([
            o.run_id, ",".join(r.parent_run_ids) if r and r.parent_run_ids else "-",
            o.input_checkpoint or "fresh", o.output_checkpoint,
            str(r.context_length) if r else "-", str(r.steps_completed) if r else "-",
            f"{r.tokens_seen:,}" if r else "-", f"{r.wall_clock_s:.1f}" if r else "-",
            _num(r.final_metrics.get("loss") if r else None), _num(held), o.status])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["Stages (lineage, tokens, wall-clock, loss):",
             "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    for o in pipeline.outcomes:
        if o.error:
            lines.append(f"  {o.run_id}: {o.error}")
    return "\n".join(lines)


def evaluation_lines(bundle: dict[str, Any], paths: dict[str, Any]) -> list[str]:
    """The bundle's line per checkpoint, a note for each measure not run (a store without
    its tokenizer skips RULER), and what was written."""
    return [bundle_summary(bundle), *(f"[eval] note: {note}" for note in skip_notes(bundle)),
            describe_written(paths)]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
