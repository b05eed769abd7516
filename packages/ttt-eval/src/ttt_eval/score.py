"""Scoring a checkpoint on tokens or a text: per-token next-token NLL and its mean.

A checkpoint is scored the way its run trained it: the inner lr (at the checkpoint's step of
the run's inner-lr warmup), inner clip and inner-parameter spec come from the train config
saved with the checkpoint, and targets equal to BOS are not counted (`token_nll` keeps every
position; `mean_nll` is the mean over counted targets). A text is refused when its tokenizer
is not the one recorded for the run, and a non-finite NLL is an error, never a score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ttt_data.atomic import atomic_file
from ttt_data.errors import TokenizerError
from ttt_data.tokenizer import load_tokenizer, tokenizer_file, tokenizer_sha256
from ttt_eval.errors import EvalError, ScoreError, one_line
from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop, require_ttt, token_nll
from ttt_model.checkpoint import CheckpointError, load_model, read_meta
from ttt_model.config import DEFAULT_SPEC_INNER
from ttt_model.model import Transformer
from ttt_model.ttt import inner_lr_at


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


def tokenize_text(text_path: str | Path, tokenizer_dir: str | Path) -> np.ndarray:
    """The text of `text_path` encoded with the model's own tokenizer (its tokenizer.json),
    as [1, N]."""
    try:
        tokenizer = load_tokenizer(tokenizer_dir)
    except TokenizerError as e:
        raise ScoreError(str(e)) from None
    try:
        text = Path(text_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScoreError(f"{text_path}: cannot read UTF-8 text ({e})") from None
    ids = tokenizer.encode(text).ids
    return as_token_batch(np.asarray(ids, np.int64),
                          f"{text_path} tokenized by {tokenizer_file(tokenizer_dir)}")


def _check_scorable(model: Transformer, tokens: np.ndarray, ttt: bool) -> None:
    cfg = model.cfg
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= cfg.vocab_size:
        raise ScoreError(f"token ids span [{lo}, {hi}] but the model's vocabulary is "
                         f"[0, {cfg.vocab_size})")
    if ttt:
        require_ttt(cfg, "scoring", ScoreError)


def score_tokens(model: Transformer, tokens: np.ndarray, *, ttt: bool | None = None,
                 inner: InnerLoop = PAPER_INNER_LOOP) -> dict[str, Any]:
    """{"token_nll": [[...]] (B rows of N-1), "mean_nll": x, ...}; `ttt=None` uses TTT when
    the model has prime MLPs."""
    cfg = model.cfg
    tokens = as_token_batch(tokens)
    ttt = cfg.prime if ttt is None else ttt
    _check_scorable(model, tokens, ttt)
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda st, t: token_nll(nnx.merge(graphdef, st), t, ttt=ttt, inner=inner))
    nll = np.asarray(fn(state, jnp.asarray(tokens)))
    keep = (np.ones(nll.shape, bool) if cfg.bos_token_id is None
            else tokens[:, 1:] != cfg.bos_token_id)
    if not keep.any():
        raise ScoreError("every target is BOS: nothing to score")
    bad = ~np.isfinite(nll) & keep
    if bad.any():
        row, pos = (int(i) for i in np.argwhere(bad)[0])
        raise ScoreError(f"model {cfg.name!r} gives a non-finite NLL ({nll[row, pos]}) at "
                         f"sequence {row}, target {pos + 1} ({int(bad.sum())} such targets)")
    return {"token_nll": nll.astype(np.float64).tolist(),
            "mean_nll": float(np.mean(nll[keep], dtype=np.float64)),
            "counted_targets": int(keep.sum()), "ttt": bool(ttt),
            "inner_lr": float(inner.lr) if ttt else 0.0,
            "inner_steps": (tokens.shape[1] - 1) // cfg.mini_batch_size if ttt else 0,
            "num_sequences": int(tokens.shape[0]),
            "tokens_per_sequence": int(tokens.shape[1]), "model": cfg.name}


def run_settings(checkpoint_dir: str | Path) -> dict[str, Any]:
    """What the run recorded with its checkpoint: its inner loop and tokenizer identity.
    Checkpoints written by an import carry no train config: defaults."""
    meta = read_meta(checkpoint_dir)
    tc = meta.get("train_config") or {}
    step = int(meta.get("step", 0))
    return {"step": step, "inner": inner_loop_at(tc, step), "tokenizer": meta.get("tokenizer"),
            "from_train_config": bool(tc)}


def inner_loop_at(train_config: dict[str, Any], step: int) -> InnerLoop:
    """A run's inner loop at `step` of its inner-lr warmup, from its train config (as
    `TrainConfig.to_dict` writes it; defaults where it says nothing)."""
    tc = train_config
    lr = float(inner_lr_at(step, float(tc.get("inner_lr", 1.0)), float(tc.get("ilr_init", 1.0)),
                           int(tc.get("ilr_warmup_steps", 0))))
    return InnerLoop(lr=lr, clip=float(tc.get("inner_clip", 1.0)),
                     spec=tuple(tc.get("spec_inner", DEFAULT_SPEC_INNER)))


def load_run_model(checkpoint_dir: str | Path, error: type[EvalError] = EvalError
                   ) -> tuple[Transformer, dict[str, Any]]:
    """A checkpoint's model and its run's settings (`run_settings`); an unreadable or
    damaged checkpoint is one `error` line."""
    try:
        settings = run_settings(checkpoint_dir)
        model = load_model(checkpoint_dir)
    except (CheckpointError, OSError, KeyError, ValueError) as e:
        raise error(f"{checkpoint_dir}: not a readable ttt-model checkpoint ({one_line(e)})"
                    ) from None
    return model, settings


def check_tokenizer(checkpoint_dir: str | Path, recorded: dict[str, Any] | None,
                    tokenizer_dir: str | Path) -> None:
    """Refuse a tokenizer whose tokenizer.json differs from the one the run trained with."""
    if not recorded or not recorded.get("sha256"):
        return
    try:
        given = tokenizer_sha256(tokenizer_dir)
    except TokenizerError as e:
        raise ScoreError(str(e)) from None
    if given != recorded["sha256"]:
        raise ScoreError(
            f"{tokenizer_file(tokenizer_dir)} has sha256 {given[:12]}..., but "
            f"{checkpoint_dir} was trained on tokens of tokenizer {recorded.get('name')!r} "
            f"(sha256 {recorded['sha256'][:12]}...); pass the run's tokenizer, or "
            "--allow-tokenizer-mismatch to score anyway")


def score_checkpoint(checkpoint_dir: str | Path, tokens: np.ndarray, *,
                     ttt: bool | None = None, tokenizer_dir: str | Path | None = None,
                     allow_tokenizer_mismatch: bool = False) -> dict[str, Any]:
    """`score_tokens` on the model of a checkpoint, with the run's own inner loop;
    `tokenizer_dir` (the one that made `tokens`) is checked against the run's tokenizer."""
    model, settings = load_run_model(checkpoint_dir, ScoreError)
    if tokenizer_dir is not None and not allow_tokenizer_mismatch:
        check_tokenizer(checkpoint_dir, settings["tokenizer"], tokenizer_dir)
    out = score_tokens(model, tokens, ttt=ttt, inner=settings["inner"])
    out["checkpoint"] = str(Path(checkpoint_dir).resolve())
    out["checkpoint_step"] = settings["step"]
    out["settings_from"] = "train_config" if settings["from_train_config"] else "defaults"
    return out


def score_file(checkpoint_dir: str | Path, *, tokens_file: str | Path | None = None,
               text_file: str | Path | None = None, tokenizer_dir: str | Path | None = None,
               ttt: bool | None = None, allow_tokenizer_mismatch: bool = False
               ) -> dict[str, Any]:
    """`score_checkpoint` on a .npy of token ids, or on a UTF-8 text encoded with
    `tokenizer_dir` (then checked against the run's tokenizer); exactly one is given."""
    if (tokens_file is None) == (text_file is None):
        raise ScoreError("score needs exactly one of a tokens file and a text file")
    if text_file is not None:
        if tokenizer_dir is None:
            raise ScoreError(f"{text_file}: a text needs the tokenizer to encode it")
        tokens = tokenize_text(text_file, tokenizer_dir)
    else:
        tokens, tokenizer_dir = load_tokens(tokens_file), None
    return score_checkpoint(checkpoint_dir, tokens, ttt=ttt, tokenizer_dir=tokenizer_dir,
                            allow_tokenizer_mismatch=allow_tokenizer_mismatch)


def write_score(result: dict[str, Any], out: str | Path) -> Path:
    """The score as one JSON line, replacing `out` whole: a reader never sees half a file."""
    with atomic_file(out, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(result) + "\n")
    return Path(out)


def describe_score(result: dict[str, Any], out: str | Path) -> str:
    """One line: how much was scored, how (the inner lr and where it came from), the mean."""
    how = (f"ttt, inner lr {result['inner_lr']:.4g} from the run's {result['settings_from']}"
           if result["ttt"] else "no ttt")
    return (f"scored {result['num_sequences']} x {result['tokens_per_sequence']} tokens "
            f"({how}; {result['counted_targets']} counted targets): mean NLL "
            f"{result['mean_nll']:.4f} -> {out}")
