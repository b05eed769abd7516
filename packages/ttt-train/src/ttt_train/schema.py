"""The config schema: every key `ttt train` accepts, typed, with its default and meaning.

Field names are the official TTT-E2E keys (plus ours, marked "(ours)"). The dataclasses
are the one home of the schema: `ttt_train.config` stores their defaults in Hydra's
ConfigStore as `<group>/base_<group>` (the names the official files' defaults lists use)
and checks every composed value against their types, strictly (a bool is `true`/`false`,
never 1 or "yes"; a Literal is one of its values); the config reference page is
generated from them (`python -m ttt_train.reference`).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ttt_model.config import ATTENTION_IMPLS

# The dtype spellings configs use -> the names ttt-model takes.
DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
          "f32": "float32", "fp16": "float16", "float16": "float16", "fp64": "float64",
          "float64": "float64"}
# `model.seq_modeling_block` -> ttt-model's attention kind.
BLOCKS = {"self_attention": "full", "SWA": "sliding"}
# Official model keys that are ModelConfig fields under another name (the rest keep theirs).
MODEL_KEYS = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
              "num_key_value_heads": "num_kv_heads", "tie_word_embeddings": "tie_embeddings",
              "sliding_window_size": "sliding_window"}
# The `model.*` keys that describe an architecture (what a checkpoint pins).
ARCHITECTURE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "qkv_bias",
                     "tie_word_embeddings", "rope_theta", "rms_norm_eps", "bos_token_id",
                     "eos_token_id", "qk_norm", "post_norm")
Dtype = Literal[tuple(DTYPES)]  # type: ignore[valid-type]
Block = Literal[tuple(BLOCKS)]  # type: ignore[valid-type]
AttentionImpl = Literal[ATTENTION_IMPLS]  # type: ignore[valid-type]


def key(default: Any, doc: str = "", section: str = "") -> Any:
    """A schema key: its default, what it means, and the paragraph that opens its block."""
    meta = {"doc": doc, "section": section}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def group(cls: type, section: str = "") -> Any:
    """A mapping of keys (`training.optimizer_outer`)."""
    return field(default_factory=cls, metadata={"doc": "", "section": section})


@dataclass(frozen=True)
class OptimizerOuter:
    optimizer_type: Literal['adamw'] = key('adamw', doc='the only outer optimiser')
    init_lr: float = key(0.0)
    end_lr: float = key(1e-05)
    lr: float = key(0.01)
    lr_warmup_steps: int = key(2000)
    lr_decay_steps: int = key(
        '${training.total_steps}',
        doc='cosine horizon (official default 500000)')
    lr_warmup_fraction: float | None = key(None, doc='(ours)')
    lr_decay_fraction: float | None = key(None, doc='(ours)')
    b1: float = key(0.9)
    b2: float = key(0.95)
    clip_gradient: float = key(1.0)
    weight_decay: float = key(0.1)
    bf16_momentum: bool = key(False)
    emb_wd: bool = key(True)


@dataclass(frozen=True)
class OptimizerInner:
    optimizer_type: Literal['sgd'] = key('sgd', doc='the inner loop is plain SGD')
    lr: float = key(1.0)
    clip_gradient: float = key(1.0)


@dataclass(frozen=True)
class LedgerLabels:
    family: str | None = key(
        None,
        section='Stage labels for the ledger (ours); null = inferred from the run.')
    path: Literal['scratch', 'adapter'] | None = key(None)
    stage: Literal['pretrain', 'adapt', 'ext'] | None = key(None)


@dataclass(frozen=True)
class Training:
    exp_name: str = key(
        '???',
        section=('Every training key `ttt train` knows, with its default. Names '
            'follow the official TTT-E2E TrainingConfig; keys marked (ours) are'
            ' extensions.'))
    exp_folder: str = key('demo')
    exp_dir: str = key(
        './experiments',
        doc=('run dirs: <exp_dir>/<exp_folder>/<exp_name>; ledger: '
            '<exp_dir>/ledger.sqlite'))
    checkpoint_path: str = key(
        './checkpoints',
        doc='checkpoints: <checkpoint_path>/<exp_folder>/<exp_name>')
    run_id: str | None = key(None, doc='(ours) ledger run id; null = exp_name')
    train_mode: Literal['pretrain', 'meta'] = key('pretrain')
    load_part: Literal['none', 'params', 'all'] = key(
        'none', doc='none (fresh) | params (weights, step 0) | all (resume)')
    resume_exp_name: str = key(
        '',
        doc='checkpoint to load; "" with load_part=all = this run\'s own')
    resume_step: int | None = key(None, doc='null = the newest step')
    warmstart_recipe: Literal['ttt'] | None = key(
        None, doc='(ours) ttt: add prime MLPs to a checkpoint without them')
    prime_init: Literal['zeros', 'copy', 'normal'] = key(
        'zeros', doc='(ours) zeros is function-preserving')
    model_seed: int = key(0)
    data_seed: int = key(0)
    total_steps: int = key(2500)
    break_step: int = key(-1, doc='stop after this step (checkpointed), schedule unchanged')
    dataset_path: str | None = key('???', doc='token store root (zarr v3 + manifest)')
    dataset_name: str = key('')
    tokenizer_name: str = key('', doc="a local tokenizer folder: checked against the store's hash")
    data_split: str = key('train')
    eval_split: str = key('val')
    document_aligned: bool = key(False, doc='(ours) one window per document start')
    seq_length: int = key(1024)
    global_batch_size: int = key(8)
    accum_steps: int = key(1)
    loader_workers: int = key(4, doc='Grain read threads')
    dummy_dataset: bool = key(False, doc='refused: train on a real (or synthetic) token store')
    eval_mode: bool = key(False, doc='refused: held-out eval runs at the end of training')
    eval_batch_size: int = key(8)
    eval_batches: int = key(1, doc='(ours) held-out batches evaluated at the end; 0 = none')
    inner_remat_freq: int = key(1)
    chunked_swa: bool = key(False, doc='(ours) pretrain SWA chunk by chunk with the carried cache')
    save_checkpoint_freq: int = key(1000, doc='(ours) checkpoint every N steps (and at the end)')
    save_milestone_freq: int = key(0, doc='also checkpoint every N steps (0 = off)')
    keep_checkpoints: int = key(2, doc='(ours) newest checkpoints kept')
    log_freq: int = key(10, doc='(ours) log line every N steps')
    sample_every: int = key(
        0, doc="(ours) log a greedy text sample every N steps (0 = off; needs tokenizer_name)")
    sample_prompt: str = key("The", doc="(ours) the sample's prompt")
    sample_tokens: int = key(32, doc="(ours) new tokens per sample")
    progress: bool = key(True, doc='(ours) progress bar on a terminal')
    log_wandb: bool = key(False, doc='also log metrics to Weights & Biases (ttt-train[wandb])')
    wandb_entity: str | None = key(None)
    wandb_project: str | None = key(None)
    wandb_key: str | None = key(
        None,
        doc='API key, online mode only; never written to a file or log')
    wandb_mode: Literal['', 'online', 'offline', 'disabled'] = key(
        '', doc='(ours) offline needs no network; "" = WANDB_MODE, else online')
    log_tensorboard: bool = key(
        False,
        doc='(ours) event files in <run dir>/tensorboard (ttt-train[tensorboard])')
    n_data_parallel: int | None = key(
        None,
        doc='mesh "data" axis; null = devices / n_state_parallel')
    n_state_parallel: int = key(1, doc='mesh "fsdp" axis')
    spec_outer: list[str] = key(['**'])
    spec_inner: list[str] = key(['**.suffix_blocks.feed_forward_prime.**'])
    ilr_warmup_steps: int = key(
        0,
        section=('Schedule lengths follow total_steps: one pinned in a file older '
            'than the layer that set total_steps (e.g. a family file, then '
            'training.total_steps=40 on the command line) is scaled to the new '
            'total; one set in the same layer as total_steps or a later one is '
            'kept. A *_fraction (ours; null = off) gives the length as a '
            'fraction of total_steps instead; it wins over a length set in an '
            'older layer (setting both in one layer is refused).'))
    ilr_warmup_fraction: float | None = key(None, doc='(ours)')
    ilr_init: float = key(1.0)
    loss_average: Literal['chunk', 'token'] = key(
        'chunk',
        section=('(ours) how the outer loss averages per-token NLL: chunk (official:'
            " each chunk's masked mean, the mean over a sequence's chunks, then"
            " over sequences; pretrain: each sequence's masked mean, then over "
            'sequences) | token (one masked mean over every counted target)'))
    optimizer_outer: OptimizerOuter = group(OptimizerOuter)
    optimizer_inner: OptimizerInner = group(OptimizerInner)
    ledger: LedgerLabels = group(LedgerLabels)


@dataclass(frozen=True)
class Model:
    name: str = key(
        'unnamed',
        section=('Every model key `ttt train` knows, with its default. Names follow '
            'the official TTT-E2E ModelConfig; keys marked (ours) are '
            'extensions for imported families.'))
    vocab_size: int = key(32000)
    output_size: int | None = key(None, doc='must equal vocab_size when set')
    hidden_size: int = key(768)
    intermediate_size: int = key(2048)
    num_hidden_layers: int = key(12)
    num_attention_heads: int = key(12)
    num_key_value_heads: int | None = key(None, doc='(ours) GQA; null = num_attention_heads')
    head_dim: int | None = key(None, doc='(ours) null = hidden_size / num_attention_heads')
    qkv_bias: bool = key(False, doc='(ours) Qwen2 has biases on q, k, v')
    mini_batch_size: int = key(1024, doc='b: TTT chunk length')
    sliding_window_size: int = key(1024, doc='k: keys a query sees in SWA layers')
    seq_modeling_block: Block = key(
        'self_attention', doc='self_attention (full causal) | SWA (sliding window)')
    attention_kinds: list[Literal['full', 'sliding']] | None = key(
        None, doc='(ours) per layer; overrides seq_modeling_block')
    seq_len: int = key(131072, doc='longest context the config is meant for (informational)')
    rms_norm_eps: float = key(1e-06)
    initializer_range: float = key(0.02)
    bos_token_id: int = key(1)
    eos_token_id: int = key(2)
    tie_word_embeddings: bool = key(False)
    rope_theta: float = key(10000.0)
    compute_dtype: Dtype = key('bf16')
    param_dtype: Dtype = key('fp32')
    state_dtype: Dtype = key('fp32')
    suffix_len: int = key(0)
    prime: bool = key(False)
    prime_intermediate_size: int | None = key(None, doc='(ours) null = intermediate_size')
    feed_forward_prime: Literal['swiglu'] = key('swiglu')
    qk_norm: bool = key(True)
    pre_norm: bool = key(True)
    post_norm: bool = key(True)
    attention_block_size: int = key(512, doc='(ours) query block of the memory-linear attention')
    logits_block_size: int = key(
        1024,
        doc='(ours) positions whose logits are live at once in a loss')
    attention_impl: AttentionImpl = key(
        'reference',
        doc=("(ours) reference = XLA; pallas = flash kernels (twice-differentiable in the "
             "meta loss); cudnn = cuDNN for one-shot sequences, Pallas for chunks; auto = "
             "kernels on GPU/TPU, reference on CPU"))
    ttt_suffix_len: int = key(
        0,
        section=("Geometry of this family's TTT-E2E variants, read by experiment "
            'files through interpolation (${model.ttt_suffix_len}); (ours), no '
            'effect by themselves.'))
    ttt_intermediate_size: int | None = key(
        None,
        doc='intermediate_size matching FA parameters with prime MLPs')
    resid_pdrop: float = key(
        0.0,
        section='Dropout: the method uses none; any other value is refused.')
    embd_pdrop: float = key(0.0)
    attn_pdrop: float = key(0.0)
    remat_block: str = key(
        '',
        doc=("'' = none; else a jax.checkpoint_policies policy (nothing_saveable, "
            'everything_saveable, dots_saveable, dots_with_no_batch_dims_saveable, '
            'checkpoint_dots, checkpoint_dots_with_no_batch_dims)'),
        section=('Rematerialisation: `remat_block` recomputes each block in the '
            "backward pass, keeping only what its policy saves: every block's "
            'forward in the pretrain loss, and each suffix block inside the inner '
            'loop of the meta loss (where the official code applies it). It moves '
            'memory and compute, never the numbers beyond float rounding.'))
    remat_prefix_block: str = key(
        '',
        doc=("the same for the meta loss's prefix blocks (run once before the inner loop); "
             "the official default is nothing_saveable, ours '' because at 125m 8K it saves "
             "3% of the E2E step's temp memory for 6% more FLOPs"))
    remat_block_bwd: str = key(
        '',
        section=('Official performance knobs: they never change the numbers; '
            'accepted and not used (ttt-model picks its own rematerialisation '
            'and scans).'))
    remat_attention: str = key('')
    remat_attention_bwd: str = key('')
    remat_mlp: str = key('')
    remat_mlp_bwd: str = key('')
    remat_rms: str = key('')
    remat_rms_bwd: str = key('')
    remat_multiple_gd: str = key('')
    unroll_block_scan: bool = key(False)
    unroll_inner_scan: bool = key(False)
    force_flash: bool = key(False)


@dataclass(frozen=True)
class Backend:
    distributed: bool = key(
        False,
        doc='true: jax.distributed.initialize(...) before anything else',
        section='Where the run executes (official JaxDistributedConfig keys).')
    coordinator_address: str | None = key(
        None,
        doc='host:port of process 0; null = auto (SLURM, TPU, ...)')
    num_processes: int | None = key(None)
    process_id: int | None = key(None)
    local_device_ids: int | list[int] | str | None = key(None, doc='e.g. "0,1"')
    backend: Literal['cpu', 'gpu', 'cuda', 'tpu'] | None = key(None, doc="null = JAX's default")
    num_devices: int | None = key(
        None,
        doc='expected device count (checked); null = whatever is there')
    compilation_cache_dir: str | None = key(
        '/tmp/jax_cache',
        doc='persistent XLA cache; null = off')


@dataclass(frozen=True)
class DeployPaths:
    data: dict[str, str | None] = key(
        {"dclm": "${.dclm_filter_8k}", "dclm_filter_8k": None, "books3": None},
        doc="dataset name -> its token store; any name may be added",
        section=("Site paths, referenced by training files as "
                 "${deploy_paths.data.<name>}. `dclm` and the official name "
                 "`dclm_filter_8k` are one path: set either."))
    checkpoint: str | None = key(None)


GROUPS: dict[str, type] = {"training": Training, "model": Model, "backend": Backend,
                           "deploy_paths": DeployPaths}


def architecture_keys(cfg: Any) -> dict[str, Any]:
    """The `model.*` keys of a ttt-model `ModelConfig`'s architecture (MODEL_KEYS read the
    other way)."""
    return {key: getattr(cfg, MODEL_KEYS.get(key, key)) for key in ARCHITECTURE_KEYS}


def defaults(group: str) -> dict[str, Any]:
    """The group's defaults as a plain mapping (what `<group>/base_<group>` holds)."""
    return dataclasses.asdict(GROUPS[group]())


def key_types() -> dict[str, Any]:
    """Dotted key -> type, for every key of every group."""
    out: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = hints[f.name]

    for name, cls in GROUPS.items():
        walk(cls, f"{name}.")
    return out


@dataclass(frozen=True)
class KeyDoc:
    dotted: str
    default: Any
    type: Any
    doc: str
    section: str


def key_docs(group: str) -> list[KeyDoc]:
    """Every key of `group` in declaration order, with its documentation."""
    out: list[KeyDoc] = []

    def walk(cls: type, prefix: str, instance: Any) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                if f.metadata["section"]:
                    out.append(KeyDoc("", None, None, "", f.metadata["section"]))
                walk(hints[f.name], f"{prefix}{f.name}.", value)
            else:
                out.append(KeyDoc(f"{prefix}{f.name}", value, hints[f.name],
                                  f.metadata["doc"], f.metadata["section"]))

    walk(GROUPS[group], f"{group}.", GROUPS[group]())
    return out
