"""The family registry: derived facts follow the paper's rules, and every entry is whole."""

from __future__ import annotations

import pytest

from ttt_import import PROFILES, REGISTRY, ProfileError, get_registered
from ttt_import.registry import matched_intermediate_size

# The paper's FA and E2E MLP widths (docs/models.md): layers, FA width, suffix, E2E width.
PAPER = {"125m": (12, 2048, 3, 1664), "350m": (24, 2816, 6, 2304),
         "760m": (24, 4096, 6, 3328), "1b": (24, 5376, 6, 4352), "3b": (32, 6912, 8, 5632)}


@pytest.mark.parametrize("size", sorted(PAPER))
def test_the_matched_width_rule_gives_the_papers_e2e_widths(size: str):
    layers, fa, suffix, e2e = PAPER[size]
    assert matched_intermediate_size(layers, fa, suffix) == e2e


def test_each_family_derives_its_ttt_settings_from_its_depth():
    # L·I/(L+s) rounded up to 128, s = L/4: worked out by hand from the profiles.
    expected = {"qwen2_5_0_5b": (6, 3968), "smollm2_360m": (8, 2048),
                "smollm2_135m": (7, 1280), "qwen2_5_1_5b": (7, 7168)}
    got = {k: (f.ttt_suffix_len, f.ttt_intermediate_size) for k, f in REGISTRY.items()}
    assert got == expected
    assert {f.pilot_ttt_intermediate_size for f in REGISTRY.values()} == {104}  # 4·128/5 → 8


def test_entries_are_whole_and_names_unique():
    for key, family in REGISTRY.items():
        assert family.key == key and PROFILES[key] is family.profile
        heads, kv = family.test_heads
        assert heads % kv == 0 and family.profile.num_heads // family.profile.num_kv_heads \
            == heads // kv, f"{key}: the test stand-in keeps the GQA ratio"
        assert family.budget.pretrain_steps > family.budget.ext_steps > 0
    for attr in ("run_prefix", "short"):
        values = [getattr(f, attr) for f in REGISTRY.values()]
        assert len(set(values)) == len(values), attr
    assert [k for k, f in REGISTRY.items() if f.pipeline_default] == ["qwen2_5_0_5b",
                                                                      "smollm2_360m"]


def test_a_family_is_found_by_key_short_name_or_run_prefix():
    assert get_registered("qwen05") is get_registered("Q") is REGISTRY["qwen2_5_0_5b"]
    assert get_registered("smol360").run_prefix == "S"
    with pytest.raises(ProfileError, match="unknown model family 'llama'.*qwen05"):
        get_registered("llama")
