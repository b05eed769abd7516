"""Shared tiny configs: small enough that each compile takes seconds on 2 CPU cores."""

from __future__ import annotations

import jax
import pytest

from ttt_model.config import ModelConfig


def tiny(**kw) -> ModelConfig:
    base = dict(name="test-tiny", vocab_size=61, hidden_size=32, intermediate_size=48,
                num_layers=3, num_heads=4, num_kv_heads=2, qk_norm=True, post_norm=True,
                attention="sliding", sliding_window=24, mini_batch_size=16,
                attention_block_size=16, suffix_len=2, prime=True, bos_token_id=0,
                initializer_range=0.1)
    base.update(kw)
    return ModelConfig(**base)


def random_tokens(seed: int, shape: tuple[int, ...], vocab: int, low: int = 2) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), shape, low, vocab)


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    return tiny()
