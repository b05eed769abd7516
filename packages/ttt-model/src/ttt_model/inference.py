"""Prefill and decoding with test-time training, in memory independent of context length.

The state of a sequence is its inner weights, a sliding cache per layer, and the pending
(not yet learned-from) part of the current chunk. Prefill runs every block chunk by chunk
and takes the inner SGD step after each chunk whose last target is known; decoding runs
one token through sliding attention and, when b tokens have accumulated and the next
token arrives (the chunk's last target), takes the inner step on that chunk, exactly as
the meta loss does during training.

Cache slots hold window + b entries so that, when a chunk is committed, the suffix caches
as of the chunk's start are still there for the inner step's forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.attention import KVCache, acc_dtype
from ttt_model.config import DEFAULT_SPEC_INNER
from ttt_model.losses import target_mask, token_nll
from ttt_model.model import Transformer
from ttt_model.params import spec_filter
from ttt_model.ttt import split_inner, suffix_chunk_step


class SequenceState(NamedTuple):
    """Per-sequence decoding state (a leading batch axis is added by vmap)."""

    inner: Any  # nnx.State of the inner weights
    caches: list[KVCache]  # every layer, window + b slots
    pending_h_bxD: jax.Array  # hidden states entering the suffix, pending chunk
    pending_tok_b: jax.Array  # input tokens of the pending chunk
    last_logits_V: jax.Array  # prediction of the next token


class DecodeState(NamedTuple):
    seq: SequenceState  # batched over B
    n_pending: jax.Array  # int32 scalar, shared by the batch
    position: jax.Array  # int32 scalar: tokens consumed so far


class TTTRunner:
    """Prefill/decode functions for one model; `ttt=False` runs without inner updates."""

    def __init__(self, model: Transformer, *, ttt: bool = True, inner_lr: float = 1.0,
                 inner_clip: float = 1.0, spec: Sequence[str] = DEFAULT_SPEC_INNER):
        cfg = model.cfg
        self.cfg = cfg
        self.b = cfg.mini_batch_size
        self.ttt = ttt
        if ttt:
            self.graphdef, self.inner0, self.rest = split_inner(model, spec)
        else:
            self.graphdef, self.inner0, self.rest = nnx.split(model, spec_filter(()), ...)
        self.lr = jnp.asarray(inner_lr if ttt else 0.0, jnp.float32)
        self.clip = inner_clip
        self.n_prefix = cfg.num_prefix_layers

    # ----- pieces -----
    def _model(self, W) -> Transformer:
        return nnx.merge(self.graphdef, W, self.rest)

    def _learn(self, W, suffix_caches, h_bxD, targets_b):
        if not self.ttt:
            return W
        mask = target_mask(targets_b[None], self.cfg.bos_token_id)[0]
        W, _, _ = suffix_chunk_step(self.graphdef, self.rest, W, suffix_caches, h_bxD[None],
                                    targets_b, mask, self.lr, self.clip)
        return W

    def _token(self, s: SequenceState, tok: jax.Array, idx: jax.Array) -> SequenceState:
        """Run one token through every block (current inner weights); record it as pending."""
        m = self._model(s.inner)
        h = m.embed_tokens(tok.reshape(1, 1))
        caches = []
        h_suffix = h
        for i, (blk, c) in enumerate(zip(m.blocks, s.caches, strict=True)):
            if i == self.n_prefix:
                h_suffix = h
            h, c = blk.step(h, c)
            caches.append(c)
        if self.n_prefix == len(m.blocks):
            h_suffix = h
        pending_h = jax.lax.dynamic_update_slice_in_dim(s.pending_h_bxD, h_suffix[0], idx, 0)
        pending_t = jax.lax.dynamic_update_slice_in_dim(s.pending_tok_b, tok.reshape(1), idx, 0)
        return SequenceState(s.inner, caches, pending_h, pending_t, m.logits(h)[0, 0])

    def _commit(self, s: SequenceState, next_tok: jax.Array) -> SequenceState:
        """Inner step on the full pending chunk, now that its last target is known."""
        k = [c.size - self.b for c in s.caches]
        at_start = [KVCache(c.k_BxSxKxD[:, :w], c.v_BxSxKxD[:, :w],
                            jnp.maximum(c.length - self.b, 0))
                    for c, w in zip(s.caches[self.n_prefix:], k[self.n_prefix:], strict=True)]
        targets = jnp.concatenate([s.pending_tok_b[1:], next_tok.reshape(1)])
        W = self._learn(s.inner, at_start, s.pending_h_bxD, targets)
        return s._replace(inner=W)

    # ----- public -----
    def prefill(self, tokens_BxN: jax.Array, per_token: bool = True
                ) -> tuple[DecodeState, jax.Array]:
        """Consume a prompt; returns the decode state and the NLL of tokens 1..N-1.

        The NLL is per token [B, N-1], or with `per_token=False` summed [B], so that
        nothing at all grows with the prompt's length.
        """
        B, N = tokens_BxN.shape
        b = self.b
        n_full = (N - 1) // b
        rest = N - n_full * b
        cfg = self.cfg

        def one_sequence(tokens_N):
            m = self._model(self.inner0)
            caches = m.empty_caches(1)

            def chunk(carry, _):
                W, caches, total, x = carry
                # slice the prompt in place: copies of it would grow with its length
                tok_b = jax.lax.dynamic_slice_in_dim(tokens_N, x * b, b)
                tgt_b = jax.lax.dynamic_slice_in_dim(tokens_N, x * b + 1, b)
                mm = self._model(W)
                h = mm.embed_tokens(tok_b[None])
                new = []
                for blk, c in zip(mm.prefix_blocks, caches[: self.n_prefix], strict=True):
                    h, c = blk.step(h, c)
                    new.append(c)
                if self.ttt:
                    mask = target_mask(tgt_b[None], cfg.bos_token_id)[0]
                    W, suf, nll = suffix_chunk_step(self.graphdef, self.rest, W,
                                                    caches[self.n_prefix:], h, tgt_b, mask,
                                                    self.lr, self.clip)
                else:
                    suf = []
                    for blk, c in zip(mm.suffix_blocks, caches[self.n_prefix:], strict=True):
                        h, c = blk.step(h, c)
                        suf.append(c)
                    nll = token_nll(mm.logits(h)[0], tgt_b)
                if per_token:
                    return (W, new + suf, total, x + 1), nll
                return (W, new + suf, total + nll.sum(), x + 1), None

            zero = jnp.zeros((), acc_dtype(cfg.compute_dtype))
            W, total = self.inner0, zero
            nll_chunks = jnp.zeros((0, b), zero.dtype)
            if n_full:  # a prompt of at most b tokens is all pending: nothing to learn yet
                (W, caches, total, _), nll_chunks = jax.lax.scan(
                    chunk, (W, caches, total, jnp.zeros((), jnp.int32)), None, length=n_full)
            # widen caches by b slots for decoding (empty, oldest side)
            caches = [KVCache(jnp.pad(c.k_BxSxKxD, ((0, 0), (b, 0), (0, 0), (0, 0))),
                              jnp.pad(c.v_BxSxKxD, ((0, 0), (b, 0), (0, 0), (0, 0))),
                              c.length) for c in caches]
            s = SequenceState(W, caches,
                              jnp.zeros((b, cfg.hidden_size), acc_dtype(cfg.param_dtype)),
                              jnp.zeros((b,), tokens_N.dtype),
                              jnp.zeros((cfg.vocab_size,), acc_dtype(cfg.compute_dtype)))

            def token(s, x):
                idx, tok, nxt = x
                s = self._token(s, tok, idx)
                return s, token_nll(s.last_logits_V[None], nxt[None])[0]

            tail = tokens_N[n_full * b:]
            nxt = jnp.concatenate([tail[1:], tail[-1:]])
            s, nll_tail = jax.lax.scan(token, s, (jnp.arange(rest), tail, nxt))
            if per_token:
                return s, jnp.concatenate([nll_chunks.reshape(-1), nll_tail[:-1]])
            return s, total + nll_tail[:-1].sum()

        seq, nll = jax.vmap(one_sequence)(tokens_BxN)
        state = DecodeState(seq, jnp.asarray(rest, jnp.int32), jnp.asarray(N, jnp.int32))
        return state, nll

    def decode_step(self, state: DecodeState, tok_B: jax.Array) -> DecodeState:
        """Feed one token per sequence; `state.seq.last_logits_V` then predicts the next."""
        seq = jax.lax.cond(state.n_pending == self.b,
                           lambda s: jax.vmap(self._commit)(s, tok_B),
                           lambda s: s, state.seq)
        idx = jnp.where(state.n_pending == self.b, 0, state.n_pending)
        seq = jax.vmap(self._token, in_axes=(0, 0, None))(seq, tok_B, idx)
        return DecodeState(seq, idx + 1, state.position + 1)
