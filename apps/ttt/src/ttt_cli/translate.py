"""Translation of a composed run config (official TTT-E2E key names) into ttt-model types.

One place maps every key: `model.*` onto `ModelConfig`, `training.*` onto `TrainConfig`
plus the run's paths, data, checkpoint and logging settings, `backend.*` onto the
distributed/runtime settings. A key the base files (`configs/*/base_*.yaml`) do not
declare is refused with the file that set it; a value that would change the method's
meaning in a way ttt-model does not implement is refused too, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ttt_cli.config import CONFIG_DIR, ComposedConfig, RunConfigError
from ttt_model.config import ConfigError, ModelConfig, TrainConfig
from ttt_model.sharding import MeshConfig

_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
           "f32": "float32", "fp16": "float16", "float16": "float16", "fp64": "float64",
           "float64": "float64"}
_BLOCKS = {"self_attention": "full", "SWA": "sliding"}
_FREE_FORM = ("deploy_paths.data",)  # any dataset name may appear here


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: run dir (configs, metrics, log, ledger copy) and checkpoints."""

    exp_dir: Path
    exp_folder: str
    exp_name: str
    checkpoint_root: Path

    @property
    def run_dir(self) -> Path:
        return self.exp_dir / self.exp_folder / self.exp_name

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoint_dir_of(self.exp_name)

    def checkpoint_dir_of(self, exp_name: str) -> Path:
        return self.checkpoint_root / self.exp_folder / exp_name


@dataclass(frozen=True)
class DataSpec:
    store: str
    split: str
    eval_split: str
    seq_len: int
    global_batch_size: int
    accum_steps: int
    seed: int
    read_threads: int
    document_aligned: bool
    tokenizer_dir: str | None
    eval_batch_size: int
    eval_batches: int


@dataclass(frozen=True)
class RestoreSpec:
    """The `load_part` contract: what to load from which checkpoint."""

    load_part: str  # none | params | all
    source_exp_name: str | None
    step: int | None
    recipe: str | None  # None | ttt (insert prime MLPs)
    prime_init: str


@dataclass(frozen=True)
class ScheduleSpec:
    total_steps: int
    break_step: int | None
    checkpoint_every: int
    milestone_every: int
    keep_checkpoints: int
    log_every: int
    progress: bool


@dataclass(frozen=True)
class BackendSpec:
    distributed: bool = False
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    local_device_ids: tuple[int, ...] | None = None
    platform: str | None = None
    num_devices: int | None = None
    compilation_cache_dir: str | None = None


@dataclass(frozen=True)
class LedgerSpec:
    run_id: str
    family: str
    path: str
    stage: str


@dataclass(frozen=True)
class StageSpec:
    """Everything one training stage needs, in ttt-model's and the app's own types."""

    model: ModelConfig
    train: TrainConfig
    mesh: MeshConfig
    paths: RunPaths
    data: DataSpec
    restore: RestoreSpec
    schedule: ScheduleSpec
    backend: BackendSpec
    ledger: LedgerSpec
    model_seed: int
    resolved: dict[str, Any] = field(repr=False, default_factory=dict)


def _base_schema() -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for group, name in (("training", "base_training"), ("model", "base_model"),
                        ("backend", "base_backend"), ("deploy_paths", "base_deploy_paths")):
        schema[group] = yaml.safe_load((CONFIG_DIR / group / f"{name}.yaml").read_text())
    return schema


def unknown_keys(cfg: dict[str, Any], schema: dict[str, Any] | None = None,
                 prefix: str = "") -> list[str]:
    """Dotted keys of `cfg` that the schema (the base files) does not declare."""
    schema = _base_schema() if schema is None else schema
    out = []
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            out.append(dotted)
        elif isinstance(value, dict) and isinstance(schema[key], dict) \
                and dotted not in _FREE_FORM:
            out += unknown_keys(value, schema[key], f"{dotted}.")
    return out


def _need(ok: bool, composed: ComposedConfig, key: str, msg: str) -> None:
    if not ok:
        raise RunConfigError(f"{key} (set in {composed.where_set(key)}): {msg}")


def translate(composed: ComposedConfig) -> StageSpec:
    """The stage spec of a composed config; a clear error naming key and file otherwise."""
    unknown = unknown_keys(composed.unresolved())
    if unknown:
        where = "; ".join(f"{k} (set in {composed.where_set(k)})" for k in unknown)
        raise RunConfigError(f"unknown config key(s): {where}. Known keys and their defaults "
                             f"are in {CONFIG_DIR}/<group>/base_*.yaml")
    cfg = composed.resolved()
    t, m, b = cfg["training"], cfg["model"], cfg["backend"]
    model = _model_config(m, composed)
    train = _train_config(t, composed)
    _check_refused(t, m, composed)
    exp_name = str(t["exp_name"])
    _need(bool(exp_name) and "/" not in exp_name, composed, "training.exp_name",
          f"must be a non-empty name without '/', got {exp_name!r}")
    paths = RunPaths(Path(t["exp_dir"]), str(t["exp_folder"]), exp_name,
                     Path(t["checkpoint_path"]))
    data = DataSpec(
        store=str(t["dataset_path"]), split=str(t["data_split"]),
        eval_split=str(t["eval_split"]), seq_len=int(t["seq_length"]),
        global_batch_size=int(t["global_batch_size"]), accum_steps=int(t["accum_steps"]),
        seed=int(t["data_seed"]), read_threads=max(1, int(t["loader_workers"])),
        document_aligned=bool(t["document_aligned"]),
        tokenizer_dir=str(t["tokenizer_name"]) if t["tokenizer_name"] else None,
        eval_batch_size=int(t["eval_batch_size"]), eval_batches=int(t["eval_batches"]))
    _need(data.global_batch_size % data.accum_steps == 0, composed, "training.accum_steps",
          f"{data.accum_steps} must divide global_batch_size {data.global_batch_size}")
    _check_lengths(model, train, data, composed)
    restore = _restore_spec(t, exp_name, composed)
    break_step = int(t["break_step"])
    schedule = ScheduleSpec(
        total_steps=train.total_steps, break_step=break_step if break_step > 0 else None,
        checkpoint_every=int(t["save_checkpoint_freq"]),
        milestone_every=int(t["save_milestone_freq"]),
        keep_checkpoints=int(t["keep_checkpoints"]), log_every=max(1, int(t["log_freq"])),
        progress=bool(t["progress"]))
    _need(schedule.keep_checkpoints >= 1, composed, "training.keep_checkpoints",
          f"must be >= 1, got {schedule.keep_checkpoints}")
    mesh = MeshConfig(data=-1 if t["n_data_parallel"] is None else int(t["n_data_parallel"]),
                      fsdp=int(t["n_state_parallel"]))
    backend = _backend_spec(b, composed)
    ledger = _ledger_spec(t, model, train, exp_name)
    return StageSpec(model=model, train=train, mesh=mesh, paths=paths, data=data,
                     restore=restore, schedule=schedule, backend=backend, ledger=ledger,
                     model_seed=int(t["model_seed"]), resolved=cfg)


def model_config_of(composed: ComposedConfig) -> ModelConfig:
    """Only the model of a composed config (nothing else needs to resolve)."""
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(composed.cfg.model, resolve=True)
    unknown = unknown_keys({"model": model})
    if unknown:
        raise RunConfigError(f"unknown model key(s): {unknown} (set in "
                             f"{composed.where_set(unknown[0])})")
    return _model_config(model, composed)


def _dtype(value: str, key: str, composed: ComposedConfig) -> str:
    _need(value in _DTYPES, composed, key, f"unknown dtype {value!r}; use one of "
          f"{sorted(_DTYPES)}")
    return _DTYPES[value]


def _model_config(m: dict[str, Any], composed: ComposedConfig) -> ModelConfig:
    _need(m["seq_modeling_block"] in _BLOCKS, composed, "model.seq_modeling_block",
          f"{m['seq_modeling_block']!r} is not one of {sorted(_BLOCKS)}")
    _need(m["output_size"] in (None, m["vocab_size"]), composed, "model.output_size",
          f"{m['output_size']} differs from vocab_size {m['vocab_size']}; untied output "
          "sizes other than the vocabulary are not supported")
    _need(bool(m["pre_norm"]), composed, "model.pre_norm",
          "false is not supported (every block is pre-normed)")
    _need(m["feed_forward_prime"] == "swiglu", composed, "model.feed_forward_prime",
          f"only 'swiglu' is supported, got {m['feed_forward_prime']!r}")
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        _need(float(m[key]) == 0.0, composed, f"model.{key}",
              f"dropout is not supported (the method uses none), got {m[key]}")
    kinds = m["attention_kinds"]
    try:
        return ModelConfig(
            name=str(m["name"]), vocab_size=int(m["vocab_size"]),
            hidden_size=int(m["hidden_size"]), intermediate_size=int(m["intermediate_size"]),
            num_layers=int(m["num_hidden_layers"]), num_heads=int(m["num_attention_heads"]),
            num_kv_heads=m["num_key_value_heads"], head_dim=m["head_dim"],
            rope_theta=float(m["rope_theta"]), rms_norm_eps=float(m["rms_norm_eps"]),
            tie_embeddings=bool(m["tie_word_embeddings"]), qkv_bias=bool(m["qkv_bias"]),
            qk_norm=bool(m["qk_norm"]), post_norm=bool(m["post_norm"]),
            attention=_BLOCKS[m["seq_modeling_block"]],
            attention_kinds=tuple(kinds) if kinds is not None else None,
            sliding_window=int(m["sliding_window_size"]),
            mini_batch_size=int(m["mini_batch_size"]), suffix_len=int(m["suffix_len"]),
            prime=bool(m["prime"]), prime_intermediate_size=m["prime_intermediate_size"],
            param_dtype=_dtype(m["param_dtype"], "model.param_dtype", composed),
            compute_dtype=_dtype(m["compute_dtype"], "model.compute_dtype", composed),
            initializer_range=float(m["initializer_range"]),
            bos_token_id=m["bos_token_id"], eos_token_id=m["eos_token_id"],
            attention_block_size=int(m["attention_block_size"]))
    except (ConfigError, TypeError, ValueError) as e:
        raise RunConfigError(f"model config ({composed.choices.get('model')}): {e}") from e


def _train_config(t: dict[str, Any], composed: ComposedConfig) -> TrainConfig:
    o, i = t["optimizer_outer"], t["optimizer_inner"]
    _need(o["optimizer_type"] == "adamw", composed, "training.optimizer_outer.optimizer_type",
          f"only adamw is supported, got {o['optimizer_type']!r}")
    _need(not o["bf16_momentum"], composed, "training.optimizer_outer.bf16_momentum",
          "bf16 optimiser moments are not supported")
    _need(bool(o["emb_wd"]), composed, "training.optimizer_outer.emb_wd",
          "false is not supported: weight decay applies to every matrix, embeddings included")
    _need(0 <= int(o["lr_warmup_steps"]) <= int(t["total_steps"]), composed,
          "training.optimizer_outer.lr_warmup_steps",
          f"{o['lr_warmup_steps']} must lie in [0, training.total_steps={t['total_steps']}]")
    _need(i["optimizer_type"] == "sgd", composed, "training.optimizer_inner.optimizer_type",
          f"the inner loop is SGD, got {i['optimizer_type']!r}")
    _need(list(t["spec_outer"]) == ["**"], composed, "training.spec_outer",
          f"only ['**'] (train every parameter) is supported, got {t['spec_outer']}")
    try:
        return TrainConfig(
            train_mode=str(t["train_mode"]), total_steps=int(t["total_steps"]),
            lr=float(o["lr"]), init_lr=float(o["init_lr"]), end_lr=float(o["end_lr"]),
            warmup_steps=int(o["lr_warmup_steps"]), decay_steps=int(o["lr_decay_steps"]),
            b1=float(o["b1"]), b2=float(o["b2"]),
            weight_decay=float(o["weight_decay"]), grad_clip=float(o["clip_gradient"]),
            grad_accum=int(t["accum_steps"]), inner_lr=float(i["lr"]),
            inner_clip=float(i["clip_gradient"]), ilr_init=float(t["ilr_init"]),
            ilr_warmup_steps=int(t["ilr_warmup_steps"]), spec_inner=tuple(t["spec_inner"]),
            remat_every=int(t["inner_remat_freq"]), chunked_swa=bool(t["chunked_swa"]))
    except (ConfigError, TypeError, ValueError) as e:
        raise RunConfigError(f"training config ({composed.choices.get('training')}): {e}") from e


def _check_refused(t: dict[str, Any], m: dict[str, Any], composed: ComposedConfig) -> None:
    _need(not t["dummy_dataset"], composed, "training.dummy_dataset",
          "true is refused: train on a token store (`ttt data synth` + `ttt data tokenize` "
          "make a synthetic one)")
    _need(not t["eval_mode"], composed, "training.eval_mode",
          "true is refused: held-out evaluation runs at the end of training "
          "(training.eval_batches)")
    _need(not t["log_wandb"], composed, "training.log_wandb",
          "true is refused: there is no wandb here; metrics go to <run dir>/metrics.jsonl")
    _need(t["load_part"] in ("none", "params", "all"), composed, "training.load_part",
          f"{t['load_part']!r} is not one of none, params, all")
    _need(t["warmstart_recipe"] in (None, "ttt"), composed, "training.warmstart_recipe",
          f"{t['warmstart_recipe']!r}: expected null or 'ttt'")
    _need(t["prime_init"] in ("zeros", "copy", "normal"), composed, "training.prime_init",
          f"{t['prime_init']!r}: expected zeros, copy or normal")
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
    load_part = str(t["load_part"])
    source = str(t["resume_exp_name"] or "") or None
    if load_part == "params":
        _need(source is not None, composed, "training.resume_exp_name",
              "load_part=params needs the checkpoint to load weights from")
    if load_part == "all" and source is None:
        source = exp_name  # resume this run's own checkpoints
    step = t["resume_step"]
    return RestoreSpec(load_part=load_part, source_exp_name=source if load_part != "none"
                       else None, step=None if step is None else int(step),
                       recipe=t["warmstart_recipe"], prime_init=str(t["prime_init"]))


def _backend_spec(b: dict[str, Any], composed: ComposedConfig) -> BackendSpec:
    platform = b["backend"]
    _need(platform in (None, "cpu", "gpu", "cuda", "tpu"), composed, "backend.backend",
          f"{platform!r}: expected cpu, gpu or tpu")
    ids = b["local_device_ids"]
    if isinstance(ids, str):
        ids = tuple(int(x) for x in ids.split(",") if x.strip())
    elif isinstance(ids, int):
        ids = (ids,)
    elif ids is not None:
        ids = tuple(int(x) for x in ids)
    return BackendSpec(
        distributed=bool(b["distributed"]), coordinator_address=b["coordinator_address"],
        num_processes=b["num_processes"], process_id=b["process_id"], local_device_ids=ids,
        platform=platform, num_devices=b["num_devices"],
        compilation_cache_dir=b["compilation_cache_dir"] or None)


def model_kind(model: ModelConfig) -> str:
    """fa | swa | e2e, as the ledger labels runs."""
    if model.prime:
        return "e2e"
    return "swa" if model.attention == "sliding" else "fa"


def _ledger_spec(t: dict[str, Any], model: ModelConfig, train: TrainConfig,
                 exp_name: str) -> LedgerSpec:
    labels = t["ledger"] or {}
    source = str(t["resume_exp_name"] or "")
    warm = "import" in source or t["warmstart_recipe"] is not None
    path = labels.get("path") or ("adapter" if warm else "scratch")
    stage = labels.get("stage") or "pretrain"
    return LedgerSpec(run_id=str(t["run_id"] or exp_name),
                      family=str(labels.get("family") or model.name), path=path, stage=stage)


def tokens_per_step(spec: StageSpec) -> int:
    """Training tokens (targets) consumed by one outer step."""
    return spec.data.global_batch_size * spec.data.seq_len
