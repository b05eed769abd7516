from __future__ import annotations

import pytest

from ttt_model.config import PAPER_SIZES, ConfigError, ModelConfig, TrainConfig, paper_config


def test_round_trip_through_dict():
    cfg = paper_config("350m", "e2e", attention_kinds=("sliding",) * 24)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("changes,match", [
    (dict(num_heads=5, num_kv_heads=2), "multiple of num_kv_heads"),
    (dict(suffix_len=9, num_layers=4), "suffix_len=9"),
    (dict(prime=True, suffix_len=0), "prime=True needs suffix_len"),
    (dict(attention_kinds=("full",)), "attention_kinds has 1 entries"),
    (dict(hidden_size=0), "hidden_size must be positive"),
    (dict(compute_dtype="int8"), "compute_dtype"),
])
def test_invalid_model_configs_name_the_problem(changes, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**changes)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown keys \\['hiden_size'\\]"):
        ModelConfig.from_dict({"hiden_size": 3})


def test_invalid_train_configs():
    with pytest.raises(ConfigError, match="train_mode"):
        TrainConfig(train_mode="meta-learn")
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(total_steps=5, warmup_steps=6)
    assert TrainConfig(spec_inner="a.**").spec_inner == ("a.**",)


@pytest.mark.parametrize("size", PAPER_SIZES)
def test_paper_configs_follow_the_design_table(size):
    fa, e2e = paper_config(size, "fa"), paper_config(size, "e2e")
    assert fa.num_layers == e2e.num_layers and e2e.suffix_len * 4 == e2e.num_layers
    assert e2e.intermediate_size < fa.intermediate_size
    assert e2e.prime and not fa.prime and fa.attention == "full" and e2e.attention == "sliding"
    assert (fa.vocab_size, fa.sliding_window, e2e.mini_batch_size) == (128256, 8192, 1024)
