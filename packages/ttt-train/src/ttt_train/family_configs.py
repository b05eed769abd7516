"""The Hydra configs of every registered family, built from ttt-import's registry and the
ledger's stage matrix: there are no per-family YAML copies to drift apart.

They are stored in Hydra's ConfigStore under the names a YAML tree would give them, so
they compose, override and show (`--print-config`) like files:

    model/<size>                                 the paper's models (ttt_model.config)
    model/<family>                               the public checkpoint's architecture
    model/pilot/<family>                         its tiny offline stand-in (the pilot, tests)
    training/<family>/{pretrain-8K,ext-32K}      the full-budget 8K and 32K stages
    experiment/external/<family>/<run config>    the ten runs of docs/protocol.md

Write your own variant as a YAML file under `--config-dir` with another name, with
`defaults: [/experiment/external/<family>/<run config>@_here_, _self_]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hydra.core.config_store import ConfigStore

from ttt_import.profiles import profile_model_config
from ttt_import.registry import REGISTRY, RegisteredFamily
from ttt_ledger.plan import CONTEXT_8K, MATRIX, StageTemplate
from ttt_model.config import PAPER_SIZES, paper_config
from ttt_train.schema import architecture_keys

PROVIDER = "ttt-import registry"
WINDOW = 8192  # the sliding window of every SWA and TTT-E2E stage, as in the paper
CHUNK = 1024  # TTT-E2E's inner-loop chunk (`mini_batch_size`)
SPEC_INNER = ["language_model.**.suffix_blocks.feed_forward_prime.**"]  # official spelling
WARM_START_LR = 1.0e-4  # 8K stages continuing pretrained weights: a gentler outer lr
# The 8K (DCLM) and 32K (Books) stages every family runs; only the step budgets differ.
STAGE_RECIPES = {
    "pretrain-8K": dict(dataset_name="dclm", seq_length=CONTEXT_8K, global_batch_size=64,
                        ilr_init=0.1, save_checkpoint_freq=1000, lr=1.0e-3),
    "ext-32K": dict(dataset_name="books3", seq_length=4 * CONTEXT_8K, global_batch_size=32,
                    ilr_init=1.0, save_checkpoint_freq=100, lr=4.0e-4),
}


def model_node(family: RegisteredFamily) -> dict[str, Any]:
    """The public checkpoint's architecture, with its TTT-E2E settings."""
    return {
        "defaults": ["base_model", "_self_"], "name": family.key,
        **architecture_keys(profile_model_config(family.profile)),
        "compute_dtype": "bf16", "param_dtype": "fp32", "mini_batch_size": CHUNK,
        "sliding_window_size": WINDOW, "seq_len": 4 * CONTEXT_8K,
        "ttt_suffix_len": family.ttt_suffix_len,
        "ttt_intermediate_size": family.ttt_intermediate_size,
    }


def paper_model_node(size: str) -> dict[str, Any]:
    """The paper's model of `size` (ttt-model's table), with its TTT-E2E geometry."""
    fa, e2e = paper_config(size, "fa"), paper_config(size, "e2e")
    return {
        "defaults": ["base_model", "_self_"], "name": size, **architecture_keys(fa),
        "mini_batch_size": fa.mini_batch_size, "sliding_window_size": fa.sliding_window,
        "seq_len": CONTEXT_8K, "ttt_suffix_len": e2e.suffix_len,
        "ttt_intermediate_size": e2e.intermediate_size,
    }


def pilot_model_node(family: RegisteredFamily) -> dict[str, Any]:
    """The family's architecture at CPU size, with its locally trained tokenizer (BOS 0,
    EOS 1); the pilot builds the stand-in's HF snapshot from it."""
    shape = family.pilot
    return {
        "defaults": [f"/model/{family.key}@_here_", "_self_"],
        "name": f"{family.key}-pilot", "vocab_size": family.pilot_vocab_size,
        "hidden_size": shape.hidden_size, "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_layers, "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads, "bos_token_id": 0, "eos_token_id": 1,
        "compute_dtype": "fp32", "param_dtype": "fp32", "mini_batch_size": shape.chunk,
        "sliding_window_size": shape.window, "seq_len": shape.seq_len,
        "attention_block_size": shape.window, "ttt_suffix_len": shape.suffix_len,
        "ttt_intermediate_size": family.pilot_ttt_intermediate_size,
    }


def training_node(family: RegisteredFamily, stage: str) -> dict[str, Any]:
    """One full-budget stage: warmups are a tenth of the steps, decay runs to the end."""
    recipe = STAGE_RECIPES[stage]
    steps = family.budget.pretrain_steps if stage == "pretrain-8K" else family.budget.ext_steps
    warmup = steps // 10
    return {
        "defaults": ["/training/base_training@_global_.training", "_self_"],
        "dataset_name": recipe["dataset_name"],
        "dataset_path": f"${{deploy_paths.data.{recipe['dataset_name']}}}",
        "data_split": "train", "total_steps": steps, "seq_length": recipe["seq_length"],
        "global_batch_size": recipe["global_batch_size"], "ilr_init": recipe["ilr_init"],
        "ilr_warmup_steps": warmup if stage == "pretrain-8K" else 0,
        "save_checkpoint_freq": recipe["save_checkpoint_freq"],
        "optimizer_outer": {
            "optimizer_type": "adamw", "init_lr": 0.0, "lr": recipe["lr"], "end_lr": 1.0e-5,
            "lr_warmup_steps": warmup, "lr_decay_steps": steps, "b1": 0.9, "b2": 0.95,
            "clip_gradient": 1.0, "weight_decay": 0.1},
    }


def experiment_node(family: RegisteredFamily, row: StageTemplate) -> dict[str, Any]:
    """One row of the matrix for one family (`# @package _global_`)."""
    stage = "pretrain-8K" if row.context_length == CONTEXT_8K else "ext-32K"
    source = row.input.format(s=family.short) if row.input else None
    training: dict[str, Any] = {
        "exp_name": row.output.format(s=family.short),
        "load_part": "params" if source else "none"}
    if source:
        training["resume_exp_name"] = source
    if row.recipe == "ttt":
        training.update(warmstart_recipe="ttt", prime_init="zeros")
    training["train_mode"] = row.train_mode
    if row.model_kind == "e2e":
        training["spec_inner"] = SPEC_INNER
    if row.path == "adapter" and row.context_length == CONTEXT_8K:
        training["optimizer_outer"] = {"lr": WARM_START_LR}
    model: dict[str, Any] = {
        "seq_modeling_block": "self_attention" if row.model_kind == "fa" else "SWA"}
    if row.model_kind == "e2e":
        model.update(prime=True, suffix_len="${model.ttt_suffix_len}")
        if row.path == "scratch":  # shrunk to FA's parameter count
            model["intermediate_size"] = "${model.ttt_intermediate_size}"
    return {"defaults": [{"override /training": f"{family.key}/{stage}"},
                         {"override /model": family.key}, "_self_"],
            "training": training, "model": model}


def family_nodes(family: RegisteredFamily) -> Iterable[tuple[str, str, str | None, Any]]:
    """(group, name, package, node) of every config of one family."""
    yield "model", family.key, None, model_node(family)
    yield "model/pilot", family.key, None, pilot_model_node(family)
    for stage in STAGE_RECIPES:
        yield f"training/{family.key}", stage, None, training_node(family, stage)
    for row in MATRIX:
        yield (f"experiment/external/{family.key}", row.config, "_global_",
               experiment_node(family, row))


def store_family_configs(families: Iterable[RegisteredFamily] | None = None) -> None:
    """Store the configs of `families` (default: the registry) in Hydra's ConfigStore, in
    place of any stored before (a family since removed leaves nothing behind)."""
    store = ConfigStore.instance()
    _drop_ours(store.repo)
    for size in PAPER_SIZES:
        store.store(name=size, node=paper_model_node(size), group="model", provider=PROVIDER)
    for family in REGISTRY.values() if families is None else families:
        for group, name, package, node in family_nodes(family):
            store.store(name=name, node=node, group=group, package=package,
                        provider=PROVIDER)


def _drop_ours(node: dict[str, Any]) -> None:
    for name in list(node):
        child = node[name]
        if isinstance(child, dict):
            _drop_ours(child)
            if not child:
                del node[name]
        elif getattr(child, "provider", None) == PROVIDER:
            del node[name]
