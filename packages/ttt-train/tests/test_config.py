"""Config composition and translation: official keys keep their meaning, every shipped
experiment composes, and bad keys or values are refused naming key and file."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from ttt_model.config import DEFAULT_SPEC_INNER, ModelConfig
from ttt_train.config import (
    RunConfigError,
    compose_config,
    config_schema,
    experiment_names,
    write_configs,
)
from ttt_train.translate import MODEL_KEYS, MODEL_UNMAPPED, translate

DATA = ["deploy_paths.data.dclm=/data/dclm", "deploy_paths.data.books3=/data/books3"]

OFFICIAL_STYLE = """# @package _global_
defaults:
  - override /training: 125m/pretrain-8K
  - override /model: 125m
  - _self_
training:
  exp_name: official-style-e2e
  seq_length: 8192
  global_batch_size: 64
  train_mode: meta
  spec_inner: ["language_model.**.suffix_blocks.feed_forward_prime.**"]
  ilr_init: 1
  optimizer_inner:
    optimizer_type: sgd
    lr: 1
    clip_gradient: 1.0
model:
  seq_modeling_block: SWA
  force_flash: False
  unroll_block_scan: True
  mini_batch_size: 1024
  sliding_window_size: 8192
  rope_theta: 500000
  prime: True
  suffix_len: 3
  intermediate_size: 1664
"""


def test_every_shipped_experiment_composes_and_translates():
    names = experiment_names()
    assert len([n for n in names if n.startswith("external/")]) == 40  # 4 families x 10
    for name in names:
        spec = translate(compose_config([f"+experiment={name}", *DATA]))
        assert spec.paths.exp_name
        if spec.train.train_mode == "meta":
            assert spec.model.prime and spec.model.suffix_len > 0


def test_official_style_experiment_keeps_key_meanings(tmp_path: Path):
    exp = tmp_path / "experiment"
    exp.mkdir()
    (exp / "official.yaml").write_text(OFFICIAL_STYLE)
    spec = translate(compose_config(["+experiment=official", *DATA], [tmp_path]))
    m, t = spec.model, spec.train
    assert (m.hidden_size, m.num_layers, m.intermediate_size, m.suffix_len) == (768, 12, 1664, 3)
    assert m.attention == "sliding" and m.sliding_window == 8192 and m.mini_batch_size == 1024
    assert m.prime and m.qk_norm and m.post_norm and m.rope_theta == 500000
    assert t.train_mode == "meta" and t.inner_lr == 1.0 and t.inner_clip == 1.0
    assert t.ilr_init == 1.0 and t.spec_inner == (
        "language_model.**.suffix_blocks.feed_forward_prime.**",)
    assert (t.total_steps, t.lr, t.warmup_steps) == (4800, 3e-3, 480)
    assert spec.data.seq_len == 8192 and spec.data.global_batch_size == 64
    assert spec.data.store == "/data/dclm"


def test_external_stage_semantics():
    spec = translate(compose_config(
        ["+experiment=external/qwen2_5_0_5b/adapt-e2e-8K-from-import", *DATA]))
    assert spec.restore.load_part == "params" and spec.restore.recipe == "ttt"
    assert spec.restore.source_exp_name == "adapt-qwen05-swa-8K-from-import"
    assert spec.model.qkv_bias and spec.model.kv_heads == 2 and spec.model.suffix_len == 6
    assert spec.model.intermediate_size == 4864  # warm start keeps the pretrained MLP whole
    scratch = translate(compose_config(
        ["+experiment=external/qwen2_5_0_5b/pretrain-e2e-scratch-8K", *DATA]))
    assert scratch.restore.load_part == "none"
    assert scratch.model.intermediate_size == 3968  # shrunk to match FA parameters
    ext = translate(compose_config(
        ["+experiment=external/smollm2_360m/ext-fa-32K-from-scratch", *DATA]))
    assert ext.data.seq_len == 32768 and ext.data.store == "/data/books3"


def test_overrides_win_and_group_choice_swaps_model():
    spec = translate(compose_config([
        "+experiment=external/smollm2_360m/pretrain-fa-scratch-8K", "model=pilot/smollm2_360m",
        "training.total_steps=20", "training.optimizer_outer.lr_decay_steps=20",
        "training.optimizer_outer.lr_warmup_steps=2",
        "training.n_state_parallel=2", *DATA]))
    assert spec.model.hidden_size == 64 and spec.model.name == "smollm2_360m-pilot"
    assert spec.train.total_steps == 20
    assert spec.mesh.fsdp == 2


def test_unknown_key_names_the_file(tmp_path: Path):
    exp = tmp_path / "experiment"
    exp.mkdir()
    (exp / "typo.yaml").write_text("# @package _global_\ntraining:\n  exp_name: x\n"
                                   "  totl_steps: 5\n")
    with pytest.raises(RunConfigError, match=r"training\.totl_steps \(set in .*typo\.yaml\)"):
        translate(compose_config(["+experiment=typo", *DATA], [tmp_path]))
    with pytest.raises(RunConfigError, match=r"model\.bogus \(set in the command-line"):
        translate(compose_config(["+experiment=125m/pretrain-fa-8K", "+model.bogus=1",
                                  *DATA]))


@pytest.mark.parametrize("override, match", [
    ("training.optimizer_outer.lr_decay_steps=7",
     r"lr_decay_steps \(set in the command-line .*\): lr_decay_steps=7 must be at least "
     "lr_warmup_steps=480"),
    ("training.dummy_dataset=true", "dummy_dataset"),
    ("model.resid_pdrop=0.1", "dropout"),
    ("training.load_part=some", "load_part"),
    ("model.seq_modeling_block=mamba", "seq_modeling_block"),
    ("model.remat_block=save_everything", r"remat_block must be .*'save_everything'"),
])
def test_bad_values_are_refused_with_the_key(override: str, match: str):
    with pytest.raises(RunConfigError, match=match):
        translate(compose_config(["+experiment=125m/pretrain-fa-8K", override, *DATA]))


def test_remat_block_reaches_the_model_config():
    run = translate(compose_config(["+experiment=125m/pretrain-fa-8K", *DATA,
                                    "model.remat_block=nothing_saveable"]))
    assert run.model.remat_block == "nothing_saveable"
    assert translate(compose_config(["+experiment=125m/pretrain-fa-8K", *DATA])
                     ).model.remat_block == ""


@pytest.mark.parametrize("impl", ["pallas", "auto"])
def test_prefix_remat_and_attention_impl_reach_the_model_config(impl):
    """Keys that configured nothing before (remat_prefix_block) or are new keep their
    meaning on the way to ModelConfig; a value outside the choices is refused."""
    run = translate(compose_config(["+experiment=125m/pretrain-fa-8K", *DATA,
                                    "model.remat_prefix_block=nothing_saveable",
                                    f"model.attention_impl={impl}"]))
    assert (run.model.remat_prefix_block, run.model.attention_impl) == ("nothing_saveable",
                                                                        impl)
    with pytest.raises(RunConfigError, match="attention_impl"):
        translate(compose_config(["+experiment=125m/pretrain-fa-8K", *DATA,
                                  "model.attention_impl=flash"]))


def test_params_without_source_is_refused():
    with pytest.raises(RunConfigError, match="resume_exp_name"):
        translate(compose_config(["+experiment=125m/pretrain-fa-8K",
                                  "training.load_part=params", *DATA]))


def test_resolved_and_unresolved_configs_are_written(tmp_path: Path):
    composed = compose_config(["+experiment=external/qwen2_5_0_5b/pretrain-e2e-scratch-8K",
                               *DATA])
    unresolved, resolved = write_configs(composed, tmp_path)
    u, r = yaml.safe_load(unresolved.read_text()), yaml.safe_load(resolved.read_text())
    assert u["model"]["intermediate_size"] == "${model.ttt_intermediate_size}"
    assert r["model"]["intermediate_size"] == 3968
    assert u["choices"]["experiment"] == "external/qwen2_5_0_5b/pretrain-e2e-scratch-8K"
    assert r["training"]["spec_inner"] != list(DEFAULT_SPEC_INNER)  # the official spelling


def test_official_schedule_keys_reach_the_train_config():
    run = translate(compose_config(["+experiment=125m/pretrain-fa-8K", *DATA,
                                    "training.optimizer_outer.lr_decay_steps=500000",
                                    "training.optimizer_outer.init_lr=1e-4"]))
    assert (run.train.decay_steps, run.train.init_lr) == (500000, 1e-4)


def test_every_model_key_is_a_model_config_field_or_named_as_unmapped():
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    keys = [k.split(".", 1)[1] for k in config_schema() if k.startswith("model.")]
    wrong = [k for k in keys if k not in MODEL_UNMAPPED and MODEL_KEYS.get(k, k) not in fields]
    assert not wrong and set(MODEL_UNMAPPED) <= set(keys)


def test_the_schema_defaults_are_of_the_schema_types():
    composed = compose_config(["training.exp_name=x", "training.dataset_path=/x"])
    checked = composed.checked()  # raises on a default that is not of its key's type
    assert checked["model"]["seq_modeling_block"] == "self_attention"
    assert composed.where_set("model.hidden_size").startswith("the schema's defaults")
