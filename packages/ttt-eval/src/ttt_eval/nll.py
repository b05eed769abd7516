"""Per-token next-token NLL of a model, the way the model is used at test time: the one
home of scoring, used by `ttt eval score`, the held-out loss at the end of training, and
every evaluation built on them.

TTT-E2E models (prime MLPs) are scored through prefill: the inner loop over the sequence
(`TTTRunner`), each chunk predicted with the inner weights learned from the chunks before it,
in memory independent of the sequence's length. FA and SWA models, or TTT models with
`ttt=False`, run once over the sequence (`pretrain_loss`'s forward pass). Targets equal to
BOS, or outside a loss mask, are not counted, as training counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from ttt_eval.errors import EvalError
from ttt_model.config import DEFAULT_SPEC_INNER, ModelConfig
from ttt_model.inference import TTTRunner
from ttt_model.losses import pretrain_loss, target_mask
from ttt_model.model import Transformer


@dataclass(frozen=True)
class InnerLoop:
    """How a TTT model learns at test time: its run's inner lr (at the checkpoint's step of
    the inner-lr warmup), clip and inner-parameter spec."""

    lr: float = 1.0
    clip: float = 1.0
    spec: tuple[str, ...] = DEFAULT_SPEC_INNER


PAPER_INNER_LOOP = InnerLoop()  # the paper's: lr 1, clip 1, the prime MLPs


def require_ttt(cfg: ModelConfig, doing: str, error: type[EvalError] = EvalError) -> None:
    """Refuse TTT on a model it cannot run on: one without prime MLPs (no inner weights),
    or one with a full-attention layer (the inner loop carries window caches)."""
    if not cfg.prime:
        raise error(f"model {cfg.name!r} has no prime MLPs (inner weights): {doing} with TTT "
                    "needs a ttt-recipe model; use ttt=False (--no-ttt)")
    full = [i for i in range(cfg.num_layers) if cfg.window(i) is None]
    if full:
        raise error(f"model {cfg.name!r}: layers {full} use full attention; {doing} with TTT "
                    "needs sliding attention in every layer")


def token_nll(model: Transformer, tokens_BxN: jax.Array, *, ttt: bool,
              inner: InnerLoop = PAPER_INNER_LOOP) -> jax.Array:
    """NLL [B, N-1] of tokens 1..N-1 (traceable: call it inside jit)."""
    if ttt and tokens_BxN.shape[1] > model.cfg.mini_batch_size:
        runner = TTTRunner(model, ttt=True, inner_lr=inner.lr, inner_clip=inner.clip,
                           spec=inner.spec)
        return runner.prefill(tokens_BxN)[1]
    # No chunk of a prompt of <= b tokens completes, so no inner step happens: prefill
    # equals the one-shot sliding pass (and TTTRunner cannot trace such prompts).
    return pretrain_loss(model, tokens_BxN)[1]["token_nll"]


def counted(model: Transformer, tokens_BxN: jax.Array,
            loss_mask_BxT: jax.Array | None = None) -> jax.Array:
    """Float mask [B, N-1] of the targets training counts."""
    return target_mask(tokens_BxN[:, 1:], model.cfg.bos_token_id, loss_mask_BxT)


def nll_sums_fn(graphdef: nnx.GraphDef, *, ttt: bool, inner: InnerLoop = PAPER_INNER_LOOP
                ) -> Callable[..., tuple[jax.Array, ...]]:
    """f(params, tokens_BxN, mask_BxT) -> (sum NLL, count, per-position sum, per-position
    count) over counted targets: what batched evaluations accumulate without holding NLLs."""
    def sums(params, tokens_BxN, mask_BxT):
        model = nnx.merge(graphdef, params)
        nll = token_nll(model, tokens_BxN, ttt=ttt, inner=inner)
        m = counted(model, tokens_BxN, mask_BxT)
        return jnp.sum(nll * m), jnp.sum(m), jnp.sum(nll * m, 0), jnp.sum(m, 0)
    return sums
