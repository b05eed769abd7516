"""Translation of a composed run config (official TTT-E2E key names) into ttt-model types.

One place maps every key: `model.*` onto `ModelConfig`, `training.*` onto `TrainConfig`
plus the run's paths, data, checkpoint and logging settings, `backend.*` onto the
distributed/runtime settings. Keys and types were checked against the schema
(`ComposedConfig.checked`); schedule lengths pinned for another total_steps are scaled to
this run's (`schedule_lengths`); a value that would change the method's meaning in a way
ttt-model does not implement is refused naming key and file, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttt_model.config import ConfigError, ModelConfig, TrainConfig
from ttt_model.sharding import MeshConfig
from ttt_train.config import ComposedConfig, RunConfigError
from ttt_train.redaction import redact_secrets
from ttt_train.samples import SampleSpec
from ttt_train.schedule import (
    DECAY,
    ILR_WARMUP,
    TOTAL,
    WARMUP,
    ScheduleLengths,
    schedule_lengths,
    with_lengths,
)
from ttt_train.schema import BLOCKS, DTYPES, MODEL_KEYS
from ttt_train.stage_spec import (
    BackendSpec,
    DataSpec,
    LedgerSpec,
    RestoreSpec,
    RunPaths,
    ScheduleSpec,
    StageSpec,
)
from ttt_train.tracking import TrackingSpec


def _need(ok: bool, composed: ComposedConfig, key: str, msg: str) -> None:
    if not ok:
        raise RunConfigError(f"{key} (set in {composed.where_set(key)}): {msg}")


def translate(composed: ComposedConfig) -> StageSpec:
    """The stage spec of a composed config; a clear error naming key and file otherwise."""
    cfg = composed.checked()
    lengths = schedule_lengths(cfg, composed)
    cfg = with_lengths(cfg, lengths.steps)
    t, m, b = cfg["training"], cfg["model"], cfg["backend"]
    model = _model_config(m, composed)
    train = _train_config(t, composed, lengths)
    _check_refused(t, m, composed)
    exp_name = t["exp_name"]
    _need(bool(exp_name) and "/" not in exp_name, composed, "training.exp_name",
          f"must be a non-empty name without '/', got {exp_name!r}")
    paths = RunPaths(Path(t["exp_dir"]), t["exp_folder"], exp_name, Path(t["checkpoint_path"]))
    data = DataSpec(
        store=t["dataset_path"], split=t["data_split"], eval_split=t["eval_split"],
        seq_len=t["seq_length"], global_batch_size=t["global_batch_size"],
        accum_steps=t["accum_steps"], seed=t["data_seed"],
        read_threads=max(1, t["loader_workers"]), document_aligned=t["document_aligned"],
        tokenizer_dir=t["tokenizer_name"] or None, eval_batch_size=t["eval_batch_size"],
        eval_batches=t["eval_batches"])
    _need(data.global_batch_size % data.accum_steps == 0, composed, "training.accum_steps",
          f"{data.accum_steps} must divide global_batch_size {data.global_batch_size}")
    _check_lengths(model, train, data, composed)
    restore = _restore_spec(t, exp_name, composed)
    schedule = ScheduleSpec(
        total_steps=train.total_steps,
        break_step=t["break_step"] if t["break_step"] > 0 else None,
        checkpoint_every=t["save_checkpoint_freq"], milestone_every=t["save_milestone_freq"],
        keep_checkpoints=t["keep_checkpoints"], log_every=max(1, t["log_freq"]),
        progress=t["progress"])
    _need(schedule.keep_checkpoints >= 1, composed, "training.keep_checkpoints",
          f"must be >= 1, got {schedule.keep_checkpoints}")
    mesh = MeshConfig(data=-1 if t["n_data_parallel"] is None else t["n_data_parallel"],
                      fsdp=t["n_state_parallel"])
    backend = _backend_spec(b, composed)
    ledger = _ledger_spec(t, model, exp_name)
    return StageSpec(model=model, train=train, mesh=mesh, paths=paths, data=data,
                     restore=restore, schedule=schedule, backend=backend, ledger=ledger,
                     model_seed=t["model_seed"], derived=lengths.derived,
                     resolved=redact_secrets(cfg), tracking=_tracking_spec(t, composed),
                     samples=_sample_spec(t, composed))


def model_config_of(composed: ComposedConfig) -> ModelConfig:
    """Only the model of a composed config (nothing else needs to resolve)."""
    return _model_config(composed.checked("model")["model"], composed)


# -- models and training --------------------------------------------------------------

# Keys of `model` that configure nothing in ModelConfig: schema-checked, then refused
# below unless they hold the one value ttt-model implements, or informational.
MODEL_UNMAPPED = ("seq_modeling_block", "attention_kinds", "output_size", "seq_len",
                  "state_dtype", "feed_forward_prime", "pre_norm", "ttt_suffix_len",
                  "ttt_intermediate_size", "resid_pdrop", "embd_pdrop", "attn_pdrop",
                  "remat_block_bwd", "remat_attention",
                  "remat_attention_bwd", "remat_mlp", "remat_mlp_bwd", "remat_rms",
                  "remat_rms_bwd", "remat_multiple_gd", "unroll_block_scan",
                  "unroll_inner_scan", "force_flash")


def _model_config(m: dict[str, Any], composed: ComposedConfig) -> ModelConfig:
    _need(m["output_size"] in (None, m["vocab_size"]), composed, "model.output_size",
          f"{m['output_size']} differs from vocab_size {m['vocab_size']}; untied output "
          "sizes other than the vocabulary are not supported")
    _need(m["pre_norm"], composed, "model.pre_norm",
          "false is not supported (every block is pre-normed)")
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        _need(m[key] == 0.0, composed, f"model.{key}",
              f"dropout is not supported (the method uses none), got {m[key]}")
    fields = {MODEL_KEYS.get(k, k): v for k, v in m.items() if k not in MODEL_UNMAPPED}
    kinds = m["attention_kinds"]
    fields.update(
        attention=BLOCKS[m["seq_modeling_block"]],
        attention_kinds=tuple(kinds) if kinds is not None else None,
        param_dtype=DTYPES[m["param_dtype"]], compute_dtype=DTYPES[m["compute_dtype"]])
    try:
        return ModelConfig(**fields)
    except ConfigError as e:
        raise RunConfigError(f"model config ({composed.choices.get('model')}): {e}") from e


def _train_config(t: dict[str, Any], composed: ComposedConfig,
                  lengths: ScheduleLengths) -> TrainConfig:
    o, i = t["optimizer_outer"], t["optimizer_inner"]
    _need(not o["bf16_momentum"], composed, "training.optimizer_outer.bf16_momentum",
          "bf16 optimiser moments are not supported")
    _need(o["emb_wd"], composed, "training.optimizer_outer.emb_wd",
          "false is not supported: weight decay applies to every matrix, embeddings included")
    total, warmup, decay = t["total_steps"], o["lr_warmup_steps"], o["lr_decay_steps"]
    _need(total > 0, composed, TOTAL, f"must be positive, got {total}")
    _need(0 <= warmup <= total, composed, lengths.given_by[WARMUP],
          f"lr_warmup_steps={warmup} must lie in [0, training.total_steps={total}]")
    _need(decay >= warmup, composed, lengths.given_by[DECAY],
          f"lr_decay_steps={decay} must be at least lr_warmup_steps={warmup} (equal: no "
          "cosine phase)")
    _need(t["ilr_warmup_steps"] >= 0, composed, lengths.given_by[ILR_WARMUP],
          f"must be >= 0, got {t['ilr_warmup_steps']}")
    _need(t["spec_outer"] == ["**"], composed, "training.spec_outer",
          f"only ['**'] (train every parameter) is supported, got {t['spec_outer']}")
    try:
        return TrainConfig(
            train_mode=t["train_mode"], total_steps=total, lr=o["lr"], init_lr=o["init_lr"],
            end_lr=o["end_lr"], warmup_steps=warmup, decay_steps=decay, b1=o["b1"],
            b2=o["b2"], weight_decay=o["weight_decay"], grad_clip=o["clip_gradient"],
            grad_accum=t["accum_steps"], inner_lr=i["lr"], inner_clip=i["clip_gradient"],
            ilr_init=t["ilr_init"], ilr_warmup_steps=t["ilr_warmup_steps"],
            spec_inner=tuple(t["spec_inner"]), remat_every=t["inner_remat_freq"],
            chunked_swa=t["chunked_swa"], loss_average=t["loss_average"])
    except ConfigError as e:
        raise RunConfigError(f"training config ({composed.choices.get('training')}): {e}") from e


def _check_refused(t: dict[str, Any], m: dict[str, Any], composed: ComposedConfig) -> None:
    _need(not t["dummy_dataset"], composed, "training.dummy_dataset",
          "true is refused: train on a token store (`ttt data synth` + `ttt data tokenize` "
          "make a synthetic one)")
    _need(not t["eval_mode"], composed, "training.eval_mode",
          "true is refused: held-out evaluation runs at the end of training "
          "(training.eval_batches)")
    _need(t["dataset_path"] not in (None, ""), composed, "training.dataset_path",
          "no token store given (set training.dataset_path or deploy_paths.data.*)")


def _check_lengths(model: ModelConfig, train: TrainConfig, data: DataSpec,
                   composed: ComposedConfig) -> None:
    needs_chunks = train.train_mode == "meta" or (train.chunked_swa and
                                                  model.attention == "sliding")
    if needs_chunks:
        _need(data.seq_len % model.mini_batch_size == 0, composed, "training.seq_length",
              f"{data.seq_len} is not a multiple of model.mini_batch_size "
              f"{model.mini_batch_size} (the inner loop runs whole chunks)")
        n_chunks = data.seq_len // model.mini_batch_size
        _need(n_chunks % train.remat_every == 0, composed, "training.inner_remat_freq",
              f"{train.remat_every} must divide the {n_chunks} chunks per sequence")
    if train.train_mode == "meta":
        _need(model.prime and model.suffix_len > 0, composed, "model.prime",
              "train_mode=meta needs prime MLPs in the suffix (model.prime=true, "
              "model.suffix_len>0)")
        _need(model.attention == "sliding" or model.attention_kinds is not None, composed,
              "model.seq_modeling_block",
              "train_mode=meta runs the suffix chunk by chunk over a sliding cache: use SWA")


def _restore_spec(t: dict[str, Any], exp_name: str, composed: ComposedConfig) -> RestoreSpec:
    load_part = t["load_part"]
    source = t["resume_exp_name"] or None
    if load_part == "params":
        _need(source is not None, composed, "training.resume_exp_name",
              "load_part=params needs the checkpoint to load weights from")
    if load_part == "all" and source is None:
        source = exp_name  # resume this run's own checkpoints
    return RestoreSpec(load_part=load_part, source_exp_name=source if load_part != "none"
                       else None, step=t["resume_step"], recipe=t["warmstart_recipe"],
                       prime_init=t["prime_init"])


def _backend_spec(b: dict[str, Any], composed: ComposedConfig) -> BackendSpec:
    platform = b["backend"]
    ids = b["local_device_ids"]
    if isinstance(ids, str):
        parts = [x.strip() for x in ids.split(",") if x.strip()]
        _need(all(x.isdigit() for x in parts), composed, "backend.local_device_ids",
              f"{ids!r}: expected device ids like '0,1'")
        ids = [int(x) for x in parts]
    elif isinstance(ids, int):
        ids = [ids]
    return BackendSpec(
        distributed=b["distributed"], coordinator_address=b["coordinator_address"],
        num_processes=b["num_processes"], process_id=b["process_id"],
        local_device_ids=None if ids is None else tuple(ids), platform=platform,
        num_devices=b["num_devices"], compilation_cache_dir=b["compilation_cache_dir"] or None)


def model_kind(model: ModelConfig) -> str:
    """fa | swa | e2e, as the ledger labels runs."""
    if model.prime:
        return "e2e"
    return "swa" if model.attention == "sliding" else "fa"


def _ledger_spec(t: dict[str, Any], model: ModelConfig, exp_name: str) -> LedgerSpec:
    labels = t["ledger"]
    warm = "import" in t["resume_exp_name"] or t["warmstart_recipe"] is not None
    return LedgerSpec(run_id=t["run_id"] or exp_name, family=labels["family"] or model.name,
                      path=labels["path"] or ("adapter" if warm else "scratch"),
                      stage=labels["stage"] or "pretrain")


def _tracking_spec(t: dict[str, Any], composed: ComposedConfig) -> TrackingSpec:
    mode = t["wandb_mode"] or None
    return TrackingSpec(wandb=t["log_wandb"], wandb_entity=t["wandb_entity"],
                        wandb_project=t["wandb_project"], wandb_mode=mode,
                        wandb_key=t["wandb_key"], tensorboard=t["log_tensorboard"])


def _sample_spec(t: dict[str, Any], composed: ComposedConfig) -> SampleSpec:
    every = t["sample_every"]
    _need(every >= 0, composed, "training.sample_every", f"must be >= 0, got {every}")
    _need(every == 0 or bool(t["tokenizer_name"]), composed, "training.sample_every",
          "text samples need the run's tokenizer: set training.tokenizer_name to its folder")
    _need(t["sample_tokens"] >= 1, composed, "training.sample_tokens",
          f"must be >= 1, got {t['sample_tokens']}")
    return SampleSpec(every=every, prompt=t["sample_prompt"], tokens=t["sample_tokens"],
                      tokenizer_dir=t["tokenizer_name"] or None)


def tokens_per_step(spec: StageSpec) -> int:
    """Training tokens (targets) consumed by one outer step."""
    return spec.data.global_batch_size * spec.data.seq_len
