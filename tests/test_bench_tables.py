"""docs/benchmarks.md is what bench/tables.py makes of bench/results/*.json: the page is not
stale, a changed figure makes it stale, and the tables show figures (rounded, with units)
and "—" for what a JSON lacks."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "bench" / "tables.py"


def _load_tables():
    """bench/ is not a package: load the generator from its path."""
    spec = importlib.util.spec_from_file_location("bench_tables", TABLES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _load_tables()


def test_page_is_what_the_results_generate():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert page == tables.render_page(ROOT / "bench" / "results"), (
        "docs/benchmarks.md is stale: run `uv run python bench/tables.py`")


def test_check_passes_on_the_repository():
    assert tables.main(["--check"]) == 0


def test_a_changed_figure_makes_the_page_stale(tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results)
    page = tmp_path / "benchmarks.md"
    page.write_text((ROOT / "docs" / "benchmarks.md").read_text())
    check = ["--check", "--results", str(results), "--page", str(page)]
    assert tables.main(check) == 0

    train = results / "train.json"
    data = json.loads(train.read_text())
    data["variants"]["fa"]["tokens_per_second"] *= 2
    train.write_text(json.dumps(data, indent=2) + "\n")

    assert tables.main(check) == 1
    message = capsys.readouterr().err.strip()
    assert "stale" in message and len(message.splitlines()) == 1
    assert tables.main(["--results", str(results), "--page", str(page)]) == 0
    assert tables.main(check) == 0


def _write(directory: Path, name: str, data: dict) -> None:
    (directory / name).write_text(json.dumps(data))


@pytest.fixture
def synthetic(tmp_path) -> str:
    """A results dir with a train.json, a model.json and an unknown file, some fields left
    out, rendered to a page."""
    _write(tmp_path, "train.json", {
        "what": "tiny stages", "machine": "x86_64", "cpu_count": 2, "jax": "0.10.2",
        "variants": {
            "fa": {"steps": 6, "seconds_per_step_median": 3.555939, "tokens_per_second":
                   1151.8757, "official_seconds_per_step": 6.6, "speedup_vs_official": 1.85605},
            "swa": {"steps": 6, "seconds_per_step_median": 0.6160294},
        }})
    _write(tmp_path, "model.json", {
        "machine": "x86_64", "cpu_count": 2,
        "paper_125m": {"fa@8192": {"train_mode": "pretrain", "flops": 19288698126336,
                                   "temp_bytes": 11492396296}},
        "ratios": {"e2e_over_fa_flops@8192": 1.711506, "e2e_temp_growth_8192_to_32768": 4.61},
        "targets": {"e2e_over_fa_flops@8192": "<= 2.0", "e2e_temp_growth_8192_to_32768": "<= 4.5"},
    })
    _write(tmp_path, "zzz.json", {"speed": 2357.68, "name": "x", "nested": {"a": 1}})
    return tables.render_page(tmp_path)


def test_synthetic_figures_are_rounded_with_units(synthetic):
    assert "| fa | 6 | 3.56 s | — | — | 1150 tokens/s | — | — | 6.60 s | 1.86× |" in synthetic
    assert "| fa@8192 | pretrain | 19.3 TFLOP | — | 10.7 GiB | — | — | — |" in synthetic
    assert "Measured on: machine: x86_64; CPUs: 2; backend: —;" in synthetic


def test_synthetic_missing_fields_show_a_dash(synthetic):
    assert "| swa | 6 | 0.616 s | — | — | — | — | — | — | — |" in synthetic
    assert "— (model.json has no `prefill_125m_e2e`)." in synthetic


def test_synthetic_targets_are_checked(synthetic):
    assert "| e2e_over_fa_flops@8192 | 1.71× | <= 2.0 | yes (checked here) |" in synthetic
    assert "| e2e_temp_growth_8192_to_32768 | 4.61× | <= 4.5 | **no** (checked here) |" in synthetic


def test_synthetic_unknown_file_gets_its_scalars(synthetic):
    assert "## zzz" in synthetic and "| speed | 2360 |" in synthetic
    assert "Not tabulated here: `nested`." in synthetic
    assert synthetic.index("## Model") < synthetic.index("## Training") < synthetic.index("## zzz")


@pytest.mark.parametrize(("value", "shown"), [
    (2357.68, "2360"), (0.9154502, "0.915"), (6.002451, "6.00"), (999.6, "1000"),
    (3.4809e-05, "3.48e-05"), (-0.0466, "-0.0466"), (0, "0"), (12.446, "12.4")])
def test_three_significant_figures(value, shown):
    assert tables.sig3(value) == shown


def test_units_and_prefixes():
    assert tables.amount(28646338, "tokens/s") == "28.6 M tokens/s"
    assert tables.amount(999_999, "tokens") == "1.00 M tokens"
    assert tables.amount(None, "s") == "—"
    assert tables.nbytes(113404152) == "108 MiB"
    assert tables.flops(65716224.0, "/token") == "65.7 MFLOP/token"
    assert tables.count(2186) == "2186" and tables.count(494032768) == "494 M"
    assert tables.percent(0.0231) == "2.31 %"
    assert tables.context(131072) == "128K" and tables.context(2357.68) == "2360 tokens"
    assert tables.meets(1.7, "<= 2.0") is True and tables.meets(3.2, "< 3") is False
    assert tables.meets(None, "<= 2.0") is None
