"""Decoding behind one interface for every kind of model.

A `Decoder` consumes prompts (`prefill`), then one token per sequence at a time
(`decode_step`), and exposes the next-token logits (`next_logits`); an evaluation loop can
generate or teacher-force with any of them: `KVCacheDecoder` (full attention, sliding
windows, or a per-layer mix) here, `ttt_model.inference.TTTRunner` (TTT-E2E).

Caches are `RingCache`s written in place: a sliding layer keeps one window (decoding
cost flat in the context), a full-attention layer a preallocated ring of `max_len` slots
read whole at each step (cost grows with the context it is sized for). Prompts of
different lengths run as one batch: row i of `tokens_BxN` holds `lengths_B[i]` prompt tokens
(right-padded to a bucket length N); one compiled prefill per (batch, bucket length), one
decode step for all. Jit `decode_step` with `donate_argnums=0` so that the caches are
updated in place rather than copied.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from ttt_model.attention import RingCache, ring_positions
from ttt_model.layers import step_blocks
from ttt_model.losses import head_nll
from ttt_model.model import Transformer


class Decoder(Protocol):
    def prefill(self, tokens_BxN: jax.Array, lengths_B: jax.Array | None = None,
                per_token: bool = True) -> tuple[Any, jax.Array]:
        """Consume prompts: (decode state, NLL of tokens 1..N-1 [B, N-1] or summed [B]);
        entries at or past a row's length are 0."""
        ...

    def decode_step(self, state: Any, tok_B: jax.Array) -> Any:
        """Feed one token per sequence."""
        ...

    def next_logits(self, state: Any) -> jax.Array:
        """[B, V] logits of the token after the last one consumed."""
        ...


def prompt_lengths(tokens_BxN: jax.Array, lengths_B: jax.Array | None) -> jax.Array:
    """Per-row prompt lengths (int32 [B]); all N when not given."""
    B, N = tokens_BxN.shape
    if lengths_B is None:
        return jnp.full((B,), N, jnp.int32)
    return jnp.asarray(lengths_B, jnp.int32)


def repeat_rows(state: Any, n: int) -> Any:
    """A one-row decode state as `n` identical rows, e.g. to continue one prefilled prompt
    with several candidate continuations at once. Every decoder's state is batched on axis 0
    except the rings' shared write clock, its only scalars."""
    def repeat(x: jax.Array) -> jax.Array:
        if x.ndim == 0:
            return x
        if x.shape[0] != 1:
            raise ValueError(f"repeat_rows takes a one-row state, got a leaf of shape {x.shape}")
        return jnp.repeat(x, n, axis=0)
    return jax.tree.map(repeat, state)


def run_blocks(model: Transformer, tokens_BxC: jax.Array, caches: list,
               suffix_after: Any = None) -> tuple[jax.Array, jax.Array, list]:
    """Tokens through every block over carried caches (a chunk over `KVCache`s, one token
    over `RingCache`s): (hidden states entering the suffix, final hidden states, caches).

    The suffix waits for `suffix_after` (a pytree; a data dependency, times zero): a value
    computed from the suffix rings, which the suffix then overwrites in place, must be
    computed first, or XLA copies those rings to allow either order.
    """
    h = model.embed_tokens(tokens_BxC)
    n = model.cfg.num_prefix_layers
    h, prefix = step_blocks(model.prefix_blocks, h, caches[:n])
    leaves = jax.tree.leaves(suffix_after)
    if leaves and len(model.suffix_blocks):  # (a runner without inner weights: no wait)
        h = h + 0.0 * leaves[0].ravel()[0].astype(h.dtype)
    h_out, suffix = step_blocks(model.suffix_blocks, h, caches[n:])
    return h, h_out, prefix + suffix


class CacheState(NamedTuple):
    caches: list[RingCache]  # per layer
    logits_BxV: jax.Array  # prediction of each sequence's next token
    position: jax.Array  # [B] int32: tokens of each sequence consumed so far


class KVCacheDecoder:
    """Decoding without test-time training: full attention, sliding windows, or both.

    `max_len` (the prompt bucket plus generated tokens) sizes the ring of every
    full-attention layer, and so the cost of its steps; it is required when there is one,
    and past it the logits are NaN, not silently wrong. Prefill is the model's one-shot
    forward pass (so its NLL is `pretrain_loss`'s), which also fills each layer's ring
    from that layer's input.
    """

    def __init__(self, model: Transformer, max_len: int | None = None):
        cfg = model.cfg
        full = [i for i in range(cfg.num_layers) if cfg.window(i) is None]
        if full and max_len is None:
            raise ValueError(f"{cfg.name}: layers {full} use full attention; decoding them "
                             "needs max_len (prompt bucket plus generated tokens)")
        self.model = model
        self.cfg = cfg
        self.max_len = max_len if full else None
        self.sizes = [cfg.window(i) or max_len for i in range(cfg.num_layers)]

    def prefill(self, tokens_BxN: jax.Array, lengths_B: jax.Array | None = None,
                per_token: bool = True) -> tuple[CacheState, jax.Array]:
        """One-shot forward over the bucket (right padding is invisible to causal
        attention), padded to a multiple of the attention block; each ring is filled from
        its layer's input at the positions it keeps."""
        m, cfg = self.model, self.cfg
        B, N = tokens_BxN.shape
        if self.max_len is not None and self.max_len < N:
            raise ValueError(f"prompt bucket of {N} tokens exceeds max_len={self.max_len}")
        lengths_B = prompt_lengths(tokens_BxN, lengths_B)
        start_B = N - lengths_B  # every prompt ends on tick N - 1
        blk_len = cfg.attention_block_size
        n_pad = -(-N // blk_len) * blk_len
        padded = jnp.pad(tokens_BxN, ((0, 0), (0, n_pad + 1 - N)))
        h = m.embed_tokens(padded[:, :-1])
        caches = []
        for blk, size in zip(m.blocks, self.sizes, strict=True):
            pos_BxS = ring_positions(N, size)[None, :] - start_B[:, None]
            rows = jnp.take_along_axis(h, jnp.clip(pos_BxS, 0, n_pad - 1)[..., None], axis=1)
            k, v = blk.keys_values(rows)
            caches.append(RingCache.build(k, v, N, start_B, cfg.rope_theta))
            h = blk(h)
        last_Bx1xD = jnp.take_along_axis(h, (lengths_B - 1)[:, None, None], axis=1)
        logits = m.logits(last_Bx1xD)[:, 0]
        nll = head_nll(m, h, padded[:, 1:], cfg.logits_block_size)[:, : N - 1]
        nll = jnp.where(jnp.arange(N - 1) < lengths_B[:, None] - 1, nll, 0.0)
        return CacheState(caches, logits, lengths_B), nll if per_token else nll.sum(-1)

    def decode_step(self, state: CacheState, tok_B: jax.Array) -> CacheState:
        _, h, caches = run_blocks(self.model, tok_B[:, None], state.caches)
        logits = self.model.logits(h)[:, 0]
        if self.max_len is not None:
            logits = jnp.where(state.caches[0].length < self.max_len, logits, jnp.nan)
        return CacheState(caches, logits, state.position + 1)

    def next_logits(self, state: CacheState) -> jax.Array:
        return state.logits_BxV
