"""The ablation runner: each variant trains in its own process; the CSV and the Markdown
table hold one row per variant with what was measured, and a failing variant is one line."""

from __future__ import annotations

import csv
from pathlib import Path

from ttt_app_testlib import tiny_overrides

from ttt_train.ablation import COLUMNS, main


def test_variants_are_measured_and_tabled(tmp_path: Path, store: Path, capsys):
    overrides = tiny_overrides(tmp_path, store, steps=4)
    assert main(["--out", str(tmp_path / "ab"), "--variants", "fp32,untied,remat",
                 "--ignore-first", "1", "--", *overrides]) == 0
    rows = list(csv.DictReader((tmp_path / "ab" / "ablation.csv").open()))
    assert [r["variant"] for r in rows] == ["fp32", "untied", "remat"]
    assert tuple(rows[0]) == COLUMNS
    # each variant reached the model
    assert [r["tied"] for r in rows] == ["True", "False", "True"]
    assert [r["remat"] for r in rows] == ["off", "off", "nothing_saveable"]
    for r in rows:
        assert r["compute_dtype"] == "float32" and r["steps"] == "4"
        assert float(r["tokens_per_s"]) > 0 and float(r["peak_memory_mib"]) > 50
    # remat moves memory and compute, not the numbers (4 fp32 steps: rounding only)
    assert abs(float(rows[2]["final_loss"]) - float(rows[0]["final_loss"])) < 1e-3
    table = (tmp_path / "ab" / "ablation.md").read_text().splitlines()
    assert table[0].startswith("| variant |") and len(table) == 5


def test_a_variant_that_fails_is_one_line(tmp_path: Path, store: Path, capsys):
    overrides = tiny_overrides(tmp_path, store, steps=2, **{"model.vocab_size": 300})
    assert main(["--out", str(tmp_path / "ab"), "--variants", "fp32", "--", *overrides]) == 2
    assert "variant fp32: training exited with" in capsys.readouterr().err
