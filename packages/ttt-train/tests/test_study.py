"""The study's own logic, on hand-made inputs: spread over seeds, the headline and the gate
computed from the same figures as the tables, the reproducibility comparison, the stdlib
file choice and the parameter matching of the TTT-E2E arm. The study end to end (its quick
plan, twice, compared) is in `nox -s slow`."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ttt_train.study import arms, corpora, ladder, report, reproduce
from ttt_train.study.plan import QUICK, STUDY
from ttt_train.study.stats import paired, spread


def test_spread_is_the_sample_mean_and_deviation():
    xs = [2.5, 2.25, 2.75]
    s = spread(xs)
    assert s.mean == pytest.approx(np.mean(xs), abs=1e-15)
    assert s.std == pytest.approx(np.std(xs, ddof=1), abs=1e-15)
    assert (s.lo, s.hi, s.n) == (2.25, 2.75, 3)
    assert spread([4.0]).std == 0.0
    for bad in ([], [1.0, math.nan], [math.inf]):
        with pytest.raises(ValueError, match="finite"):
            spread(bad)


def test_paired_counts_the_seeds_where_the_first_is_lower():
    d, below = paired([1.0, 2.0, 3.0], [1.5, 1.0, 3.5])
    assert below == 2 and d.mean == pytest.approx(np.mean([-0.5, 1.0, -0.5]))
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1.0], [1.0, 2.0])


def _study(beyond: dict[str, list[float]], inside: float = 3.0) -> dict:
    """A study result with only what the window table and headline read."""
    plan = {"context": 256, "window": 64, "seeds": [0, 1, 2], "eval_contexts": [256]}

    def entry(b: float) -> dict:
        return {"sweep": {"contexts": [{"context": 256, "mean_nll": b,
                                        "inside_window": {"mean_nll": inside},
                                        "beyond_window": {"mean_nll": b}}]}}

    runs = {"c": {arm: {str(i): entry(v) for i, v in enumerate(vals)}
                  for arm, vals in beyond.items()}}
    return {"plan": plan, "runs": runs, "params": {a: 1000 for a in arms.ARMS}}


def test_headline_says_below_swa_only_when_it_is_and_how_far_from_fa():
    study = _study({"fa": [2.0, 2.1, 2.2], "swa": [3.0, 3.1, 3.2], "e2e": [2.5, 2.6, 2.9]})
    h = report.headline(study, "c")
    assert h["seeds_e2e_below_swa"] == 3
    assert h["e2e_minus_swa"]["mean"] == pytest.approx(np.mean([-0.5, -0.5, -0.3]))
    assert h["share_of_fa_gain_recovered"] == pytest.approx((3.1 - 2.6667) / 1.0, abs=1e-3)
    text = report.headline_text(study, "c")
    assert "below SWA's by 0.433" in text and "43% of FA's gain" in text
    worse = _study({"fa": [2.0, 2.1, 2.2], "swa": [3.0, 3.1, 3.2], "e2e": [3.1, 3.0, 3.4]})
    text = report.headline_text(worse, "c")
    assert "not below SWA's" in text and "lower in 1 of 3 seeds" in text
    no_gain = _study({"fa": [3.0, 3.1, 3.2], "swa": [3.0, 3.1, 3.2], "e2e": [2.9, 3.0, 3.1]})
    assert "FA itself gains nothing measurable" in report.headline_text(no_gain, "c")


def test_window_table_refuses_a_missing_seed_value():
    study = _study({"fa": [2.0, 2.1, 2.2], "swa": [3.0, 3.1, 3.2], "e2e": [2.5, 2.6, 2.9]})
    study["runs"]["c"]["e2e"]["1"]["sweep"]["contexts"][0]["beyond_window"]["mean_nll"] = None
    with pytest.raises((ValueError, TypeError)):
        report.window_table(study, "c")


def _rung(charged: float, nll: float) -> dict:
    return {"charged_train_s": charged, "heldout_nll": nll}


def test_the_gate_needs_both_the_saving_and_the_loss():
    plan = STUDY
    assert ladder.gate({"S2": _rung(60, 3.005), "S3": _rung(100, 3.0)}, plan)["passed"]
    assert not ladder.gate({"S2": _rung(71, 3.0), "S3": _rung(100, 3.0)}, plan)["passed"]
    assert not ladder.gate({"S2": _rung(10, 3.02), "S3": _rung(100, 3.0)}, plan)["passed"]
    g = ladder.gate({"S2": _rung(25, 2.9), "S3": _rung(100, 3.0)}, plan)
    assert g["wall_clock_saving"] == pytest.approx(0.75) and g["loss_delta"] == pytest.approx(-0.1)


def test_ladder_rungs_are_token_matched_by_construction():
    stages = ladder._stages(STUDY, "fa-s0")
    a = STUDY.ladder.steps_a
    steps = {r: sum(s.steps for s in st if not s.extension) + (a if st[0].source else 0)
             for r, st in stages.items() if r != "S3-wall"}
    assert len(set(steps.values())) == 1, steps
    assert all(st[-1].extension for st in stages.values())


def test_compare_ignores_the_clock_but_not_a_loss_or_a_compiled_cost():
    a = {"runs": {"x": {"train_s": 1.0, "loss": 2.0}},
         "costs": {"m": {"prefill": {"ms_per_token": 1.0},
                         "compiled": {"prefill": {"flops": 10}}}}, "elapsed_s": 5}
    same = {"runs": {"x": {"train_s": 9.0, "loss": 2.0}},
            "costs": {"m": {"prefill": {"ms_per_token": 3.0},
                            "compiled": {"prefill": {"flops": 10}}}}, "elapsed_s": 7}
    assert reproduce.compare(a, same) == []
    other = {**same, "runs": {"x": {"train_s": 9.0, "loss": 2.0000001}}}
    assert reproduce.compare(a, other) == ["runs.x.loss: 2.0 -> 2.0000001"]
    flops = {**same, "costs": {"m": {"compiled": {"prefill": {"flops": 11}}}}}
    assert any("compiled.prefill.flops" in d for d in reproduce.compare(a, flops))


def test_stdlib_files_skip_tests_follow_the_hash_order_and_the_budget(tmp_path: Path):
    for rel in ("a.py", "pkg/b.py", "pkg/tests/t.py", "test/u.py", "c.txt", "site-packages/s.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n" * 10)
    chosen = corpora.stdlib_files(10**6, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in chosen) == ["a.py", "pkg/b.py"]
    assert corpora.stdlib_files(10**6, tmp_path) == chosen
    assert len(corpora.stdlib_files(70, tmp_path)) == 1  # one 60-byte file fits, not two


def test_e2e_matches_fa_parameters_at_the_nearest_width():
    fa = arms.param_count(arms.model_overrides(QUICK, "fa"))
    width = arms.matched_intermediate(QUICK)
    count = {w: arms.param_count(arms.model_overrides(QUICK, "e2e", w))
             for w in (width - 8, width, width + 8)}
    assert abs(count[width] - fa) <= arms.PARAM_TOLERANCE * fa
    assert abs(count[width] - fa) <= min(abs(count[width - 8] - fa), abs(count[width + 8] - fa))
    assert width < QUICK.shape.intermediate  # the prime MLPs are paid for by narrower MLPs
    with pytest.raises(arms.StudyConfigError, match="within 1%"):
        arms.matched_intermediate(replace(QUICK, shape=replace(QUICK.shape, intermediate=8)))


def test_an_interrupted_run_stops_the_study(tmp_path: Path, monkeypatch, capsys):
    """A run stopped by SIGTERM has a shorter run's figures: never tabulated."""
    from ttt_train.stage import StageResult
    from ttt_train.study import main as study_main
    from ttt_train.study import runs

    stopped = StageResult("r", "fa-s0", "interrupted", 141, 0, 1.0, None, None,
                          tmp_path / "ckpt", tmp_path / "run", signal=15)
    monkeypatch.setattr(runs, "run_stage", lambda composed: stopped)
    with pytest.raises(runs.StudyInterrupted, match="fa-s0 interrupted at step 141") as err:
        runs.train(tmp_path, "synth", "fa-s0", tmp_path / "store", tmp_path / "tok", {})
    assert err.value.signal == 15

    def interrupted(*_):
        raise err.value

    monkeypatch.setattr(study_main, "run_study", interrupted)
    assert study_main.main(["--out", str(tmp_path / "out")]) == 143
    assert "the study stopped: rerun it" in capsys.readouterr().err
    assert not (tmp_path / "out" / "study.md").exists()
