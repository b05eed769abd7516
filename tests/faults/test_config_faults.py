"""Config traps through `ttt train`: each wrong value or type is refused in one line that names
the key and where it was set, before anything is written; schedule lengths pinned in a family
file follow a new total_steps, and the run says which values it derived."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultlib import one_line_error
from ttt_app_testlib import tiny_overrides, ttt_subprocess

TRAPS = {
    "model.hidden_size=64.5": ("model.hidden_size", "64.5"),
    "model.prime=1": ("model.prime", "true or false"),
    "training.total_steps=abc": ("training.total_steps", "abc"),
    "+training.total_step=5": ("training.total_step", "did you mean training.total_steps"),
    "training.loss_average=sequence": ("training.loss_average", "sequence"),
    "model.resid_pdrop=0.1": ("model.resid_pdrop", "dropout"),
    "training.optimizer_outer.optimizer_type=sgd": ("optimizer_type", "adamw"),
    "training.wandb_mode=cloud": ("training.wandb_mode", "cloud"),
}


@pytest.mark.parametrize("override", list(TRAPS))
def test_a_config_trap_is_refused_in_one_line_before_anything_is_written(
        tmp_path: Path, store: Path, override: str):
    proc = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name="trap"), override])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    line = one_line_error(out, "ttt train:")
    for part in TRAPS[override]:
        assert part in line, line
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "checkpoints").exists()


def test_schedule_lengths_follow_a_new_total_steps():
    proc = ttt_subprocess(["train", "+experiment=125m/pretrain-e2e-8K",
                           "deploy_paths.data.dclm=/data/dclm", "training.total_steps=40",
                           "training.optimizer_outer.lr_warmup_steps=2", "--print-config"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "# training.optimizer_outer.lr_decay_steps=40 (derived: 4800 of 4800" in out
    assert "# training.ilr_warmup_steps=4 (derived: 480 of 4800" in out
    assert "lr_warmup_steps=" not in out.split("# training.ilr")[0].split("decay_steps=40")[1]
    assert "    lr_warmup_steps: 2\n" in out  # set for this run: kept as given
    assert "  ilr_warmup_steps: 4\n" in out and "    lr_decay_steps: 40\n" in out
