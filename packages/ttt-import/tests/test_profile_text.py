"""What `ttt profile` shows: every profile in the table, one profile's pinned count checked
against the count its own model computes, and a prepared profile's record in one line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ttt_import import PROFILES, ProfileError
from ttt_import.profile_text import (
    ProfileCount,
    count_profile,
    describe_prepared,
    profile_keys,
    profiles_table,
)


def test_table_has_a_header_and_a_row_per_profile():
    header, *rows = profiles_table().split("\n")
    assert header.split()[:3] == ["key", "hf", "id"]
    assert [row.split()[0] for row in rows] == list(PROFILES)
    assert "1,543,714,304" in rows[list(PROFILES).index("qwen2_5_1_5b")]


def test_count_matches_the_pin_and_a_drifted_pin_shows():
    counted = count_profile("smollm2_135m")
    assert counted.matches and counted.computed == 134_515_008
    record = counted.to_dict()
    assert record["param_count_computed"] == 134_515_008
    assert record["model_config"]["num_layers"] == 30
    assert counted.describe().endswith("134,515,008 (matches the pinned 134,515,008)")
    drifted = ProfileCount(dataclasses.replace(counted.profile, params=1), counted.config,
                           counted.computed)
    assert not drifted.matches and "DIFFERS FROM the pinned 1)" in drifted.describe()


def test_keys_of_a_model_choice():
    assert profile_keys("all") == sorted(PROFILES)
    assert profile_keys("qwen2_5_0_5b") == ["qwen2_5_0_5b"]
    with pytest.raises(ProfileError):
        profile_keys("no_such_model")


def test_prepared_line_reads_the_record(tmp_path):
    record = {"revision_matches_pin": False, "pinned_revision": "abc", "source_revision": "local",
              "source_config_sha256": "0123456789abcdef", "param_count": 1234}
    (tmp_path / "model_profile.json").write_text(json.dumps(record))
    assert describe_prepared("k", tmp_path) == (
        f"k: wrote {tmp_path}/hf_config.json, model_profile.json (revision local, pinned abc; "
        "config sha256 0123456789ab…; 1,234 parameters)")
