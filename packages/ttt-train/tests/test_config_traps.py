"""Configs that mean what they say: schedule lengths pinned for another total_steps follow
the run's, values are of their key's type, unknown keys point at the known one, and every
refusal is one line naming the key and the file (or override) that set it."""

import dataclasses
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from ttt_ledger import RunRecord
from ttt_model.config import LOSS_AVERAGES
from ttt_train.config import RunConfigError, compose_config, config_schema, write_configs
from ttt_train.pipeline import SCALES, Pipeline, PipelineOptions
from ttt_train.tracking import WANDB_MODES
from ttt_train.translate import StageSpec, model_config_of, translate

DATA = ["deploy_paths.data.dclm=/data/dclm", "deploy_paths.data.books3=/data/books3"]
E2E_8K = "+experiment=125m/pretrain-e2e-8K"  # training/125m/pretrain-8K: 4800, 4800, 480, 480
FAMILY_FILE = "configs/training/125m/pretrain-8K.yaml"
WARMUP = "training.optimizer_outer.lr_warmup_steps"
DECAY = "training.optimizer_outer.lr_decay_steps"
ILR_WARMUP = "training.ilr_warmup_steps"


def _spec(*overrides: str, config_dirs: tuple[Path, ...] = ()) -> StageSpec:
    return translate(compose_config([*overrides, *DATA], config_dirs))


def _lengths(spec: StageSpec) -> tuple[int, int, int, int]:
    t = spec.train
    return t.total_steps, t.decay_steps, t.warmup_steps, t.ilr_warmup_steps


def _experiment(tmp_path: Path, settings: dict[str, Any]) -> Path:
    """experiment/trap.yaml over the 125m family files, setting the dotted `settings`."""
    data: dict[str, Any] = {
        "defaults": [{"override /training": "125m/pretrain-8K"}, {"override /model": "125m"},
                     "_self_"],
        "training": {"exp_name": "trap"}}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / "experiment" / "trap.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# @package _global_\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def _refusal(*overrides: str, config_dirs: tuple[Path, ...] = ()) -> str:
    with pytest.raises(RunConfigError) as info:
        _spec(*overrides, config_dirs=config_dirs)
    return str(info.value)


# -- schedule lengths follow total_steps -------------------------------------------------

def test_pinned_lengths_follow_a_new_total_steps():
    spec = _spec(E2E_8K, "training.total_steps=40", "deploy_paths.data.dclm=/tmp/x")
    assert _lengths(spec) == (40, 40, 4, 4)
    scaled = f"(derived: {{}} of 4800 in {FAMILY_FILE}, scaled to total_steps=40)"
    assert spec.derived == (f"{DECAY}=40 " + scaled.format(4800),
                            f"{WARMUP}=4 " + scaled.format(480),
                            f"{ILR_WARMUP}=4 " + scaled.format(480))
    assert spec.resolved["training"]["optimizer_outer"]["lr_warmup_steps"] == 4


@pytest.mark.parametrize("first_total", [True, False])
def test_lengths_given_for_this_run_are_kept(first_total: bool):
    lengths = [f"{WARMUP}=7", f"{DECAY}=30", f"{ILR_WARMUP}=2"]
    total = ["training.total_steps=40"]
    spec = _spec(E2E_8K, *(total + lengths if first_total else lengths + total))
    assert _lengths(spec) == (40, 30, 7, 2) and spec.derived == ()


def test_pipeline_pilot_overrides_are_kept():
    record = RunRecord(run_id="S4", exp_folder="f", family="qwen2_5_0_5b", path="scratch",
                       stage="pretrain", model_kind="e2e", train_mode="meta",
                       context_length=8192, planned_steps=8)
    spec = _spec("+experiment=external/qwen2_5_0_5b/pretrain-e2e-scratch-8K",
                 *SCALES["pilot"].overrides(record, 8192, 1024))
    assert _lengths(spec) == (8, 8, 1, 2) and spec.derived == ()


def test_the_pilot_scales_the_stage_configs_own_window_and_chunk(tmp_path: Path):
    """Window and chunk shrink by the context divisor from what the stage's config says
    (not from the paper's 8192 and 1024): a file with window 4096 and b 512 gets 128, 16."""

    exp = tmp_path / "experiment" / "external" / "qwen2_5_0_5b"
    exp.mkdir(parents=True)
    (exp / "small-window.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /training: qwen2_5_0_5b/pretrain-8K\n"
        "  - override /model: qwen2_5_0_5b\n  - _self_\ntraining:\n  exp_name: sw\n"
        "  train_mode: meta\nmodel:\n  seq_modeling_block: SWA\n"
        "  sliding_window_size: 4096\n  mini_batch_size: 512\n  prime: true\n"
        "  suffix_len: ${model.ttt_suffix_len}\n")
    record = RunRecord(run_id="S3", exp_folder="f", family="qwen2_5_0_5b", path="scratch",
                       stage="pretrain", model_kind="e2e", train_mode="meta",
                       context_length=8192, planned_steps=8,
                       config_name="external/qwen2_5_0_5b/small-window")
    opts = PipelineOptions(families=("qwen2_5_0_5b",), path="scratch", budget="pilot",
                           exp_folder="f", exp_dir=tmp_path / "e",
                           checkpoint_path=tmp_path / "c", dclm_root=tmp_path / "d",
                           books_root=tmp_path / "b", config_dirs=(tmp_path,))
    pipeline = Pipeline(opts, print)
    stores = {"dclm": "/d", "books3": "/b"}
    model = compose_config(pipeline.stage_overrides(record, stores), [tmp_path]).resolved("model")
    assert (model["sliding_window_size"], model["mini_batch_size"]) == (4096 // 32, 512 // 32)
    # the shipped stages: 8192 and 1024 at full size, whatever the stand-in model file says
    for name in ("pretrain-fa-scratch-8K", "adapt-swa-8K-from-import", "ext-fa-32K-from-import"):
        shipped = dataclasses.replace(record, config_name=f"external/qwen2_5_0_5b/{name}")
        model = compose_config(pipeline.stage_overrides(shipped, stores)).resolved("model")
        assert (model["sliding_window_size"], model["mini_batch_size"]) == (256, 32), name


def test_a_length_in_the_same_file_as_total_steps_is_kept(tmp_path: Path):
    _experiment(tmp_path, {"training.total_steps": 100, WARMUP: 10})
    spec = _spec("+experiment=trap", config_dirs=(tmp_path,))
    assert _lengths(spec) == (100, 100, 10, 10)  # 4800 and 480 of 4800, scaled to 100
    assert [line.split(" ")[0] for line in spec.derived] == [f"{DECAY}=100", f"{ILR_WARMUP}=10"]


def test_a_length_in_a_later_file_scales_with_the_total_that_file_saw(tmp_path: Path):
    path = _experiment(tmp_path, {WARMUP: 960})
    spec = _spec("+experiment=trap", "training.total_steps=40", config_dirs=(tmp_path,))
    assert spec.train.warmup_steps == 8  # 960 of 4800 (the family file's total), to 40
    assert f"{WARMUP}=8 (derived: 960 of 4800 in {path}, scaled to total_steps=40)" \
        in spec.derived


def test_derived_lengths_stay_ordered_and_at_least_one():
    assert _lengths(_spec(E2E_8K, "training.total_steps=5")) == (5, 5, 1, 1)  # 480/960 -> 1
    assert _lengths(_spec(E2E_8K, "training.total_steps=40", f"{DECAY}=2")) == (40, 2, 2, 4)


def test_an_interpolated_default_follows_without_a_derived_line():
    spec = _spec("training.exp_name=x", "training.dataset_path=/x", "training.total_steps=100")
    assert _lengths(spec) == (100, 100, 80, 0)  # base: warmup 2000 of 2500, ilr warmup 0
    assert spec.derived == (f"{WARMUP}=80 (derived: 2000 of 2500 in "
                            "the schema's defaults (training/base_training, "
                            "ttt_train.schema), scaled to total_steps=100)",)


def test_fractions_give_the_lengths():
    spec = _spec(E2E_8K, "training.total_steps=40",
                 "training.optimizer_outer.lr_decay_fraction=0.5",
                 "training.optimizer_outer.lr_warmup_fraction=0.25",
                 "training.ilr_warmup_fraction=0.05")
    assert _lengths(spec) == (40, 20, 10, 2)
    assert spec.derived[1] == (f"{WARMUP}=10 (derived: lr_warmup_fraction=0.25 in the "
                               "command-line override 'training.optimizer_outer."
                               "lr_warmup_fraction=0.25', of total_steps=40)")


def test_a_fraction_in_a_file_follows_the_command_line_total(tmp_path: Path):
    _experiment(tmp_path, {"training.optimizer_outer.lr_warmup_fraction": 0.5})
    assert _spec("+experiment=trap", "training.total_steps=40",
                 config_dirs=(tmp_path,)).train.warmup_steps == 20
    assert _spec("+experiment=trap", "training.total_steps=40", f"{WARMUP}=3",
                 config_dirs=(tmp_path,)).train.warmup_steps == 3  # set later: it wins


def test_a_fraction_and_its_steps_in_one_layer_are_refused(tmp_path: Path):
    message = _refusal(E2E_8K, "training.optimizer_outer.lr_warmup_fraction=0.1", f"{WARMUP}=5")
    assert "give the same length" in message and "\n" not in message
    path = _experiment(tmp_path, {"training.ilr_warmup_fraction": 0.1, ILR_WARMUP: 5})
    message = _refusal("+experiment=trap", config_dirs=(tmp_path,))
    assert message.startswith(f"training.ilr_warmup_fraction (set in {path}) and {ILR_WARMUP}")


def test_a_fraction_outside_zero_one_is_refused():
    message = _refusal(E2E_8K, "training.ilr_warmup_fraction=1.5")
    assert message.startswith("training.ilr_warmup_fraction (set in the command-line")


# -- types ------------------------------------------------------------------------------

@pytest.mark.parametrize("override, expected", [
    ("model.hidden_size=64.5", "expected an integer, got 64.5"),
    ("model.prime=1", "expected true or false, got 1"),
    ("model.prime=yes", "expected true or false, got 'yes'"),
    ("model.prime=abc", "expected true or false, got 'abc'"),
    ("training.total_steps=abc", "expected an integer, got 'abc'"),
    ("training.total_steps=true", "expected an integer, got true"),
    ("training.optimizer_outer.lr=true", "expected a number, got true"),
    ("training.exp_name=null", "expected a string, got null"),
    ("training.spec_inner=abc", "expected a list of strings, got 'abc'"),
    ("training.spec_inner=[a,true]", "expected a list of strings, got ['a', True]"),
    ("training.ledger.family=[a]", "expected a string or null, got ['a']"),
    ("training.ledger=abc", "expected a mapping of its schema keys, got 'abc'"),
    ("backend.local_device_ids=abc", "'abc': expected device ids like '0,1'"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_key_and_override(override: str,
                                                                       expected: str):
    key = override.split("=", 1)[0]
    assert _refusal(E2E_8K, override) == (f"{key} (set in the command-line override "
                                          f"{override!r}): {expected}")


def test_a_mapping_of_the_wrong_type_is_refused():
    message = _refusal(E2E_8K, "+deploy_paths.data.web=[1]")
    assert message.startswith("deploy_paths.data (set in the command-line override "
                              "'+deploy_paths.data.web=[1]'): expected a mapping of names to "
                              "a string or null, got {")
    assert message.endswith("'web': [1]}")


def test_a_type_error_in_a_file_names_the_file(tmp_path: Path):
    path = _experiment(tmp_path, {"model.hidden_size": 64.5})
    assert _refusal("+experiment=trap", config_dirs=(tmp_path,)) == (
        f"model.hidden_size (set in {path}): expected an integer, got 64.5")


def test_numbers_mean_what_they_say():
    spec = _spec(E2E_8K, "training.optimizer_outer.lr=1", "training.ilr_init=1",
                 "model.hidden_size=768.0", "training.exp_folder=2024")
    assert (spec.train.lr, spec.train.ilr_init) == (1.0, 1.0)
    assert isinstance(spec.train.lr, float) and isinstance(spec.train.ilr_init, float)
    assert spec.model.hidden_size == 768 and isinstance(spec.model.hidden_size, int)
    assert spec.paths.exp_folder == "2024"
    assert spec.resolved["training"]["optimizer_outer"]["lr"] == 1.0


def test_model_config_of_checks_types():
    with pytest.raises(RunConfigError, match=r"^model\.hidden_size \(set in the command-line"):
        model_config_of(compose_config(["model=pilot/smollm2_360m", "model.hidden_size=64.5"]))


# -- unknown keys, missing values, composition ---------------------------------------------

@pytest.mark.parametrize("override", ["training.total_step=5", "+training.total_step=5"])
def test_an_unknown_key_suggests_the_nearest_known_one(override: str):
    assert _refusal(E2E_8K, override) == (
        f"unknown config key training.total_step (set in the command-line override "
        f"{override!r}); did you mean training.total_steps?")


def test_an_unknown_key_far_from_any_points_at_the_base_files():
    message = _refusal(E2E_8K, "+model.bogus=1")
    assert message.startswith("unknown config key model.bogus (set in the command-line")
    assert "every key, with its default, is in" in message and "did you mean" not in message


def test_a_missing_value_names_the_file_that_declares_it():
    assert _refusal() == ("training.exp_name (set in the schema's defaults "
                          "(training/base_training, ttt_train.schema)) has no value: give one, "
                          "e.g. on the command line training.exp_name=...")


def test_a_deleted_key_is_refused():
    message = _refusal(E2E_8K, "~training.total_steps")
    assert message.startswith("training.total_steps (set in the command-line override "
                              "'~training.total_steps') is missing")


def test_a_config_that_does_not_compose_is_one_line():
    message = _refusal("model=nope")
    assert "Could not find 'model/nope'" in message and "\n" not in message


def test_a_file_shadowed_by_a_packaged_one_is_refused(tmp_path: Path):
    shadow = tmp_path / "experiment" / "125m" / "pretrain-fa-8K.yaml"
    shadow.parent.mkdir(parents=True)
    shadow.write_text("# @package _global_\ntraining:\n  exp_name: mine\n")
    with pytest.raises(RunConfigError, match=f"^{re.escape(str(shadow))} has the name of"):
        compose_config(["+experiment=125m/pretrain-fa-8K"], [tmp_path])


def test_a_file_named_like_a_registry_config_is_refused(tmp_path: Path):
    name = "experiment/external/qwen2_5_0_5b/pretrain-fa-scratch-8K"
    shadow = tmp_path / f"{name}.yaml"
    shadow.parent.mkdir(parents=True)
    shadow.write_text("# @package _global_\ntraining:\n  exp_name: mine\n")
    with pytest.raises(RunConfigError, match=f"{re.escape(str(shadow))}.*family registry"
                                             f"|family registry.*{re.escape(str(shadow))}"):
        compose_config(["+experiment=external/qwen2_5_0_5b/pretrain-fa-scratch-8K"],
                       [tmp_path])


# -- loss averaging ---------------------------------------------------------------------

def test_loss_average_reaches_the_train_config():
    assert _spec(E2E_8K).train.loss_average == "chunk"
    assert _spec(E2E_8K, "training.loss_average=token").train.loss_average == "token"
    assert _refusal(E2E_8K, "training.loss_average=sequence") == (
        "training.loss_average (set in the command-line override "
        "'training.loss_average=sequence'): expected one of 'chunk', 'token', got 'sequence'")
    assert get_args(config_schema()["training.loss_average"]) == LOSS_AVERAGES  # one meaning
    assert get_args(config_schema()["training.wandb_mode"]) == ("", *WANDB_MODES)


# -- what the README says is refused is refused ------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("model.resid_pdrop", 0.1, "dropout is not supported"),
    ("model.embd_pdrop", 0.1, "dropout is not supported"),
    ("model.attn_pdrop", 0.1, "dropout is not supported"),
    ("training.optimizer_outer.optimizer_type", "adam", "expected one of 'adamw', got 'adam'"),
    ("training.optimizer_outer.bf16_momentum", True, "bf16 optimiser moments"),
    ("training.optimizer_outer.emb_wd", False, "false is not supported"),
    ("training.dummy_dataset", True, "true is refused"),
    ("training.eval_mode", True, "true is refused"),
    ("training.wandb_mode", "cloud",
     "expected one of '', 'online', 'offline', 'disabled', got 'cloud'"),
])
def test_the_readme_refusals_name_key_and_file(tmp_path: Path, key: str, value: Any,
                                               expected: str):
    path = _experiment(tmp_path, {key: value})
    message = _refusal("+experiment=trap", config_dirs=(tmp_path,))
    assert message.startswith(f"{key} (set in {path}): {expected}") and "\n" not in message


def test_the_readme_refuses_unknown_keys_naming_the_file(tmp_path: Path):
    path = _experiment(tmp_path, {"training.totl_steps": 5})
    assert _refusal("+experiment=trap", config_dirs=(tmp_path,)) == (
        f"unknown config key training.totl_steps (set in {path}); did you mean "
        "training.total_steps?")


# -- the resolved config says what runs ---------------------------------------------------

def test_the_resolved_config_written_holds_the_derived_lengths(tmp_path: Path):
    composed = compose_config([E2E_8K, "training.total_steps=40", *DATA])
    spec = translate(composed)
    _, resolved = write_configs(composed, tmp_path, spec.resolved)
    written = yaml.safe_load(resolved.read_text())["training"]
    assert (written["optimizer_outer"]["lr_warmup_steps"], written["ilr_warmup_steps"]) == (4, 4)
