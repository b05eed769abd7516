"""The study end to end at its quick plan: corpora, the three arms over two seeds, every
measure, the ladder and the page; then again with `--compare`, which must find every
clock-free figure equal (runs retrained from scratch); and the page redrawn from the saved
figures is the page the run wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttt_train.study.main import main

pytestmark = pytest.mark.slow


def test_quick_study_writes_the_page_and_reproduces(tmp_path: Path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["--out", str(out), "--work", str(work), "--plan", "quick"]) == 0
    page = (out / "study.md").read_text()
    for needle in ("## Headline", "NLL beyond window", "Gate ", "RULER", "prefill MFLOP/token"):
        assert needle in page
    for png in ("positions_synth", "positions_stdlib", "contexts_synth", "retrieval",
                "costs", "ladder"):
        assert (out / "study" / f"{png}.png").stat().st_size > 10_000
    first = out / "first.json"
    first.write_text((out / "study.json").read_text())
    redrawn = tmp_path / "redrawn"  # the page from the saved figures alone
    assert main(["--out", str(redrawn), "--page-only", str(first)]) == 0
    assert (redrawn / "study.md").read_text() == page
    capsys.readouterr()
    assert main(["--out", str(out), "--work", str(work), "--plan", "quick",
                 "--compare", str(first)]) == 0
    assert "reproduced: every deterministic figure equals" in capsys.readouterr().out
    study = json.loads((out / "study.json").read_text())
    assert set(study["runs"]) == {"synth", "stdlib"}
    assert set(study["ladder"]["rungs"]) == {"S0", "S1", "S2", "S3", "S3-wall"}
