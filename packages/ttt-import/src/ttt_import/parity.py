"""Logits parity against the reference implementation: `transformers` on PyTorch, CPU,
float32, eager attention, loaded from the same local snapshot.

torch and transformers are optional (`ttt-import[parity]`) and imported only here, when a
parity check runs. Loading is local-only, safetensors-only, and never runs remote code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from ttt_import.errors import ParityError
from ttt_model.model import Transformer

DEFAULT_TOLERANCE = 1e-3
PARITY_BATCH, PARITY_LENGTH, PARITY_SEED = 2, 32, 0


def parity_tokens(vocab_size: int, batch: int = PARITY_BATCH, length: int = PARITY_LENGTH,
                  seed: int = PARITY_SEED) -> np.ndarray:
    """The fixed token batch parity is measured on (uniform over the vocabulary)."""
    return np.random.default_rng(seed).integers(0, vocab_size, (batch, length), np.int64)


def _reference_libraries() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ParityError(
            f"the parity check needs torch and transformers ({e}); install the extra "
            "`ttt-import[parity]`, or pass --no-parity to import without the check") from None
    return torch, transformers


def reference_logits(hf_dir: str | Path, tokens_BxT: np.ndarray) -> tuple[np.ndarray, str]:
    """Logits [B, T, V] of the snapshot run by transformers (float32, eager, CPU), and a
    one-line description of the reference."""
    torch, transformers = _reference_libraries()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.disable_progress_bar()
    hf_dir = Path(hf_dir)
    dtype_kw = ("dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(hf_dir), local_files_only=True, trust_remote_code=False, use_safetensors=True,
            attn_implementation="eager", **{dtype_kw: torch.float32})
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds
        raise ParityError(f"transformers could not load {hf_dir}: {e}") from None
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(tokens_BxT, dtype=torch.long)).logits
    logits = out.float().numpy().copy()
    desc = (f"transformers {transformers.__version__} {type(model).__name__} "
            f"(torch {torch.__version__}, CPU, float32, eager attention)")
    del model, out
    return logits, desc


def our_logits(model: Transformer, tokens_BxT: np.ndarray) -> np.ndarray:
    return np.asarray(model(jnp.asarray(tokens_BxT, jnp.int32)), np.float64)


def next_token_nll(logits_BxTxV: np.ndarray, tokens_BxT: np.ndarray) -> np.ndarray:
    """NLL [B, T-1] of tokens[:, 1:] under logits[:, :-1], in float64."""
    x = logits_BxTxV[:, :-1].astype(np.float64)
    m = x.max(-1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(-1)) + m[..., 0]
    tgt = np.take_along_axis(x, tokens_BxT[:, 1:, None], axis=-1)[..., 0]
    return lse - tgt


def compare(ours: np.ndarray, ref: np.ndarray, tokens_BxT: np.ndarray) -> dict[str, float]:
    """max |Δlogit| and max |ΔNLL| between two logit arrays on the same tokens."""
    if ours.shape != ref.shape:
        raise ParityError(f"logits shapes differ: ours {ours.shape}, reference {ref.shape}")
    d_nll = next_token_nll(ours, tokens_BxT) - next_token_nll(ref, tokens_BxT)
    return {"max_abs_logit_diff": float(np.max(np.abs(ours - ref.astype(np.float64)))),
            "max_abs_nll_diff": float(np.max(np.abs(d_nll))),
            "max_abs_logit": float(np.max(np.abs(ref)))}
