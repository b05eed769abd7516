"""Prefill and decoding with test-time training, in memory independent of context length.

The state of a sequence is its inner weights, a ring cache per layer, and the pending (not
yet learned-from) part of the current chunk. Prefill runs every block chunk by chunk and
takes the inner SGD step after each chunk whose last target is known; decoding runs one
token through the rings and, when b tokens have accumulated and the next token arrives
(the chunk's last target), takes the inner step on that chunk, exactly as the meta loss
does during training.

Suffix rings hold window + b slots so that, when a chunk is committed, the suffix caches
as of the chunk's start are still there for the inner step's forward pass. Each sequence
has its own position and chunk phase (prompts of different lengths in one batch); the
inner step sits behind one `lax.cond` on "any sequence completes a chunk", outside the
vmap, so it runs only on those tokens and never as a select on every token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_model.attention import KVCache, RingCache, acc_dtype, ring_positions
from ttt_model.config import DEFAULT_SPEC_INNER
from ttt_model.decoding import Decoder, KVCacheDecoder, prompt_lengths, run_blocks
from ttt_model.layers import step_blocks
from ttt_model.losses import target_mask, token_nll
from ttt_model.model import Transformer
from ttt_model.params import spec_filter
from ttt_model.ttt import split_inner, suffix_chunk_step


class SequenceState(NamedTuple):
    """Per-sequence decoding state (vmap adds a leading batch axis to all but the rings'
    shared clock `length`)."""

    inner: Any  # nnx.State of the inner weights
    caches: list[RingCache]  # every layer: window slots (prefix), window + b (suffix)
    pending_h_bxD: jax.Array  # hidden states entering the suffix, pending chunk, slot tick % b
    pending_tok_b: jax.Array  # input tokens of the pending chunk, slot tick % b
    last_logits_V: jax.Array  # prediction of the next token


class DecodeState(NamedTuple):
    seq: SequenceState  # batched over B
    n_pending: jax.Array  # [B] int32: tokens of the current chunk consumed
    position: jax.Array  # [B] int32: tokens consumed so far


def _select_rows(mask_B: jax.Array, new: Any, old: Any) -> Any:
    """Per sequence, the leaves of `new` where mask_B holds, else those of `old`."""
    return jax.tree.map(
        lambda n, o: jnp.where(mask_B.reshape(mask_B.shape + (1,) * (n.ndim - 1)), n, o),
        new, old)


def _batched_axes(n_layers: int) -> SequenceState:
    """vmap axes of a SequenceState: the rings' write clock is shared by the batch."""
    ring = RingCache(0, 0, None, 0)
    return SequenceState(0, [ring] * n_layers, 0, 0, 0)


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

    def _ring_size(self, layer: int) -> int:
        return self.cfg.window(layer) + (self.b if layer >= self.n_prefix else 0)

    def _learn(self, W, suffix_caches, h_bxD, targets_b):
        if not self.ttt:
            return W
        mask = target_mask(targets_b[None], self.cfg.bos_token_id)[0]
        W, _, _ = suffix_chunk_step(self.graphdef, self.rest, W, suffix_caches, h_bxD[None],
                                    targets_b, mask, self.lr, self.clip)
        return W

    def _chunk(self, W, caches: list[KVCache], tok_b: jax.Array, tgt_b: jax.Array):
        """One full prompt chunk: its NLL under W, then (with TTT) the inner step."""
        m = self._model(W)
        h = m.embed_tokens(tok_b[None])
        h, new = step_blocks(m.prefix_blocks, h, caches[: self.n_prefix])
        if self.ttt:
            mask = target_mask(tgt_b[None], self.cfg.bos_token_id)[0]
            W, suf, nll_b = suffix_chunk_step(self.graphdef, self.rest, W,
                                              caches[self.n_prefix:], h, tgt_b, mask,
                                              self.lr, self.clip)
        else:
            h, suf = step_blocks(m.suffix_blocks, h, caches[self.n_prefix:])
            nll_b = token_nll(m.logits(h)[0], tgt_b)
        return W, new + suf, nll_b

    def _pending(self, W, caches: list[KVCache], tokens_N: jax.Array, length: jax.Array,
                 c0: jax.Array) -> tuple[SequenceState, jax.Array]:
        """The prompt's last, incomplete chunk (tokens c0..length-1, 1 to b of them) as one
        chunk under W: the decode state (rings, pending chunk) and the chunk's NLL.

        Token j of the prompt is tick start + j with start = N - length, so that every
        prompt of the bucket ends on tick N - 1 and the batch shares one write clock."""
        b, N = self.b, tokens_N.shape[0]
        start = N - length
        idx_b = c0 + jnp.arange(b)
        tok_b = jnp.take(tokens_N, jnp.minimum(idx_b, N - 1))
        tgt_b = jnp.take(tokens_N, jnp.minimum(idx_b + 1, N - 1))
        # b more slots on the oldest side, so that after the chunk (padding included)
        # every cache still holds the window before c0
        wide = [KVCache(jnp.pad(c.k_BxSxKxD, ((0, 0), (b, 0), (0, 0), (0, 0))),
                        jnp.pad(c.v_BxSxKxD, ((0, 0), (b, 0), (0, 0), (0, 0))), c.length)
                for c in caches]
        m = self._model(W)
        h_suffix, h, wide = run_blocks(m, tok_b[None], wide)
        logits_bxV = m.logits(h)[0]
        rest = length - c0
        nll_b = jnp.where(jnp.arange(b) < rest - 1, token_nll(logits_bxV, tgt_b), 0.0)
        rings = []
        for i, c in enumerate(wide):  # slot j of c holds token c0 - window + j
            tok_S = ring_positions(N, self._ring_size(i)) - start
            j_S = jnp.clip(tok_S - (c0 - self.cfg.window(i)), 0, c.size - 1)
            rings.append(RingCache.build(c.k_BxSxKxD[:, j_S], c.v_BxSxKxD[:, j_S], N,
                                         start[None], self.cfg.rope_theta))
        shift = jnp.mod(start + c0, b)  # pending slot = tick % b
        s = SequenceState(W, rings, jnp.roll(h_suffix[0], shift, axis=0),
                          jnp.roll(tok_b, shift), logits_bxV[rest - 1])
        return s, nll_b

    def _token(self, s: SequenceState, tok: jax.Array, tick: jax.Array) -> SequenceState:
        """Run one token through every block (current inner weights); record it as pending."""
        m = self._model(s.inner)
        # the suffix rings are written after a commit has read them
        h_suffix, h, caches = run_blocks(m, tok.reshape(1, 1), s.caches, suffix_after=s.inner)
        slot = jnp.mod(tick, self.b)
        pending_h = jax.lax.dynamic_update_slice_in_dim(s.pending_h_bxD, h_suffix[0], slot, 0)
        pending_t = jax.lax.dynamic_update_slice_in_dim(s.pending_tok_b, tok.reshape(1), slot,
                                                        0)
        return SequenceState(s.inner, caches, pending_h, pending_t, m.logits(h)[0, 0])

    def _commit(self, s: SequenceState, next_tok: jax.Array, tick: jax.Array):
        """Inner weights after the step on the full pending chunk (ticks tick-b..tick-1),
        its last target known."""
        start = tick - self.b
        at_start = [ring.window_before(start, self.cfg.window(self.n_prefix + i),
                                       self.cfg.rope_theta)
                    for i, ring in enumerate(s.caches[self.n_prefix:])]
        shift = -jnp.mod(tick, self.b)  # slot tick % b back to chunk order
        h_bxD = jnp.roll(s.pending_h_bxD, shift, axis=0)
        targets = jnp.concatenate([jnp.roll(s.pending_tok_b, shift)[1:], next_tok.reshape(1)])
        return self._learn(s.inner, at_start, h_bxD, targets)

    # ----- public -----
    def prefill(self, tokens_BxN: jax.Array, lengths_B: jax.Array | None = None,
                per_token: bool = True) -> tuple[DecodeState, jax.Array]:
        """Consume prompts (row i: its first lengths_B[i] tokens, all N by default);
        returns the decode state and the NLL of tokens 1..N-1.

        The NLL is per token [B, N-1] (0 at or past a row's length), or with
        `per_token=False` summed [B], so that nothing at all grows with the prompt's length.
        """
        B, N = tokens_BxN.shape
        b = self.b
        n_chunks = (N - 1) // b  # the most complete chunks a prompt of the bucket has
        lengths_B = prompt_lengths(tokens_BxN, lengths_B)
        acc = acc_dtype(self.cfg.compute_dtype)

        def one_sequence(tokens_N, length):
            n_full = (length - 1) // b
            W, caches = self.inner0, self._model(self.inner0).empty_caches(1)
            total = jnp.zeros((), acc)
            nll_chunks = jnp.zeros((0, b), acc)

            def chunk(carry, _):
                W, caches, total, x = carry
                # slice the prompt in place: copies of it would grow with its length
                tok_b = jax.lax.dynamic_slice_in_dim(tokens_N, x * b, b)
                tgt_b = jax.lax.dynamic_slice_in_dim(tokens_N, x * b + 1, b)
                new = self._chunk(W, caches, tok_b, tgt_b)
                keep = x < n_full  # a shorter prompt of the bucket has stopped here
                W, caches, nll_b = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new,
                                                (W, caches, jnp.zeros_like(new[2])))
                return (W, caches, total + nll_b.sum(), x + 1), nll_b if per_token else None

            if n_chunks:  # a bucket of at most b tokens is all pending: nothing to learn yet
                (W, caches, total, _), nll_chunks = jax.lax.scan(
                    chunk, (W, caches, total, jnp.zeros((), jnp.int32)), None, length=n_chunks)
            c0 = n_full * b
            s, nll_tail = self._pending(W, caches, tokens_N, length, c0)
            if not per_token:
                return s, total + nll_tail.sum(), length - c0
            nll = jnp.concatenate([nll_chunks.reshape(-1), jnp.zeros((b,), acc)])
            nll = jax.lax.dynamic_update_slice_in_dim(nll, nll_tail, c0, 0)
            return s, nll[: N - 1], length - c0

        seq, nll, n_pending = jax.vmap(
            one_sequence, out_axes=(_batched_axes(self.cfg.num_layers), 0, 0))(
                tokens_BxN, lengths_B)
        return DecodeState(seq, n_pending, lengths_B), nll

    def decode_step(self, state: DecodeState, tok_B: jax.Array) -> DecodeState:
        """Feed one token per sequence; `next_logits(state)` then predicts the next."""
        axes = _batched_axes(self.cfg.num_layers)
        tick = state.seq.caches[0].length  # shared by the batch
        need_B = state.n_pending == self.b
        seq = state.seq
        if self.ttt:
            def commit():
                W_B = jax.vmap(self._commit, in_axes=(axes, 0, None))(seq, tok_B, tick)
                return _select_rows(need_B, W_B, seq.inner)

            seq = seq._replace(inner=jax.lax.cond(jnp.any(need_B), commit, lambda: seq.inner))
        seq = jax.vmap(self._token, in_axes=(axes, 0, None), out_axes=axes)(seq, tok_B, tick)
        return DecodeState(seq, jnp.where(need_B, 1, state.n_pending + 1), state.position + 1)

    def next_logits(self, state: DecodeState) -> jax.Array:
        return state.seq.last_logits_V


def decoder_for(model: Transformer, *, max_len: int | None = None, inner_lr: float = 1.0,
                inner_clip: float = 1.0, spec: Sequence[str] = DEFAULT_SPEC_INNER) -> Decoder:
    """The decoder a model calls for: TTT-E2E when it has prime MLPs, else a KV cache."""
    if model.cfg.prime:
        return TTTRunner(model, inner_lr=inner_lr, inner_clip=inner_clip, spec=spec)
    return KVCacheDecoder(model, max_len)
