"""Transformer layers (Flax NNX): RMSNorm, SwiGLU MLP, attention, and the block.

Parameters live in `param_dtype`; matmuls run in `compute_dtype`; norms, softmax and RoPE
run in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.attention import KVCache, acc_dtype, apply_rope, attend_chunk, attend_sequence
from ttt_model.config import REMAT_POLICIES, ModelConfig


def _dtype(name: str) -> jnp.dtype:
    return jnp.dtype(name)


class Dense(nnx.Module):
    def __init__(self, d_in: int, d_out: int, cfg: ModelConfig, *, bias: bool = False,
                 rngs: nnx.Rngs):
        init = nnx.initializers.normal(cfg.initializer_range)
        self.kernel = nnx.Param(init(rngs.params(), (d_in, d_out), _dtype(cfg.param_dtype)))
        self.bias = (nnx.Param(jnp.zeros((d_out,), _dtype(cfg.param_dtype))) if bias
                     else None)
        self.compute_dtype = _dtype(cfg.compute_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.dot(x.astype(self.compute_dtype), self.kernel[...].astype(self.compute_dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.compute_dtype)
        return y


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, cfg: ModelConfig):
        self.scale = nnx.Param(jnp.ones((dim,), _dtype(cfg.param_dtype)))
        self.eps = cfg.rms_norm_eps

    def __call__(self, x: jax.Array) -> jax.Array:
        acc = acc_dtype(x.dtype)
        xa = x.astype(acc)
        y = xa * jax.lax.rsqrt(jnp.mean(xa * xa, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(acc)).astype(x.dtype)


class MLP(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig, inter: int, *, rngs: nnx.Rngs):
        self.gate_proj = Dense(cfg.hidden_size, inter, cfg, rngs=rngs)
        self.up_proj = Dense(cfg.hidden_size, inter, cfg, rngs=rngs)
        self.down_proj = Dense(inter, cfg.hidden_size, cfg, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, layer: int, *, rngs: nnx.Rngs):
        D, H, K, hd = cfg.hidden_size, cfg.num_heads, cfg.kv_heads, cfg.dim_per_head
        self.q_proj = Dense(D, H * hd, cfg, bias=cfg.qkv_bias, rngs=rngs)
        self.k_proj = Dense(D, K * hd, cfg, bias=cfg.qkv_bias, rngs=rngs)
        self.v_proj = Dense(D, K * hd, cfg, bias=cfg.qkv_bias, rngs=rngs)
        self.o_proj = Dense(H * hd, D, cfg, rngs=rngs)
        self.q_norm = RMSNorm(hd, cfg) if cfg.qk_norm else None
        self.k_norm = RMSNorm(hd, cfg) if cfg.qk_norm else None
        self.num_heads, self.kv_heads, self.head_dim = H, K, hd
        self.window = cfg.window(layer)
        self.theta = cfg.rope_theta
        self.block = cfg.attention_block_size
        self.impl = cfg.attention_impl

    def _qkv(self, x_BxTxD: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        B, T, _ = x_BxTxD.shape
        q = self.q_proj(x_BxTxD).reshape(B, T, self.num_heads, self.head_dim)
        k = self.k_proj(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
        v = self.v_proj(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v

    def _out(self, o_BxTxHxD: jax.Array) -> jax.Array:
        B, T = o_BxTxHxD.shape[:2]
        return self.o_proj(o_BxTxHxD.reshape(B, T, self.num_heads * self.head_dim))

    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        """One-shot causal self-attention over the whole sequence (absolute positions)."""
        q, k, v = self._qkv(x_BxTxD)
        pos_T = jnp.arange(x_BxTxD.shape[1], dtype=jnp.int32)
        q, k = apply_rope(q, pos_T, self.theta), apply_rope(k, pos_T, self.theta)
        return self._out(attend_sequence(q, k, v, window=self.window, block=self.block,
                                         impl=self.impl))

    def step(self, x_BxCxD: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache]:
        """Attention of a chunk over the carried cache (chunked sliding / decoding)."""
        q, k, v = self._qkv(x_BxCxD)
        o, cache = attend_chunk(q, k, v, cache, window=self.window, theta=self.theta,
                                impl=self.impl, block=self.block)
        return self._out(o), cache


class Block(nnx.Module):
    """h += attn(h); h += prime(h) (suffix blocks of a TTT model); h += mlp(h).

    Each sub-layer is pre-normed, and post-normed too when `cfg.post_norm`.
    """

    def __init__(self, cfg: ModelConfig, layer: int, *, prime: bool, rngs: nnx.Rngs):
        D = cfg.hidden_size
        self.attention = Attention(cfg, layer, rngs=rngs)
        self.pre_attn_norm = RMSNorm(D, cfg)
        self.post_attn_norm = RMSNorm(D, cfg) if cfg.post_norm else None
        if prime:
            self.feed_forward_prime = MLP(cfg, cfg.prime_inter, rngs=rngs)
            self.pre_prime_norm = RMSNorm(D, cfg)
            self.post_prime_norm = RMSNorm(D, cfg) if cfg.post_norm else None
        else:
            self.feed_forward_prime = None
        self.feed_forward = MLP(cfg, cfg.intermediate_size, rngs=rngs)
        self.pre_mlp_norm = RMSNorm(D, cfg)
        self.post_mlp_norm = RMSNorm(D, cfg) if cfg.post_norm else None

    @staticmethod
    def _post(norm: RMSNorm | None, y: jax.Array) -> jax.Array:
        return y if norm is None else norm(y)

    def _feed_forwards(self, h: jax.Array) -> jax.Array:
        if self.feed_forward_prime is not None:
            y = self.feed_forward_prime(self.pre_prime_norm(h))
            h = h + self._post(self.post_prime_norm, y).astype(h.dtype)
        y = self.feed_forward(self.pre_mlp_norm(h))
        return h + self._post(self.post_mlp_norm, y).astype(h.dtype)

    def __call__(self, h_BxTxD: jax.Array) -> jax.Array:
        y = self.attention(self.pre_attn_norm(h_BxTxD))
        h = h_BxTxD + self._post(self.post_attn_norm, y).astype(h_BxTxD.dtype)
        return self._feed_forwards(h)

    def keys_values(self, h_BxTxD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The un-rotated keys and values this block's attention makes of `h` (its input):
        what a decoding cache is filled with after a one-shot prefill."""
        _, k, v = self.attention._qkv(self.pre_attn_norm(h_BxTxD))
        return k, v

    def step(self, h_BxCxD: jax.Array, cache: KVCache) -> tuple[jax.Array, KVCache]:
        y, cache = self.attention.step(self.pre_attn_norm(h_BxCxD), cache)
        h = h_BxCxD + self._post(self.post_attn_norm, y).astype(h_BxCxD.dtype)
        return self._feed_forwards(h), cache


def run_block(blk: Block, h: jax.Array, cache: KVCache | None = None, *, remat: str = ""
              ) -> Any:
    """`blk(h)` (one shot) or, given a cache, `blk.step(h, cache)` (one chunk).

    `remat` ("" = none) is a `jax.checkpoint_policies` name (`ModelConfig.remat_block`):
    the block's forward is then rematerialised, i.e. the backward pass keeps only what the
    policy saves (for `nothing_saveable`, the block's inputs) and recomputes the rest.
    Forward values and gradients are unchanged; only memory and compute move.
    """
    def forward(b: Block, h: jax.Array, cache: KVCache | None) -> Any:
        return b(h) if cache is None else b.step(h, cache)

    if not remat:
        return forward(blk, h, cache)
    if remat not in REMAT_POLICIES:
        raise ValueError(f"a remat policy (remat_block, remat_prefix_block) must be '' or "
                         f"one of {list(REMAT_POLICIES)}, got {remat!r}")
    # jax.checkpoint needs a pure function of arrays: the block's state goes in as one.
    graphdef, state = nnx.split(blk)

    def pure(state: Any, h: jax.Array, cache: KVCache | None) -> Any:
        return forward(nnx.merge(graphdef, state), h, cache)

    policy = getattr(jax.checkpoint_policies, remat)
    return jax.checkpoint(pure, policy=policy)(state, h, cache)


def step_blocks(blocks: Sequence[Block], h_BxCxD: jax.Array, caches: Sequence[Any], *,
                remat: str = "") -> tuple[jax.Array, list]:
    """A chunk (or one token) through `blocks` in order, each over its own carried cache:
    (the last block's output, the blocks' new caches). `remat`: see `run_block`."""
    new = []
    for blk, c in zip(blocks, caches, strict=True):
        h_BxCxD, c = run_block(blk, h_BxCxD, c, remat=remat)
        new.append(c)
    return h_BxCxD, new
