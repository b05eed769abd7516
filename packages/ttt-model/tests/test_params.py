"""Parameter selection by glob spec, and parameter counts read off the model's shapes."""

from __future__ import annotations

import pytest

from conftest import tiny
from ttt_model.config import ModelConfig, paper_config
from ttt_model.model import abstract_model, count_params
from ttt_model.params import glob_match, selected_paths

PRIME = "**.suffix_blocks.feed_forward_prime.**"


@pytest.mark.parametrize("spec,path,expected", [
    (PRIME, "suffix_blocks.0.feed_forward_prime.up_proj.kernel", True),
    (PRIME, "suffix_blocks.feed_forward_prime.up_proj.kernel", True),
    (PRIME, "model.suffix_blocks.3.feed_forward_prime.x", True),
    (PRIME, "suffix_blocks.0.feed_forward.up_proj.kernel", False),
    (PRIME, "prefix_blocks.0.feed_forward_prime.w", False),
    ("suffix_blocks.1.feed_forward_prime.**", "suffix_blocks.0.feed_forward_prime.w", False),
    ("suffix_blocks.1.feed_forward_prime.**", "suffix_blocks.1.feed_forward_prime.w", True),
    ("**.*_proj.kernel", "suffix_blocks.0.attention.q_proj.kernel", True),
    ("language_model.**.suffix_blocks.feed_forward_prime.**",
     "suffix_blocks.1.feed_forward_prime.up_proj.kernel", True),
    ("**.*_proj.kernel", "suffix_blocks.0.attention.q_proj.bias", False),
])
def test_glob_match(spec, path, expected):
    assert glob_match(spec, path) is expected


def test_default_spec_selects_exactly_the_prime_mlps():
    model = abstract_model(tiny(num_layers=4, suffix_len=2))
    paths = selected_paths(model, ["**.suffix_blocks.feed_forward_prime.**"])
    assert paths == [f"suffix_blocks.{i}.feed_forward_prime.{p}_proj.kernel"
                     for i in (0, 1) for p in ("down", "gate", "up")]


# docs/models.md (HF config facts and the published parameter counts)
FAMILIES = {
    "smollm2_135m": (dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                          num_layers=30, num_heads=9, num_kv_heads=3), 134_515_008),
    "smollm2_360m": (dict(vocab_size=49152, hidden_size=960, intermediate_size=2560,
                          num_layers=32, num_heads=15, num_kv_heads=5), 361_821_120),
    "qwen2_5_0_5b": (dict(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                          num_layers=24, num_heads=14, num_kv_heads=2, qkv_bias=True),
                     494_032_768),
    "qwen2_5_1_5b": (dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                          num_layers=28, num_heads=12, num_kv_heads=2, qkv_bias=True),
                     1_543_714_304),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_parameter_counts(family):
    facts, expected = FAMILIES[family]
    assert count_params(abstract_model(ModelConfig(name=family, **facts))) == expected


def test_paper_125m_fa_and_e2e_are_parameter_matched():
    fa = count_params(abstract_model(paper_config("125m", "fa")))
    e2e = count_params(abstract_model(paper_config("125m", "e2e")))
    assert abs(e2e / fa - 1) < 0.01, (fa, e2e)
