"""DP + FSDP on 4 fake CPU devices computes the single-device train step."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ttt_model.sharding import leaf_spec

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp
    from conftest import tiny, random_tokens
    from ttt_model.config import TrainConfig
    from ttt_model.model import build_model
    from ttt_model.sharding import MeshConfig, batch_sharding, make_mesh
    from ttt_model.testing import assert_close, assert_trees_close, forward_terms
    from ttt_model.train import (init_train_state, make_batch_grads, make_train_step,
                                 place_state)

    assert len(jax.devices()) == 4
    cfg = tiny(num_layers=2, suffix_len=1)
    tc = TrainConfig(train_mode="meta", total_steps=4, warmup_steps=0)
    tokens = random_tokens(1, (1, 4, 33), cfg.vocab_size)
    mask = jnp.ones((1, 4, 32), bool)

    def run(mesh):
        g, st = init_train_state(build_model(cfg, 0), tc)
        tok, msk = tokens, mask
        if mesh is not None:
            st = place_state(st, mesh)
            tok = jax.device_put(tokens, batch_sharding(mesh))
            msk = jax.device_put(mask, batch_sharding(mesh))
        loss, grads, _ = jax.jit(make_batch_grads(g, tc))(st.params, tok, msk, st.step)
        step = make_train_step(g, tc, mesh=mesh, state=st if mesh is not None else None)
        for _ in range(2):
            st, m = step(st, tok, msk)
        return loss, grads, st, step._cache_size()

    l1, g1, _, _ = run(None)
    mesh = make_mesh(MeshConfig(data=2, fsdp=2))
    l2, g2, s2, n = run(mesh)
    assert n == 1, n
    # What sharding must preserve is the loss and gradient of the batch: they differ only
    # in how the sums are split over devices. (Parameters after AdamW steps are not
    # compared: Adam's 1/sqrt(v) turns rounding of near-zero gradients into lr-sized moves.)
    assert_close(l2, l1, terms=forward_terms(cfg, 32), statistical=True)
    assert_trees_close(g2, g1, terms=4 * 32 * max(cfg.hidden_size, cfg.intermediate_size,
                                                  cfg.vocab_size), what="DP+FSDP grad ")
    sharded = [x for x in jax.tree.leaves(s2.params) if "fsdp" in str(x.sharding.spec)]
    assert sharded, "no parameter is FSDP-sharded"
    print("OK", float(l1), float(l2))
""")



def test_leaf_spec_shards_the_largest_divisible_dim():
    assert tuple(leaf_spec((61, 32), 2)) == (None, "fsdp")
    assert tuple(leaf_spec((64, 32), 2)) == ("fsdp", None)
    assert tuple(leaf_spec((7, 5), 2)) == ()
    assert tuple(leaf_spec((32,), 2)) == ()


@pytest.mark.slow
def test_dp_fsdp_step_equals_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        pytest.fail(out.stderr[-4000:])
    assert "OK" in out.stdout
