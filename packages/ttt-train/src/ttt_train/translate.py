"""Translation of a composed run config (official TTT-E2E key names) into ttt-model types.

One place maps every key: `model.*` onto `ModelConfig`, `training.*` onto `TrainConfig`
plus the run's paths, data, checkpoint and logging settings, `backend.*` onto the
distributed/runtime settings. Keys and types were checked against the base files
(`ComposedConfig.checked`); schedule lengths pinned for another total_steps are scaled to
this run's (`schedule_lengths`); a value that would change the method's meaning in a way
ttt-model does not implement is refused naming key and file, never silently ignored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttt_model.config import LOSS_AVERAGES, ConfigError, ModelConfig, TrainConfig
from ttt_model.sharding import MeshConfig
from ttt_train.config import ComposedConfig, RunConfigError
from ttt_train.redaction import redact_secrets
from ttt_train.tracking import WANDB_MODES, TrackingSpec

_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
           "f32": "float32", "fp16": "float16", "float16": "float16", "fp64": "float64",
           "float64": "float64"}
_BLOCKS = {"self_attention": "full", "SWA": "sliding"}


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
    derived: tuple[str, ...] = ()  # one line per schedule length derived from total_steps
    resolved: dict[str, Any] = field(repr=False, default_factory=dict)  # the values used
    tracking: TrackingSpec = field(default_factory=TrackingSpec)  # W&B, TensorBoard


def _need(ok: bool, composed: ComposedConfig, key: str, msg: str) -> None:
    if not ok:
        raise RunConfigError(f"{key} (set in {composed.where_set(key)}): {msg}")


def translate(composed: ComposedConfig) -> StageSpec:
    """The stage spec of a composed config; a clear error naming key and file otherwise."""
    cfg = composed.checked()
    lengths = schedule_lengths(cfg, composed)
    cfg = _with_lengths(cfg, lengths.steps)
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
                     resolved=redact_secrets(cfg), tracking=_tracking_spec(t, composed))


def model_config_of(composed: ComposedConfig) -> ModelConfig:
    """Only the model of a composed config (nothing else needs to resolve)."""
    return _model_config(composed.checked("model")["model"], composed)


# -- schedule lengths -----------------------------------------------------------------

_TOTAL = "training.total_steps"
_DECAY = "training.optimizer_outer.lr_decay_steps"
_WARMUP = "training.optimizer_outer.lr_warmup_steps"
_ILR_WARMUP = "training.ilr_warmup_steps"
# Schedule lengths that follow total_steps (decay first: warmup is kept within it), each
# with the key (ours) that gives it as a fraction of total_steps.
SCHEDULE_LENGTHS = (
    (_DECAY, "training.optimizer_outer.lr_decay_fraction"),
    (_WARMUP, "training.optimizer_outer.lr_warmup_fraction"),
    (_ILR_WARMUP, "training.ilr_warmup_fraction"),
)


@dataclass(frozen=True)
class ScheduleLengths:
    """The schedule lengths a run uses (dotted steps key -> steps), the key that gave each
    (the steps key or its fraction), and one line per length derived from total_steps."""

    steps: dict[str, int]
    given_by: dict[str, str]
    derived: tuple[str, ...]


def schedule_lengths(cfg: dict[str, Any], composed: ComposedConfig) -> ScheduleLengths:
    """Each schedule length as this run means it. A length pinned in a layer older than the
    one that set total_steps (a family file, then `training.total_steps=40`) was meant for
    that file's total, so it is scaled to the new one; a length set in the same layer as
    total_steps or a later one is the user's for this run and kept; a fraction, when set,
    gives the length from total_steps unless the steps key was set in a later layer."""
    total, total_layer = _get(cfg, _TOTAL), composed.layer_index(_TOTAL)
    steps: dict[str, int] = {}
    given_by: dict[str, str] = {}
    derived: list[str] = []
    for steps_key, fraction_key in SCHEDULE_LENGTHS:
        _refuse_both_in_one_layer(steps_key, fraction_key, composed)
        value, fraction = _get(cfg, steps_key), _get(cfg, fraction_key)
        steps_layer = _index(composed.layer_index(steps_key))
        if fraction is not None and _index(composed.layer_index(fraction_key)) > steps_layer:
            _need(0.0 <= fraction <= 1.0, composed, fraction_key,
                  f"must lie in [0, 1] (a fraction of total_steps), got {fraction}")
            n = max(1, round(fraction * total)) if fraction > 0 else 0
            steps[steps_key], given_by[steps_key] = n, fraction_key
            derived.append(f"{steps_key}={n} (derived: {fraction_key.rsplit('.', 1)[1]}="
                           f"{fraction} in {composed.where_set(fraction_key)}, of "
                           f"total_steps={total})")
            continue
        steps[steps_key], given_by[steps_key] = value, steps_key
        old_total = _total_when_set(composed, steps_layer, steps_key)
        if total_layer is None or steps_layer >= total_layer or old_total is None:
            continue
        n = min(round(value * total / old_total), total)
        if steps_key == _WARMUP:
            n = min(n, steps[_DECAY])
        n = max(n, 1) if value >= 1 else n
        if n != value:
            steps[steps_key] = n
            derived.append(f"{steps_key}={n} (derived: {value} of {old_total} in "
                           f"{composed.layers[steps_layer].where(steps_key)}, scaled to "
                           f"total_steps={total})")
    return ScheduleLengths(steps, given_by, tuple(derived))


def _index(layer: int | None) -> int:
    return -1 if layer is None else layer


def _total_when_set(composed: ComposedConfig, layer: int, steps_key: str) -> int | None:
    """total_steps as the layer that set `steps_key` saw it, when that length was written
    as a number for it (an interpolation such as ${training.total_steps} follows anyway)."""
    if layer < 0 or "${" in str(composed.layers[layer].values.get(steps_key)):
        return None
    for earlier in reversed(composed.layers[:layer + 1]):
        if _TOTAL in earlier.values:
            total = earlier.values[_TOTAL]
            ok = isinstance(total, int) and not isinstance(total, bool) and total > 0
            return total if ok else None
    return None


def _refuse_both_in_one_layer(steps_key: str, fraction_key: str,
                              composed: ComposedConfig) -> None:
    for layer in composed.layers:
        if layer.values.get(fraction_key) is not None and layer.sets(steps_key):
            raise RunConfigError(
                f"{fraction_key} (set in {layer.where(fraction_key)}) and {steps_key} (set in "
                f"{layer.where(steps_key)}) give the same length: set only one of them")


def _get(tree: dict[str, Any], dotted_key: str) -> Any:
    for part in dotted_key.split("."):
        tree = tree[part]
    return tree


def _with_lengths(cfg: dict[str, Any], steps: dict[str, int]) -> dict[str, Any]:
    """A copy of `cfg` holding the schedule lengths the run uses."""
    out = copy.deepcopy(cfg)
    for dotted_key, n in steps.items():
        *parents, leaf = dotted_key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = n
    return out


# -- models and training --------------------------------------------------------------

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
    _need(m["pre_norm"], composed, "model.pre_norm",
          "false is not supported (every block is pre-normed)")
    _need(m["feed_forward_prime"] == "swiglu", composed, "model.feed_forward_prime",
          f"only 'swiglu' is supported, got {m['feed_forward_prime']!r}")
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        _need(m[key] == 0.0, composed, f"model.{key}",
              f"dropout is not supported (the method uses none), got {m[key]}")
    kinds = m["attention_kinds"]
    try:
        return ModelConfig(
            name=m["name"], vocab_size=m["vocab_size"], hidden_size=m["hidden_size"],
            intermediate_size=m["intermediate_size"], num_layers=m["num_hidden_layers"],
            num_heads=m["num_attention_heads"], num_kv_heads=m["num_key_value_heads"],
            head_dim=m["head_dim"], rope_theta=m["rope_theta"], rms_norm_eps=m["rms_norm_eps"],
            tie_embeddings=m["tie_word_embeddings"], qkv_bias=m["qkv_bias"],
            qk_norm=m["qk_norm"], post_norm=m["post_norm"],
            attention=_BLOCKS[m["seq_modeling_block"]],
            attention_kinds=tuple(kinds) if kinds is not None else None,
            sliding_window=m["sliding_window_size"], mini_batch_size=m["mini_batch_size"],
            suffix_len=m["suffix_len"], prime=m["prime"],
            prime_intermediate_size=m["prime_intermediate_size"],
            param_dtype=_dtype(m["param_dtype"], "model.param_dtype", composed),
            compute_dtype=_dtype(m["compute_dtype"], "model.compute_dtype", composed),
            initializer_range=m["initializer_range"], bos_token_id=m["bos_token_id"],
            eos_token_id=m["eos_token_id"], attention_block_size=m["attention_block_size"],
            logits_block_size=m["logits_block_size"])
    except ConfigError as e:
        raise RunConfigError(f"model config ({composed.choices.get('model')}): {e}") from e


def _train_config(t: dict[str, Any], composed: ComposedConfig,
                  lengths: ScheduleLengths) -> TrainConfig:
    o, i = t["optimizer_outer"], t["optimizer_inner"]
    _need(o["optimizer_type"] == "adamw", composed, "training.optimizer_outer.optimizer_type",
          f"only adamw is supported, got {o['optimizer_type']!r}")
    _need(not o["bf16_momentum"], composed, "training.optimizer_outer.bf16_momentum",
          "bf16 optimiser moments are not supported")
    _need(o["emb_wd"], composed, "training.optimizer_outer.emb_wd",
          "false is not supported: weight decay applies to every matrix, embeddings included")
    total, warmup, decay = t["total_steps"], o["lr_warmup_steps"], o["lr_decay_steps"]
    _need(total > 0, composed, _TOTAL, f"must be positive, got {total}")
    _need(0 <= warmup <= total, composed, lengths.given_by[_WARMUP],
          f"lr_warmup_steps={warmup} must lie in [0, training.total_steps={total}]")
    _need(decay >= warmup, composed, lengths.given_by[_DECAY],
          f"lr_decay_steps={decay} must be at least lr_warmup_steps={warmup} (equal: no "
          "cosine phase)")
    _need(t["ilr_warmup_steps"] >= 0, composed, lengths.given_by[_ILR_WARMUP],
          f"must be >= 0, got {t['ilr_warmup_steps']}")
    _need(i["optimizer_type"] == "sgd", composed, "training.optimizer_inner.optimizer_type",
          f"the inner loop is SGD, got {i['optimizer_type']!r}")
    _need(t["spec_outer"] == ["**"], composed, "training.spec_outer",
          f"only ['**'] (train every parameter) is supported, got {t['spec_outer']}")
    _need(t["loss_average"] in LOSS_AVERAGES, composed, "training.loss_average",
          f"{t['loss_average']!r} is not one of {', '.join(LOSS_AVERAGES)}")
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
    _need(platform in (None, "cpu", "gpu", "cuda", "tpu"), composed, "backend.backend",
          f"{platform!r}: expected cpu, gpu or tpu")
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
    _need(mode in (None, *WANDB_MODES), composed, "training.wandb_mode",
          f"{mode!r} is not one of {', '.join(WANDB_MODES)} (or empty: WANDB_MODE, else online)")
    return TrackingSpec(wandb=t["log_wandb"], wandb_entity=t["wandb_entity"],
                        wandb_project=t["wandb_project"], wandb_mode=mode,
                        wandb_key=t["wandb_key"], tensorboard=t["log_tensorboard"])


def tokens_per_step(spec: StageSpec) -> int:
    """Training tokens (targets) consumed by one outer step."""
    return spec.data.global_batch_size * spec.data.seq_len
