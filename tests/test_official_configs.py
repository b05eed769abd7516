"""Every experiment file of the official TTT-E2E repository composes unchanged from a
user's config directory, keeps every value it sets, inherits the official training-group
values, and translates into a stage; our own names for the same groups still compose."""

from __future__ import annotations

import math

import pytest
from official_experiments import OFFICIAL_EXPERIMENTS, OFFICIAL_TRAINING, flat, write_experiment

from ttt_train.config import compose_config
from ttt_train.translate import translate

# Where the official deploy files point the two datasets (their keys, our values).
DATA = ["deploy_paths.data.dclm_filter_8k=/data/dclm", "deploy_paths.data.books3=/data/books3"]


def _same(got, want) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=0, abs_tol=0)
    return got == want


@pytest.mark.parametrize("path", sorted(OFFICIAL_EXPERIMENTS))
def test_an_official_experiment_composes_unchanged_and_keeps_its_values(path, tmp_path):
    write_experiment(tmp_path, path)
    composed = compose_config([f"+experiment={path}", *DATA], [tmp_path])
    resolved = flat(composed.resolved())
    entry = OFFICIAL_EXPERIMENTS[path]
    sets = {f"{group}.{k}": v for group in ("training", "model")
            for k, v in flat(entry[group]).items()}
    inherited = {f"training.{k}": v for k, v in OFFICIAL_TRAINING[entry["training_option"]]
                 .items() if f"training.{k}" not in sets}
    wrong = {key: (resolved.get(key), want) for key, want in {**inherited, **sets}.items()
             if not _same(resolved.get(key), want)}
    assert not wrong, f"{path}: key: (got, official) {wrong}"
    stage = translate(composed)
    assert stage.paths.exp_name == entry["training"]["exp_name"]
    assert stage.model.prime == bool(entry["model"].get("prime", False))
    assert stage.model.remat_block == entry["model"].get("remat_block", "")
    dataset = "/data/books3" if entry["training_option"].endswith("/ext") else "/data/dclm"
    assert stage.data.store == dataset


def test_the_official_list_is_what_we_check():
    """Pretrain and extension files of every paper size, E2E and FA."""
    sizes = {p.split("/")[0] for p in OFFICIAL_EXPERIMENTS}
    assert sizes == {"125m", "350m", "760m", "1b", "3b"}
    kinds = {(p.split("/")[1], "-e2e" in p) for p in OFFICIAL_EXPERIMENTS}
    assert kinds == {("pretrain", True), ("pretrain", False), ("extension", True),
                     ("extension", False)}


@pytest.mark.parametrize("old, new", [("125m/ext-32K", "125m/ext"), ("3b/ext-128K", "3b/ext")])
def test_our_earlier_training_names_still_compose_to_the_same_values(old, new):
    a = compose_config([f"training={old}", "training.exp_name=x", *DATA]).resolved("training")
    b = compose_config([f"training={new}", "training.exp_name=x", *DATA]).resolved("training")
    assert a == b


def test_the_official_backend_option_composes():
    composed = compose_config(["backend=gpu", "training.exp_name=x", *DATA])
    backend = composed.resolved("backend")
    assert backend["backend"] == "gpu" and backend["distributed"] is False


def test_the_official_command_line_with_deploy_interactive_composes(tmp_path):
    """The official repository's commands start with `+deploy=interactive`."""
    path = "125m/pretrain/pretrain-125m-e2e"
    write_experiment(tmp_path, path)
    composed = compose_config(["+deploy=interactive", f"+experiment={path}", *DATA],
                              [tmp_path])
    stage = translate(composed)
    assert stage.data.store == "/data/dclm" and stage.paths.exp_name == "pretrain-125m-e2e"
    assert composed.choices["deploy"] == "interactive"
