"""Tiny random Hugging Face snapshots of each profiled family, built offline with
transformers (the reference), and reference logits computed independently of ttt-import."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ttt_import.registry import REGISTRY  # noqa: E402
from ttt_import.standins import build_hf_snapshot, tiny_hf_config  # noqa: E402

KEYS = sorted(REGISTRY)


def hf_logits(hf_dir: Path, tokens: np.ndarray) -> np.ndarray:
    """Logits of a snapshot run by transformers itself (float32, eager, CPU)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager", local_files_only=True)
    with torch.no_grad():
        return model(torch.as_tensor(tokens, dtype=torch.long)).logits.numpy()


def our_logits_from_checkpoint(ckpt: Path, tokens: np.ndarray) -> np.ndarray:
    """Logits of a ttt-model checkpoint restored the way training loads it."""
    from flax import nnx

    from ttt_model.checkpoint import read_model_config, restore_params
    from ttt_model.model import abstract_model

    cfg = read_model_config(ckpt)
    graphdef, params, rest = nnx.split(abstract_model(cfg), nnx.Param, ...)
    model = nnx.merge(graphdef, restore_params(ckpt, params), rest)
    return np.asarray(model(tokens))


def tokens(batch: int, length: int, seed: int, vocab: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (batch, length))


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    """One tiny fp32 snapshot per profile key, same family structure as the profile."""
    root = tmp_path_factory.mktemp("hf")
    return {key: build_hf_snapshot(root / key, tiny_hf_config(key), seed=i)
            for i, key in enumerate(KEYS)}


def assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was written"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert not leftovers, f"partial output left behind: {leftovers}"
