"""Adding a family is one registry entry plus its key-map module: nothing else in the
toolkit changes. The two blocks marked below are the whole of the addition (their line
count is the diff a real family costs); the rest of the file checks that the profile, the
importer, the stand-ins, the stage plan, the pipeline and the Hydra configs all see it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ttt_import import families as key_maps
from ttt_import import registry
from ttt_import.convert import import_snapshot
from ttt_import.families.llama import LlamaFamily
from ttt_import.profiles import PROFILES, get_profile, parameter_count, profile_model_config
from ttt_import.standins import tiny_hf_config, true_size_hf_config, write_random_snapshot
from ttt_ledger import build_stage_plan
from ttt_train.config import compose_config, experiment_names
from ttt_train.families import pipeline_default_families, plan_family
from ttt_train.pipeline import resolve_families
from ttt_train.translate import model_config_of, translate


# --- the addition: a key-map module -----------------------------------------------------
class ToyFamily(LlamaFamily):
    """A Llama-architecture family under its own model_type."""

    model_type = "toy_llama"
    architecture = "ToyLlamaForCausalLM"


# --- the addition: its registry entry -----------------------------------------------------
TOY = registry.RegisteredFamily(
    registry.ModelProfile("toy_4l", "example/Toy-4L", "0" * 40, "toy_llama", 4, 64, 4, 2,
                          128, 256, True, False, 10000.0, 1e-5, 164_416, 1, 2),
    run_prefix="T", short="toy", max_position_embeddings=2048, test_heads=(4, 2),
    pilot_vocab_size=256, budget=registry.FullBudget(200, 20, "a test budget"),
    pipeline_default=True)
# ------------------------------------------------------------------------------------------

DATA = ["deploy_paths.data.dclm=/data/dclm", "deploy_paths.data.books3=/data/books3"]


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> registry.RegisteredFamily:
    monkeypatch.setitem(key_maps.FAMILIES, ToyFamily.model_type, ToyFamily())
    monkeypatch.setitem(registry.REGISTRY, TOY.key, TOY)
    return TOY


def test_the_addition_is_small():
    source = inspect.getsource(inspect.getmodule(test_the_addition_is_small))
    added = source.split("# --- the addition: a key-map module")[1].split("# ----")[0]
    assert len(added.strip().splitlines()) <= 25


def test_profile_and_importer_see_the_new_family(toy, tmp_path: Path):
    profile = get_profile("toy_4l")
    assert "toy_4l" in PROFILES
    # 256·64 tied embedding + 4 × (q 64·64, k 64·32, v 64·32, o 64·64, MLP 3·64·128,
    # 2 norms of 64) + the final norm: worked out by hand.
    assert parameter_count(profile_model_config(profile)) == 164_416
    snapshot = write_random_snapshot(tmp_path / "hf", true_size_hf_config("toy_4l"),
                                     dtype="float32")
    result = import_snapshot(snapshot, tmp_path / "ckpt", model="toy_4l", parity=False)
    assert result.config.num_layers == 4 and (tmp_path / "ckpt" / "audit.json").is_file()
    assert tiny_hf_config("toy_4l")["num_key_value_heads"] == 2


def test_the_plan_and_the_pipeline_see_the_new_family(toy):
    spec = plan_family("toy")
    records = build_stage_plan(spec, "x", budget="full")
    assert [r.run_id for r in records][:3] == ["T-A1", "T-A2", "T-A3"]
    assert records[0].checkpoint_source == "import-toy-fa-base"
    assert [r.planned_steps for r in records] == [200, 20, 200, 200, 20, 20, 200, 20, 200, 20]
    assert "toy_4l" in pipeline_default_families()
    assert resolve_families("T") == ["toy_4l"]


def test_the_configs_see_the_new_family(toy):
    names = [n for n in experiment_names() if n.startswith("external/toy_4l/")]
    assert len(names) == 10
    for name in names:
        spec = translate(compose_config([f"+experiment={name}", *DATA]))
        assert spec.model.num_layers == 4 and spec.model.hidden_size == 64
        assert spec.train.total_steps == (20 if spec.data.seq_len == 32768 else 200)
    scratch = translate(compose_config(["+experiment=external/toy_4l/pretrain-e2e-scratch-8K",
                                        *DATA]))
    assert scratch.model.suffix_len == 1 and scratch.model.intermediate_size == 128  # 4·128/5↑
    pilot = model_config_of(compose_config(["model=pilot/toy_4l"]))
    assert pilot.name == "toy_4l-pilot" and pilot.vocab_size == 256


def test_a_removed_family_leaves_no_configs_behind(toy, monkeypatch: pytest.MonkeyPatch):
    assert any(n.startswith("external/toy_4l/") for n in experiment_names())
    monkeypatch.delitem(registry.REGISTRY, TOY.key)
    assert not any(n.startswith("external/toy_4l/") for n in experiment_names())
