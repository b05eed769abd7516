"""Model configuration: one frozen type for the paper family and the Llama/Qwen2 families.

Every architectural difference between families is a field here, never a fork of the
model code. Configs round-trip through plain dicts (JSON/YAML) via `to_dict`/`from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

AttentionKind = Literal["full", "sliding"]

# How attention is computed (`ModelConfig.attention_impl`): "reference" is plain XLA (jnp),
# "pallas" the flash kernels of `ttt_model.flash`, "cudnn" cuDNN's fused attention through
# `jax.nn.dot_product_attention` for one-shot sequences (chunk attention, which the meta
# loss differentiates twice, then takes the Pallas path), "auto" the kernels where they run
# compiled (GPU, TPU) and the reference elsewhere.
ATTENTION_IMPLS = ("reference", "pallas", "cudnn", "auto")

DEFAULT_SPEC_INNER = ("**.suffix_blocks.feed_forward_prime.**",)

# The ready-made policies of `jax.checkpoint_policies` that `remat_block` may name (the
# others there are factories that need arguments). `checkpoint_dots*` are JAX's older names
# of `dots*_saveable`, the spelling the official configs use.
REMAT_POLICIES = ("nothing_saveable", "everything_saveable", "dots_saveable",
                  "checkpoint_dots", "dots_with_no_batch_dims_saveable",
                  "checkpoint_dots_with_no_batch_dims")


class ConfigError(ValueError):
    """A configuration value is missing, out of range or inconsistent with another."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a decoder-only Transformer that may carry TTT-E2E prime MLPs.

    `attention_kinds` gives the kind of each layer (`full` or `sliding`); when None, every
    layer uses `attention`. `suffix_len` counts the last blocks that form the TTT suffix;
    `prime` adds an inner-loop MLP ("prime MLP") to each suffix block.
    """

    name: str = "custom"
    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    tie_embeddings: bool = True
    qkv_bias: bool = False
    qk_norm: bool = False
    post_norm: bool = False
    attention: AttentionKind = "full"
    attention_kinds: tuple[AttentionKind, ...] | None = None
    sliding_window: int = 8192
    mini_batch_size: int = 1024
    suffix_len: int = 0
    prime: bool = False
    prime_intermediate_size: int | None = None
    param_dtype: str = "float32"
    compute_dtype: str = "float32"
    initializer_range: float = 0.02
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    # Queries per block of one-shot attention: the score tiles of 512 stay small enough that
    # an 8K fwd+bwd runs twice as fast on CPU as with 1024, in less memory (bench/model.py).
    attention_block_size: int = 512
    logits_block_size: int = 1024  # positions whose logits are live at once in a loss
    # Rematerialisation of each block's forward in the training losses (the official
    # `remat_block`): "" = none (every activation is kept for the backward pass); otherwise
    # the `jax.checkpoint_policies` policy naming what a block may keep, the rest being
    # recomputed in the backward pass. Never changes the numbers beyond float rounding.
    remat_block: str = ""
    # The same for the prefix blocks of the meta loss (the official `remat_prefix_block`),
    # which run once over the whole sequence before the inner loop: their activations would
    # otherwise be held through the whole inner loop and its backward pass.
    remat_prefix_block: str = ""
    attention_impl: str = "reference"  # one of ATTENTION_IMPLS

    def __post_init__(self) -> None:
        if self.attention_kinds is not None and not isinstance(self.attention_kinds, tuple):
            object.__setattr__(self, "attention_kinds", tuple(self.attention_kinds))
        self.validate()

    # ----- derived -----
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def prime_inter(self) -> int:
        return self.prime_intermediate_size or self.intermediate_size

    @property
    def num_prefix_layers(self) -> int:
        return self.num_layers - self.suffix_len

    def attention_kind(self, layer: int) -> AttentionKind:
        if self.attention_kinds is not None:
            return self.attention_kinds[layer]
        return self.attention

    def window(self, layer: int) -> int | None:
        """Keys visible to a query (itself included); None means unbounded (full causal)."""
        return self.sliding_window if self.attention_kind(layer) == "sliding" else None

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"ModelConfig '{self.name}': {msg}")

        for f in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                  "sliding_window", "mini_batch_size", "attention_block_size",
                  "logits_block_size"):
            need(getattr(self, f) > 0, f"{f} must be positive, got {getattr(self, f)}")
        need(self.num_heads % self.kv_heads == 0,
             f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.kv_heads}")
        need(self.head_dim is not None or self.hidden_size % self.num_heads == 0,
             f"hidden_size={self.hidden_size} not divisible by num_heads={self.num_heads}; "
             "set head_dim")
        need(self.dim_per_head % 2 == 0, f"head_dim={self.dim_per_head} must be even for RoPE")
        need(0 <= self.suffix_len <= self.num_layers,
             f"suffix_len={self.suffix_len} must lie in [0, num_layers={self.num_layers}]")
        need(not self.prime or self.suffix_len > 0, "prime=True needs suffix_len > 0")
        need(self.attention in ("full", "sliding"),
             f"attention must be 'full' or 'sliding', got {self.attention!r}")
        if self.attention_kinds is not None:
            need(len(self.attention_kinds) == self.num_layers,
                 f"attention_kinds has {len(self.attention_kinds)} entries, "
                 f"expected num_layers={self.num_layers}")
            bad = [k for k in self.attention_kinds if k not in ("full", "sliding")]
            need(not bad, f"attention_kinds holds unknown kinds {bad}")
        for f in ("param_dtype", "compute_dtype"):
            need(getattr(self, f) in ("float32", "bfloat16", "float16", "float64"),
                 f"{f} must be a float dtype name, got {getattr(self, f)!r}")
        need(self.attention_impl in ATTENTION_IMPLS,
             f"attention_impl must be one of {list(ATTENTION_IMPLS)}, "
             f"got {self.attention_impl!r}")
        for f in ("remat_block", "remat_prefix_block"):
            need(getattr(self, f) in ("", *REMAT_POLICIES),
                 f"{f} must be '' (no rematerialisation) or a jax.checkpoint_policies "
                 f"policy {list(REMAT_POLICIES)}, got {getattr(self, f)!r}")

    # ----- serialisation -----
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["attention_kinds"] is not None:
            d["attention_kinds"] = list(d["attention_kinds"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown keys {unknown}; "
                              f"known keys are {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class _PaperSize:
    layers: int
    hidden: int
    heads: int
    inter_fa: int
    inter_e2e: int
    suffix_len: int


# The paper's own family (docs/models.md) (Llama-3 tokenizer, QK-norm, pre+post norm, tied).
_PAPER_SIZES: dict[str, _PaperSize] = {
    "125m": _PaperSize(12, 768, 12, 2048, 1664, 3),
    "350m": _PaperSize(24, 1024, 16, 2816, 2304, 6),
    "760m": _PaperSize(24, 1536, 16, 4096, 3328, 6),
    "1b": _PaperSize(24, 2048, 32, 5376, 4352, 6),
    "3b": _PaperSize(32, 2560, 32, 6912, 5632, 8),
}

PAPER_SIZES = tuple(_PAPER_SIZES)


def paper_config(size: str, variant: Literal["fa", "swa", "e2e"] = "fa", **overrides: Any
                 ) -> ModelConfig:
    """The paper's model of `size` as full attention, sliding window, or TTT-E2E.

    E2E shrinks `intermediate_size` so total parameters match FA (docs/models.md).
    """
    if size not in _PAPER_SIZES:
        raise ConfigError(f"unknown paper size {size!r}; choose from {list(_PAPER_SIZES)}")
    if variant not in ("fa", "swa", "e2e"):
        raise ConfigError(f"unknown variant {variant!r}; choose fa, swa or e2e")
    s = _PAPER_SIZES[size]
    e2e = variant == "e2e"
    base = dict(
        name=f"paper-{size}-{variant}",
        vocab_size=128256,
        hidden_size=s.hidden,
        intermediate_size=s.inter_e2e if e2e else s.inter_fa,
        num_layers=s.layers,
        num_heads=s.heads,
        rope_theta=500_000.0,
        rms_norm_eps=1e-6,
        tie_embeddings=True,
        qk_norm=True,
        post_norm=True,
        attention="full" if variant == "fa" else "sliding",
        sliding_window=8192,
        mini_batch_size=1024,
        suffix_len=s.suffix_len if e2e else 0,
        prime=e2e,
        bos_token_id=128000,
        eos_token_id=128001,
    )
    base.update(overrides)
    return ModelConfig(**base)


def tiny_config(variant: Literal["fa", "swa", "e2e"] = "fa", **overrides: Any) -> ModelConfig:
    """The tiny config (docs/models.md) (vocab 512, hidden 64, 4 layers, 4 heads; E2E: inter 96,
    suffix 1, b 256, window 512) used for CPU wall-clock comparisons."""
    e2e = variant == "e2e"
    base = dict(
        name=f"tiny-{variant}",
        vocab_size=512,
        hidden_size=64,
        intermediate_size=96 if e2e else 128,
        num_layers=4,
        num_heads=4,
        qk_norm=True,
        post_norm=True,
        attention="full" if variant == "fa" else "sliding",
        sliding_window=512,
        mini_batch_size=256,
        suffix_len=1 if e2e else 0,
        prime=e2e,
        bos_token_id=0,
        eos_token_id=1,
        attention_block_size=256,
    )
    base.update(overrides)
    return ModelConfig(**base)


LOSS_AVERAGES = ("chunk", "token")


@dataclass(frozen=True)
class TrainConfig:
    """Outer-loop (and inner-loop) optimisation settings for one training stage.

    Names follow the official TTT-E2E experiment files where one exists
    (`train_mode`, `spec_inner`, `ilr_init`, ...).
    """

    train_mode: Literal["pretrain", "meta"] = "pretrain"
    total_steps: int = 100
    lr: float = 3e-3
    init_lr: float = 0.0
    end_lr: float = 1e-5
    warmup_steps: int = 10
    decay_steps: int | None = None  # warmup + cosine length; None = total_steps
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    # inner loop
    inner_lr: float = 1.0
    inner_clip: float = 1.0
    ilr_init: float = 0.1
    ilr_warmup_steps: int = 0
    spec_inner: tuple[str, ...] = field(default=DEFAULT_SPEC_INNER)
    remat_every: int = 1
    # pretrain mode: run sliding attention chunk by chunk with the carried cache
    chunked_swa: bool = False
    # how the outer loss averages per-token NLL: "chunk" (the official convention: each
    # chunk's masked mean, the mean over a sequence's chunks, then the mean over sequences;
    # in pretrain mode, each sequence's masked mean, then the mean over sequences) or
    # "token" (one masked mean over every counted target of the batch)
    loss_average: Literal["chunk", "token"] = "chunk"

    def __post_init__(self) -> None:
        if isinstance(self.spec_inner, str):
            object.__setattr__(self, "spec_inner", (self.spec_inner,))
        elif not isinstance(self.spec_inner, tuple):
            object.__setattr__(self, "spec_inner", tuple(self.spec_inner))
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"TrainConfig: {msg}")
        need(self.train_mode in ("pretrain", "meta"),
             f"train_mode must be 'pretrain' or 'meta', got {self.train_mode!r}")
        need(self.total_steps > 0, f"total_steps must be positive, got {self.total_steps}")
        need(0 <= self.warmup_steps <= self.total_steps,
             f"warmup_steps={self.warmup_steps} must lie in [0, total_steps={self.total_steps}]")
        need(self.decay_steps is None or self.decay_steps >= self.warmup_steps,
             f"decay_steps={self.decay_steps} must be at least warmup_steps="
             f"{self.warmup_steps} (equal: no cosine phase)")
        need(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        need(self.remat_every >= 1, f"remat_every must be >= 1, got {self.remat_every}")
        need(self.ilr_warmup_steps >= 0, "ilr_warmup_steps must be >= 0")
        need(self.loss_average in LOSS_AVERAGES,
             f"loss_average must be one of {list(LOSS_AVERAGES)}, got {self.loss_average!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec_inner"] = list(d["spec_inner"])
        return d
