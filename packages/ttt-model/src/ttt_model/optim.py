"""The outer optimiser: AdamW with global-norm clipping, linear warmup then cosine decay."""

from __future__ import annotations

import jax
import optax

from ttt_model.config import TrainConfig


def lr_schedule(tc: TrainConfig) -> optax.Schedule:
    """init_lr -> lr over warmup_steps, then cosine to end_lr at decay_steps (default
    total_steps), constant end_lr after that."""
    decay = tc.decay_steps if tc.decay_steps is not None else tc.total_steps
    return optax.warmup_cosine_decay_schedule(
        init_value=tc.init_lr, peak_value=tc.lr, warmup_steps=tc.warmup_steps,
        decay_steps=max(decay, tc.warmup_steps + 1), end_value=tc.end_lr)


def decay_mask(params):
    """Weight decay on matrices (projections, embeddings) only, not on norms or biases."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(tc.grad_clip),
        optax.adamw(lr_schedule(tc), b1=tc.b1, b2=tc.b2, eps=tc.eps,
                    weight_decay=tc.weight_decay, mask=decay_mask),
    )
