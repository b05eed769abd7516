"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and
top-p (nucleus), reproducibly from a seed. Pure functions of (logits, key), traceable."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ttt_eval.errors import EvalError


@dataclass(frozen=True)
class Sampling:
    """temperature 0 is greedy (top_k/top_p unused); top_k/top_p None keep every token."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise EvalError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise EvalError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise EvalError(f"top_p must lie in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def filtered_logits(logits_BxV: jax.Array, sampling: Sampling) -> jax.Array:
    """Logits divided by the temperature, with tokens outside top-k / top-p set to -inf."""
    z = logits_BxV.astype(jnp.float32) / sampling.temperature
    V = z.shape[-1]
    if sampling.top_k is not None and sampling.top_k < V:
        kth = jax.lax.top_k(z, sampling.top_k)[0][..., -1:]
        z = jnp.where(z < kth, -jnp.inf, z)
    if sampling.top_p is not None and sampling.top_p < 1:
        order = jnp.argsort(-z, axis=-1)
        sorted_z = jnp.take_along_axis(z, order, axis=-1)
        probs = jax.nn.softmax(sorted_z, axis=-1)
        # keep a token when the mass of the tokens before it is below p (the first always)
        before = jnp.cumsum(probs, axis=-1) - probs
        keep_sorted = before < sampling.top_p
        keep = jnp.zeros_like(keep_sorted).at[
            jnp.arange(z.shape[0])[:, None], order].set(keep_sorted)
        z = jnp.where(keep, z, -jnp.inf)
    return z


def next_tokens(logits_BxV: jax.Array, key: jax.Array, sampling: Sampling) -> jax.Array:
    """One token per row [B] (int32)."""
    if sampling.greedy:
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    z = filtered_logits(logits_BxV, sampling)
    return jax.random.categorical(key, z, axis=-1).astype(jnp.int32)
