"""The `ttt` recipe on trained weights: every weight goes to its own layer, prime MLPs are
added as the recipe says, and a weight that does not fit is refused naming path and source."""

from __future__ import annotations

import numpy as np
import pytest

from ttt_import.checkpoints import param_shapes
from ttt_import.errors import ImportFailure
from ttt_import.recipes import insert_primes
from ttt_model.config import tiny_config

SOURCE = tiny_config("fa")  # 4 layers, all prefix blocks
TARGET = SOURCE.replace(attention="sliding", sliding_window=64, prime=True, suffix_len=1)


def _random_weights(cfg, seed=0):
    rng = np.random.default_rng(seed)
    return {p: rng.standard_normal(s.shape).astype(np.float32)
            for p, s in param_shapes(cfg).items()}


def test_weights_move_to_their_layer_and_primes_start_at_zero_output():
    source = _random_weights(SOURCE)
    out = insert_primes(SOURCE, source, TARGET, prime_init="zeros", where="ckpt/0")
    assert set(out) == set(param_shapes(TARGET))
    last = SOURCE.num_layers - 1  # the source's last block is the target's suffix block 0
    moved = [p for p in out if p.startswith("suffix_blocks.0.") and "prime" not in p]
    assert moved
    for path in moved:
        np.testing.assert_array_equal(out[path], source[path.replace(
            "suffix_blocks.0.", f"prefix_blocks.{last}.")])
    np.testing.assert_array_equal(out["prefix_blocks.0.attention.q_proj.kernel"],
                                  source["prefix_blocks.0.attention.q_proj.kernel"])
    down = [p for p in out if "feed_forward_prime.down_proj" in p]
    assert down and all(not out[p].any() for p in down)


def test_copy_init_copies_the_blocks_own_mlp():
    source = _random_weights(SOURCE, seed=1)
    out = insert_primes(SOURCE, source, TARGET, prime_init="copy")
    last = SOURCE.num_layers - 1
    np.testing.assert_array_equal(out["suffix_blocks.0.feed_forward_prime.up_proj.kernel"],
                                  source[f"prefix_blocks.{last}.feed_forward.up_proj.kernel"])


def test_a_weight_that_does_not_fit_is_refused_naming_path_and_source():
    wider = _random_weights(SOURCE.replace(intermediate_size=SOURCE.intermediate_size * 2))
    with pytest.raises(ImportFailure, match=r"ckpt/7: 'prefix_blocks\.0\.feed_forward\..*"
                                            r"has shape"):
        insert_primes(SOURCE, wider, TARGET, where="ckpt/7")
    shallow_cfg = SOURCE.replace(num_layers=3)
    with pytest.raises(ImportFailure, match="ckpt/7 has no weight for 'suffix_blocks.0"):
        insert_primes(shallow_cfg, _random_weights(shallow_cfg), TARGET, where="ckpt/7")
