"""Scoring a checkpoint on tokens or text: per-token next-token NLL and its mean.

The smallest way to ask a checkpoint how well it predicts a text (the eval package grows
around it later). With TTT, the prompt is consumed by the inner loop (`TTTRunner.prefill`):
each chunk is predicted with the inner weights learned from the chunks before it. Without
TTT, the model runs once over the whole sequence.

A checkpoint is scored the way its run trained it: the inner lr (at the checkpoint's step of
the run's inner-lr warmup), inner clip and inner-parameter spec come from the train config
saved with the checkpoint, and targets equal to BOS are not counted, as training masks them
(`token_nll` keeps every position; `mean_nll` is the mean over counted targets). A text is
refused when its tokenizer is not the one recorded for the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ttt_import.checkpoints import load_model
from ttt_import.errors import ScoreError
from ttt_model.checkpoint import CheckpointError, read_meta
from ttt_model.config import DEFAULT_SPEC_INNER
from ttt_model.inference import TTTRunner
from ttt_model.losses import pretrain_loss
from ttt_model.model import Transformer
from ttt_model.ttt import inner_lr_at

TOKENIZER_FILE = "tokenizer.json"


def as_token_batch(tokens: np.ndarray, source: str = "tokens") -> np.ndarray:
    """A 1-D or 2-D integer array as an int32 batch [B, N] (N >= 2)."""
    tokens = np.asarray(tokens)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ScoreError(f"{source}: expected an integer array, got dtype {tokens.dtype}")
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ScoreError(f"{source}: expected shape [N] or [B, N] with N >= 2, got "
                         f"{list(tokens.shape)}")
    return tokens.astype(np.int32)


def load_tokens(path: str | Path) -> np.ndarray:
    """Tokens from a .npy file (never unpickled)."""
    try:
        tokens = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ScoreError(f"{path}: not a readable .npy integer array ({e})") from None
    return as_token_batch(tokens, str(path))


def tokenizer_sha256(tokenizer_dir: str | Path) -> str:
    """sha256 of `<tokenizer_dir>/tokenizer.json`: the identity token stores record."""
    import hashlib

    tok_file = Path(tokenizer_dir) / TOKENIZER_FILE
    if not tok_file.is_file():
        raise ScoreError(f"{tokenizer_dir}: no tokenizer.json (expected {tok_file})")
    return hashlib.sha256(tok_file.read_bytes()).hexdigest()


def tokenize_text(text_path: str | Path, tokenizer_dir: str | Path) -> np.ndarray:
    """The text of `text_path` encoded with the model's own tokenizer
    (`<tokenizer_dir>/tokenizer.json`, read by the `tokenizers` library), as [1, N]."""
    from tokenizers import Tokenizer

    tok_file = Path(tokenizer_dir) / TOKENIZER_FILE
    if not tok_file.is_file():
        raise ScoreError(f"{tokenizer_dir}: no tokenizer.json (expected {tok_file})")
    try:
        text = Path(text_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScoreError(f"{text_path}: cannot read UTF-8 text ({e})") from None
    ids = Tokenizer.from_file(str(tok_file)).encode(text).ids
    return as_token_batch(np.asarray(ids, np.int64), f"{text_path} tokenized by {tok_file}")


def _one_shot_nll(model: Transformer, tokens_BxN: np.ndarray) -> np.ndarray:
    graphdef, state = nnx.split(model)

    @jax.jit
    def nll(state, tokens):
        return pretrain_loss(nnx.merge(graphdef, state), tokens)[1]["token_nll"]

    return np.asarray(nll(state, jnp.asarray(tokens_BxN)))


def score_tokens(model: Transformer, tokens: np.ndarray, *, ttt: bool | None = None,
                 inner_lr: float = 1.0, inner_clip: float = 1.0,
                 spec_inner: tuple[str, ...] = DEFAULT_SPEC_INNER) -> dict[str, Any]:
    """{"token_nll": [[...]] (B rows of N-1), "mean_nll": x, ...}; `ttt=None` uses TTT when
    the model has prime MLPs. A non-finite NLL is an error, never a score."""
    cfg = model.cfg
    tokens = as_token_batch(tokens)
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= cfg.vocab_size:
        raise ScoreError(f"token ids span [{lo}, {hi}] but the model's vocabulary is "
                         f"[0, {cfg.vocab_size})")
    if ttt is None:
        ttt = cfg.prime
    if ttt:
        if not cfg.prime:
            raise ScoreError(f"model {cfg.name!r} has no prime MLPs (inner weights): TTT "
                             "scoring needs a ttt-recipe checkpoint; use --no-ttt")
        full = [i for i in range(cfg.num_layers) if cfg.window(i) is None]
        if full:
            raise ScoreError(f"model {cfg.name!r}: layers {full} use full attention; TTT "
                             "prefill needs sliding attention in every layer")
        if tokens.shape[1] <= cfg.mini_batch_size:
            # No chunk completes, so no inner step happens: prefill would equal the one-shot
            # sliding pass. (TTTRunner.prefill cannot trace prompts of <= b tokens: its
            # chunk slice is b wide even when the scan runs zero times.)
            nll = _one_shot_nll(model, tokens)
        else:
            runner = TTTRunner(model, ttt=True, inner_lr=inner_lr, inner_clip=inner_clip,
                               spec=spec_inner)
            nll = np.asarray(runner.prefill(jnp.asarray(tokens))[1])
    else:
        nll = _one_shot_nll(model, tokens)
    counted = (np.ones(nll.shape, bool) if cfg.bos_token_id is None
               else tokens[:, 1:] != cfg.bos_token_id)
    if not counted.any():
        raise ScoreError("every target is BOS: nothing to score")
    bad = ~np.isfinite(nll) & counted
    if bad.any():
        row, pos = (int(i) for i in np.argwhere(bad)[0])
        raise ScoreError(f"model {cfg.name!r} gives a non-finite NLL ({nll[row, pos]}) at "
                         f"sequence {row}, target {pos + 1} ({int(bad.sum())} such targets)")
    return {"token_nll": nll.astype(np.float64).tolist(),
            "mean_nll": float(np.mean(nll[counted], dtype=np.float64)),
            "counted_targets": int(counted.sum()), "ttt": bool(ttt),
            "inner_lr": float(inner_lr) if ttt else 0.0,
            "inner_steps": (tokens.shape[1] - 1) // cfg.mini_batch_size if ttt else 0,
            "num_sequences": int(tokens.shape[0]),
            "tokens_per_sequence": int(tokens.shape[1]), "model": cfg.name}


def run_settings(checkpoint_dir: str | Path) -> dict[str, Any]:
    """What the run recorded with its checkpoint: inner lr at that step, clip, spec,
    tokenizer identity. Checkpoints written by an import carry no train config: defaults."""
    meta = read_meta(checkpoint_dir)
    tc = meta.get("train_config") or {}
    step = int(meta.get("step", 0))
    inner_lr = float(inner_lr_at(step, float(tc.get("inner_lr", 1.0)),
                                 float(tc.get("ilr_init", 1.0)),
                                 int(tc.get("ilr_warmup_steps", 0))))
    return {"step": step, "inner_lr": inner_lr, "inner_clip": float(tc.get("inner_clip", 1.0)),
            "spec_inner": tuple(tc.get("spec_inner", DEFAULT_SPEC_INNER)),
            "tokenizer": meta.get("tokenizer"), "from_train_config": bool(tc)}


def check_tokenizer(checkpoint_dir: str | Path, recorded: dict[str, Any] | None,
                    tokenizer_dir: str | Path) -> None:
    """Refuse a tokenizer whose tokenizer.json differs from the one the run trained with."""
    if not recorded or not recorded.get("sha256"):
        return
    given = tokenizer_sha256(tokenizer_dir)
    if given != recorded["sha256"]:
        raise ScoreError(
            f"{Path(tokenizer_dir) / TOKENIZER_FILE} has sha256 {given[:12]}..., but "
            f"{checkpoint_dir} was trained on tokens of tokenizer {recorded.get('name')!r} "
            f"(sha256 {recorded['sha256'][:12]}...); pass the run's tokenizer, or "
            "--allow-tokenizer-mismatch to score anyway")


def score_checkpoint(checkpoint_dir: str | Path, tokens: np.ndarray, *,
                     ttt: bool | None = None, tokenizer_dir: str | Path | None = None,
                     allow_tokenizer_mismatch: bool = False) -> dict[str, Any]:
    """`score_tokens` on the model stored in a ttt-model checkpoint, with the run's own
    inner-loop settings; `tokenizer_dir` (the one that made `tokens`) is checked against
    the tokenizer recorded for the run."""
    try:
        settings = run_settings(checkpoint_dir)
        model = load_model(checkpoint_dir)
    except (CheckpointError, FileNotFoundError) as e:
        raise ScoreError(f"{checkpoint_dir}: not a readable ttt-model checkpoint ({e})"
                         ) from None
    if tokenizer_dir is not None and not allow_tokenizer_mismatch:
        check_tokenizer(checkpoint_dir, settings["tokenizer"], tokenizer_dir)
    out = score_tokens(model, tokens, ttt=ttt, inner_lr=settings["inner_lr"],
                       inner_clip=settings["inner_clip"], spec_inner=settings["spec_inner"])
    out["checkpoint"] = str(Path(checkpoint_dir).resolve())
    out["checkpoint_step"] = settings["step"]
    out["settings_from"] = "train_config" if settings["from_train_config"] else "defaults"
    return out
