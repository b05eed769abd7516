"""What `ttt train` prints: the config a run would use, with the schedule lengths derived
from total_steps noted (so a reader sees which values were not given), and the line a
stage ends with."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from ttt_train.translate import translate

if TYPE_CHECKING:
    from ttt_train.stage import StageResult


def config_text(composed: Any) -> str:
    """The resolved config of a composed run as YAML, after one `# key=value (derived: ...)`
    comment per derived schedule length; nothing is trained or written."""
    spec = translate(composed)
    return ("".join(f"# {line}\n" for line in spec.derived)
            + yaml.safe_dump(spec.resolved, sort_keys=False))


def describe_result(result: StageResult) -> str:
    """One line: how the stage ended (with where to resume an interrupted one), its losses
    and its run folder."""
    if result.status == "interrupted" and result.signal is not None:
        return (f"{result.run_id} interrupted at step {result.step} (checkpointed); resume "
                f"with training.load_part=all; run dir {result.run_dir}")
    heldout = f", held-out loss {result.heldout.loss:.4f}" if result.heldout else ""
    train = f", train loss {result.train_loss:.4f}" if result.train_loss is not None else ""
    return f"{result.run_id} {result.status} at step {result.step}{train}{heldout}; " \
           f"run dir {result.run_dir}"
