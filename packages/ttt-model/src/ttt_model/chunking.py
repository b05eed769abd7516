"""Splitting sequences into chunks of b tokens and scanning over them with remat groups."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_chunks(body, carry, xs, n_chunks: int, remat_every: int):
    """lax.scan over chunks, rematerialising every `remat_every` chunks.

    Only the carry at each group boundary is kept for the backward pass; a group's
    chunks are recomputed when its gradient is needed.
    """
    if n_chunks % remat_every:
        raise ValueError(f"remat_every={remat_every} must divide the number of chunks "
                         f"({n_chunks})")
    g = n_chunks // remat_every
    xs_g = jax.tree.map(lambda x: x.reshape(g, remat_every, *x.shape[1:]), xs)

    @jax.checkpoint
    def group(c, xg):
        return jax.lax.scan(body, c, xg)

    carry, ys = jax.lax.scan(group, carry, xs_g)
    return carry, jax.tree.map(lambda y: y.reshape(n_chunks, *y.shape[2:]), ys)


def to_chunks(x_BxT: jax.Array, b: int) -> jax.Array:
    """[B, T, ...] -> [T/b, B, b, ...] (chunk-major, for lax.scan)."""
    B, T = x_BxT.shape[:2]
    if T % b:
        raise ValueError(f"sequence length {T} is not a multiple of mini_batch_size {b}")
    return jnp.moveaxis(x_BxT.reshape(B, T // b, b, *x_BxT.shape[2:]), 1, 0)


def from_chunks(x_NxBxb: jax.Array) -> jax.Array:
    N, B, b = x_NxBxb.shape[:3]
    return jnp.moveaxis(x_NxBxb, 0, 1).reshape(B, N * b, *x_NxBxb.shape[3:])
