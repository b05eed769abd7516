"""Helpers shared by the app's tests: a tiny token store, the overrides of a tiny stage,
and ways to run `ttt train` in this process or in a subprocess (a unique module name so
test folders of several packages can be collected together)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# One persistent XLA cache for every test and subprocess: stages of the same shape
# compile once per machine, not once per test.
JAX_CACHE = os.environ.get("TTT_TEST_JAX_CACHE",
                           str(Path(tempfile.gettempdir()) / "ttt_jax_cache"))


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session's tiny token store (import this fixture into a conftest)."""
    path, _ = make_store(tmp_path_factory.mktemp("data"))
    return path


@pytest.fixture(scope="session")
def tokenizer(store: Path) -> Path:
    """The tokenizer folder the session's store was written with."""
    return store.parent / "tokenizer"


def make_store(root: Path) -> tuple[Path, Path]:
    """(token store, tokenizer dir): a synthetic long-range corpus, a 512-token BPE."""
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.synth import write_synth_corpus
    from ttt_data.tokenization import tokenize_corpus

    corpus = write_synth_corpus(root / "corpus.jsonl", 60, words=300)
    tok = train_bpe_tokenizer([corpus], root / "tokenizer", vocab_size=512)
    store = root / "store"
    tokenize_corpus(tok, [corpus], store, val_fraction=0.2, progress=False)
    return store, tok


def tiny_overrides(work: Path, store: Path, *, name: str = "run", steps: int = 6,
                   **extra: object) -> list[str]:
    """A tiny FA stage (Llama-family stand-in at vocab 512, context 64, batch 4)."""
    base = {
        "model": "pilot/smollm2_360m", "model.vocab_size": 512, "model.seq_len": 64,
        "training.exp_name": name, "training.exp_folder": "t",
        "training.exp_dir": work / "experiments",
        "training.checkpoint_path": work / "checkpoints", "training.dataset_path": store,
        "training.seq_length": 64, "training.global_batch_size": 4,
        "training.total_steps": steps, "training.optimizer_outer.lr": 3e-3,
        "training.optimizer_outer.lr_warmup_steps": 1, "training.save_checkpoint_freq": 3,
        "training.log_freq": 1, "training.eval_batch_size": 2, "training.progress": False,
        "backend.compilation_cache_dir": JAX_CACHE,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


E2E = {"training.train_mode": "meta", "model.seq_modeling_block": "SWA", "model.prime": True,
       "model.suffix_len": 1, "model.mini_batch_size": 16, "model.sliding_window_size": 32,
       "training.ilr_init": 0.1, "training.ilr_warmup_steps": 4}


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def run_dir(work: Path, name: str) -> Path:
    return work / "experiments" / "t" / name


def ttt_subprocess(args: list[str], env: dict[str, str] | None = None,
                   **kw: object) -> subprocess.Popen:
    """`ttt ...` in a fresh Python process (own JAX runtime)."""
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "ttt_cli.main", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kw)
