"""The from-scratch SmolLM2-135M recipe (`+experiment=smollm2_135m/scratch`) at reduced
scale on CPU: the true architecture at a short context, 50 steps with text samples and
checkpoints, then the continuation to 55, whose log says where it resumed and whose first
new step is 51. Slow (the 135M model trains at about a step a second here): `nox -s slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ttt_app_testlib import JAX_CACHE

from ttt_cli.main import main

pytestmark = pytest.mark.slow


def _train(work: Path, store: Path, tokenizer: Path, *extra: str) -> None:
    args = ["train", "+experiment=smollm2_135m/scratch", f"training.dataset_path={store}",
            f"training.tokenizer_name={tokenizer}", f"training.exp_dir={work / 'exp'}",
            f"training.checkpoint_path={work / 'ckpt'}", "training.seq_length=32",
            "model.seq_len=32", "model.compute_dtype=fp32", "training.total_steps=50",
            "training.log_freq=10", "training.save_checkpoint_freq=25",
            "training.sample_every=25", "training.sample_tokens=8", "training.progress=false",
            f"backend.compilation_cache_dir={JAX_CACHE}", *extra]
    assert main(args) == 0


def test_scratch_then_continue_from_the_checkpoint_boundary(tmp_path: Path, store: Path,
                                                             tokenizer: Path):
    _train(tmp_path, store, tokenizer)
    run = tmp_path / "exp" / "smollm2_135m" / "scratch"
    first = (run / "train.log").read_text()
    assert "sample at step 25: 'Once upon a time' -> " in first
    assert "sample at step 50: " in first
    _train(tmp_path, store, tokenizer, "training.total_steps=55", "training.load_part=all")
    log = (run / "train.log").read_text()[len(first):]
    assert "RESUME: starting from global_step=50" in log
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text()
             .splitlines()]
    assert steps == list(range(1, 56))  # 51 is the first new step; 50 is not recomputed
    config = (run / "config_resolved.yaml").read_text()
    assert "num_hidden_layers: 30" in config and "hidden_size: 576" in config
