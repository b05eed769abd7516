"""The experiment files of the official TTT-E2E repository (test-time-training/e2e,
`configs/experiment/<size>/{pretrain,extension}/<name>.yaml`) and the training-group files
they select, as facts: for each file, the group options its defaults list overrides and
every key it sets, with the value it sets. `write_experiment` lays one out the way the
official repository does, so a test can compose it unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SPEC_INNER = ["language_model.**.suffix_blocks.feed_forward_prime.**"]
INNER_SGD = {"optimizer_type": "sgd", "lr": 1, "clip_gradient": 1.0}

# The training-group files: <size>/pretrain-8K (DCLM at 8K) and <size>/ext (Books).
OFFICIAL_TRAINING: dict[str, dict[str, Any]] = {}
for size, steps, lr, batch in (("125m", 4800, 3e-3, 64), ("350m", 13500, 1.5e-3, 64),
                               ("760m", 29000, 1.25e-3, 64), ("1b", 50000, 1e-3, 64),
                               ("3b", 52000, 8e-4, 128)):
    OFFICIAL_TRAINING[f"{size}/pretrain-8K"] = {
        "dataset_name": "dclm_filter_8k", "data_split": "train", "total_steps": steps,
        "seq_length": 8192, "global_batch_size": batch, "ilr_warmup_steps": steps // 10,
        "optimizer_outer.lr": lr, "optimizer_outer.lr_decay_steps": steps,
        "optimizer_outer.lr_warmup_steps": steps // 10}
for size, steps in (("125m", 120), ("350m", 337), ("760m", 725), ("1b", 1250), ("3b", 1300)):
    OFFICIAL_TRAINING[f"{size}/ext"] = {
        "dataset_name": "books3", "total_steps": steps, "ilr_warmup_steps": 0,
        "optimizer_outer.lr": 4e-4, "optimizer_outer.lr_decay_steps": steps,
        "optimizer_outer.lr_warmup_steps": steps // 10}
for name in OFFICIAL_TRAINING:
    OFFICIAL_TRAINING[name].update({
        "optimizer_outer.optimizer_type": "adamw", "optimizer_outer.b1": 0.9,
        "optimizer_outer.b2": 0.95, "optimizer_outer.clip_gradient": 1.0,
        "optimizer_outer.end_lr": 1e-05, "optimizer_outer.init_lr": 0.0,
        "optimizer_outer.weight_decay": 0.1})

_E2E_MODEL = {"seq_modeling_block": "SWA", "force_flash": False, "unroll_block_scan": True,
              "mini_batch_size": 1024, "sliding_window_size": 8192, "rope_theta": 500000,
              "prime": True}
_E2E_SIZE = {"125m": (3, 1664), "350m": (6, 2304), "760m": (6, 3328), "1b": (6, 4352),
             "3b": (8, 5632)}


def _e2e(size: str, ilr_init: float) -> tuple[dict[str, Any], dict[str, Any]]:
    suffix, inter = _E2E_SIZE[size]
    training = {"train_mode": "meta", "spec_inner": SPEC_INNER, "ilr_init": ilr_init,
                "optimizer_inner": INNER_SGD}
    return training, {**_E2E_MODEL, "suffix_len": suffix, "intermediate_size": inter}


def _fa(block: int, theta: int) -> dict[str, Any]:
    return {"seq_modeling_block": "self_attention", "force_flash": True,
            "mini_batch_size": block, "rope_theta": theta,
            "remat_block": "nothing_saveable", "remat_block_bwd": "nothing_saveable"}


def _experiments() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for size in ("125m", "760m", "1b", "3b"):
        training, model = _e2e(size, 0.1)
        out[f"{size}/pretrain/pretrain-{size}-e2e"] = {
            "training_option": f"{size}/pretrain-8K", "model_option": size,
            "training": training, "model": model}
    for size in ("125m", "760m"):
        out[f"{size}/pretrain/pretrain-{size}-fa"] = {
            "training_option": f"{size}/pretrain-8K", "model_option": size,
            "training": {"train_mode": "pretrain"}, "model": _fa(8192, 500000)}
    for size, context, batch in (("125m", 32768, 32), ("1b", 32768, 32), ("350m", 8192, 32),
                                 ("350m", 16384, 32), ("760m", 8192, 32), ("760m", 16384, 32),
                                 ("760m", 32768, 32), ("3b", 32768, 64), ("3b", 131072, 16)):
        training, model = _e2e(size, 1)
        name = f"ext-{size}-e2e-{context // 1024}K"
        out[f"{size}/extension/{name}"] = {
            "training_option": f"{size}/ext", "model_option": size,
            "training": {"seq_length": context, "global_batch_size": batch, **training},
            "model": model}
    theta = {8192: 500000, 16384: 1000000, 32768: 2000000}
    for size, context in (("125m", 32768), ("350m", 8192), ("350m", 16384), ("760m", 8192),
                          ("760m", 16384), ("760m", 32768)):
        name = f"ext-{size}-fa-{context // 1024}K"
        out[f"{size}/extension/{name}"] = {
            "training_option": f"{size}/ext", "model_option": size,
            "training": {"seq_length": context, "global_batch_size": 32},
            "model": _fa(context, theta[context])}
    for path, entry in out.items():
        entry["training"] = {"exp_name": path.rsplit("/", 1)[1], **entry["training"]}
    return out


OFFICIAL_EXPERIMENTS = _experiments()


def write_experiment(root: Path, path: str) -> Path:
    """`<root>/experiment/<path>.yaml` as the official repository writes it."""
    entry = OFFICIAL_EXPERIMENTS[path]
    body = {"defaults": [{"override /training": entry["training_option"]},
                         {"override /model": entry["model_option"]}, "_self_"],
            "training": entry["training"], "model": entry["model"]}
    out = root / "experiment" / f"{path}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# @package _global_\n" + yaml.safe_dump(body, sort_keys=False))
    return out


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
