"""The decoder-only Transformer: embedding, prefix blocks, suffix blocks, head.

The last `suffix_len` blocks are kept apart (`suffix_blocks`) because the TTT inner loop
runs them chunk by chunk while the prefix runs once over the sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.attention import KVCache, acc_dtype
from ttt_model.config import ModelConfig
from ttt_model.layers import Block, RMSNorm


class Transformer(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pdt = jnp.dtype(cfg.param_dtype)
        init = nnx.initializers.normal(cfg.initializer_range)
        self.embed = nnx.Param(init(rngs.params(), (cfg.vocab_size, cfg.hidden_size), pdt))
        n_pre = cfg.num_prefix_layers
        self.prefix_blocks = nnx.List(
            [Block(cfg, i, prime=False, rngs=rngs) for i in range(n_pre)])
        self.suffix_blocks = nnx.List(
            [Block(cfg, n_pre + i, prime=cfg.prime, rngs=rngs) for i in range(cfg.suffix_len)])
        self.final_norm = RMSNorm(cfg.hidden_size, cfg)
        self.lm_head = (None if cfg.tie_embeddings else
                        nnx.Param(init(rngs.params(), (cfg.hidden_size, cfg.vocab_size), pdt)))

    @property
    def blocks(self) -> list[Block]:
        return [*self.prefix_blocks, *self.suffix_blocks]

    def embed_tokens(self, tokens_BxT: jax.Array) -> jax.Array:
        emb = self.embed[...]
        return jnp.take(emb, tokens_BxT, axis=0).astype(acc_dtype(emb.dtype))

    def logits(self, h_BxTxD: jax.Array) -> jax.Array:
        """Final norm and unembedding; logits in float32 (float64 for a float64 model)."""
        cdt = jnp.dtype(self.cfg.compute_dtype)
        h = self.final_norm(h_BxTxD).astype(cdt)
        w_DxV = self.embed[...].T if self.lm_head is None else self.lm_head[...]
        return jnp.dot(h, w_DxV.astype(cdt), preferred_element_type=acc_dtype(cdt))

    def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
        """Logits of a whole sequence, every block run once (one-shot attention)."""
        h = self.embed_tokens(tokens_BxT)
        for blk in self.blocks:
            h = blk(h)
        return self.logits(h)

    def empty_caches(self, batch: int, blocks: str = "all", extra: int = 0) -> list[KVCache]:
        """Empty sliding caches (size window + extra) for `blocks` in 'all'|'prefix'|'suffix'."""
        cfg = self.cfg
        n_pre = cfg.num_prefix_layers
        layers = {"all": range(cfg.num_layers), "prefix": range(n_pre),
                  "suffix": range(n_pre, cfg.num_layers)}[blocks]
        caches = []
        for i in layers:
            w = cfg.window(i)
            if w is None:
                raise ValueError(
                    f"{cfg.name}: layer {i} uses full attention, which has no bounded cache; "
                    "chunked processing needs sliding attention in every chunked layer")
            caches.append(KVCache.empty(batch, w + extra, cfg.kv_heads, cfg.dim_per_head,
                                        jnp.dtype(cfg.compute_dtype)))
        return caches


def build_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    return Transformer(cfg, rngs=nnx.Rngs(seed))


def abstract_model(cfg: ModelConfig) -> Transformer:
    """The model with ShapeDtypeStructs instead of arrays: no memory, no compute."""
    return nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))


def count_params(model: Transformer) -> int:
    """Number of parameters, read off the model's own parameter shapes."""
    state = nnx.state(model, nnx.Param)
    return int(sum(x.size for x in jax.tree.leaves(state)))
