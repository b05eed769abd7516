"""What several test modules share: one tiny model config, varied per test by keyword."""

from __future__ import annotations

from typing import Any

from ttt_model.config import ModelConfig

TINY: dict[str, Any] = dict(
    name="eval-tiny", vocab_size=61, hidden_size=32, intermediate_size=48, num_layers=2,
    num_heads=4, num_kv_heads=2, attention="full", sliding_window=24, mini_batch_size=16,
    attention_block_size=16, bos_token_id=0, initializer_range=0.1)


def tiny_config(**overrides: Any) -> ModelConfig:
    """A two-layer full-attention model (vocab 61, hidden 32) with `overrides` applied."""
    return ModelConfig(**{**TINY, **overrides})
