"""What every family module provides, and the Llama-style decoder layout most share.

A family maps a Hugging Face `config.json` to a `ModelConfig` and back, and lists the
links between HF tensor names and our parameter paths. HF linear weights are [out, in];
our kernels are [in, out], so kernel links transpose. RoPE needs no permutation: HF
Llama/Qwen2 and ttt-model both use the "halves" layout (docs/models.md).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttt_import.errors import ExportError, SnapshotError
from ttt_model.config import ModelConfig


@dataclass(frozen=True)
class TensorLink:
    """One HF tensor and the parameter it becomes; `transpose` for [out,in] -> [in,out]."""

    ours: str
    hf: str
    transpose: bool


def block_path(cfg: ModelConfig, layer: int) -> str:
    """Our path prefix of layer `layer`: the last `suffix_len` layers are suffix blocks."""
    n_pre = cfg.num_prefix_layers
    return f"prefix_blocks.{layer}" if layer < n_pre else f"suffix_blocks.{layer - n_pre}"


class ConfigReader:
    """Reads fields of a config.json, naming the file and key in every error."""

    def __init__(self, hf: dict[str, Any], source: str):
        self.hf, self.source = hf, source

    def get(self, key: str, default: Any = None) -> Any:
        return self.hf.get(key, default)

    def need(self, key: str) -> Any:
        if self.hf.get(key) is None:
            raise SnapshotError(f"{self.source}: missing required key {key!r}")
        return self.hf[key]

    def refuse(self, key: str, allowed: Any, why: str) -> None:
        value = self.hf.get(key, allowed)
        ok = value in allowed if isinstance(allowed, tuple) else value == allowed
        if not ok:
            raise SnapshotError(f"{self.source}: {key}={value!r} is not supported "
                                f"(expected {allowed!r}): {why}")

    def rope_theta(self) -> float:
        """rope_theta from the top level (transformers 4) or rope_parameters (transformers 5)."""
        params = self.hf.get("rope_parameters") or {}
        scaling = self.hf.get("rope_scaling") or {}
        for where, p in (("rope_parameters", params), ("rope_scaling", scaling)):
            kind = p.get("rope_type", p.get("type", "default"))
            if kind != "default":
                raise SnapshotError(f"{self.source}: {where}.rope_type={kind!r} is not "
                                    "supported (ttt-model implements plain RoPE only)")
        theta = self.hf.get("rope_theta", params.get("rope_theta"))
        if theta is None:
            raise SnapshotError(f"{self.source}: no rope_theta (top level or "
                                "rope_parameters.rope_theta)")
        return float(theta)

    def token_id(self, key: str) -> int | None:
        value = self.hf.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        return None if value is None else int(value)


class Family(ABC):
    """One Hugging Face architecture (`model_type`) and how its tensors map to ours."""

    model_type: str
    architecture: str

    @abstractmethod
    def config_from_hf(self, hf: dict[str, Any], source: str) -> ModelConfig:
        """Our config of the snapshot's model as it is (full attention unless the snapshot
        says otherwise); `source` names config.json in errors."""

    @abstractmethod
    def config_to_hf(self, cfg: ModelConfig) -> dict[str, Any]:
        """A config.json for `cfg` that transformers' `from_pretrained` loads."""

    def export_family(self, cfg: ModelConfig) -> Family:
        """The family that can express `cfg` in HF format (override to switch, e.g. SWA)."""
        return self

    # ----- tensors -----
    def layer_links(self, cfg: ModelConfig, layer: int) -> list[TensorLink]:
        p, h = block_path(cfg, layer), f"model.layers.{layer}"
        links = [TensorLink(f"{p}.attention.{n}_proj.kernel", f"{h}.self_attn.{n}_proj.weight",
                            True) for n in ("q", "k", "v", "o")]
        if cfg.qkv_bias:
            links += [TensorLink(f"{p}.attention.{n}_proj.bias", f"{h}.self_attn.{n}_proj.bias",
                                 False) for n in ("q", "k", "v")]
        links += [TensorLink(f"{p}.feed_forward.{n}_proj.kernel", f"{h}.mlp.{n}_proj.weight",
                             True) for n in ("gate", "up", "down")]
        links += [TensorLink(f"{p}.pre_attn_norm.scale", f"{h}.input_layernorm.weight", False),
                  # HF's "post_attention_layernorm" is the norm *before* the MLP
                  TensorLink(f"{p}.pre_mlp_norm.scale", f"{h}.post_attention_layernorm.weight",
                             False)]
        return links

    def links(self, cfg: ModelConfig) -> list[TensorLink]:
        """Every HF tensor of a model with config `cfg` (prime MLPs have none)."""
        out = [TensorLink("embed", "model.embed_tokens.weight", False),
               TensorLink("final_norm.scale", "model.norm.weight", False)]
        if not cfg.tie_embeddings:
            out.append(TensorLink("lm_head", "lm_head.weight", True))
        for layer in range(cfg.num_layers):
            out += self.layer_links(cfg, layer)
        return out

    def derived_buffer(self, name: str, value: np.ndarray, cfg: ModelConfig) -> str | None:
        """Justification for a stored non-parameter tensor we recompute, or None if it is not
        one (or disagrees with what we would compute)."""
        if re.fullmatch(r"(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq", name):
            d = cfg.dim_per_head
            expect = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
            if value.shape == expect.shape and np.allclose(value, expect, rtol=1e-3):
                return ("RoPE inverse frequencies: a buffer ttt-model recomputes from "
                        f"rope_theta={cfg.rope_theta:g} (checked equal)")
        return None



def common_config(r: ConfigReader, *, name: str, qkv_bias: bool) -> dict[str, Any]:
    """The Llama-style fields of a config.json as ModelConfig keyword arguments."""
    r.refuse("hidden_act", ("silu", "swish"), "ttt-model's MLP is SwiGLU (SiLU gate)")
    r.refuse("mlp_bias", False, "ttt-model's MLP projections have no bias")
    hidden, heads = int(r.need("hidden_size")), int(r.need("num_attention_heads"))
    head_dim = r.get("head_dim")
    head_dim = int(head_dim) if head_dim is not None else hidden // heads
    if r.get("head_dim") is None and hidden % heads:
        raise SnapshotError(f"{r.source}: hidden_size={hidden} is not a multiple of "
                            f"num_attention_heads={heads} and no head_dim is given")
    return dict(
        name=name,
        vocab_size=int(r.need("vocab_size")),
        hidden_size=hidden,
        intermediate_size=int(r.need("intermediate_size")),
        num_layers=int(r.need("num_hidden_layers")),
        num_heads=heads,
        num_kv_heads=int(r.get("num_key_value_heads") or heads),
        head_dim=head_dim,
        rope_theta=r.rope_theta(),
        rms_norm_eps=float(r.need("rms_norm_eps")),
        tie_embeddings=bool(r.get("tie_word_embeddings", False)),
        qkv_bias=qkv_bias,
        qk_norm=False,
        post_norm=False,
        attention="full",
        initializer_range=float(r.get("initializer_range", 0.02)),
        bos_token_id=r.token_id("bos_token_id"),
        eos_token_id=r.token_id("eos_token_id"),
    )


def common_hf_config(cfg: ModelConfig, model_type: str, architecture: str) -> dict[str, Any]:
    """Llama-style config.json fields of `cfg` (float32 weights)."""
    if cfg.qk_norm or cfg.post_norm:
        raise ExportError(f"{cfg.name}: qk_norm/post_norm have no counterpart in HF "
                          f"{model_type}; this model cannot be exported as {architecture}")
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.dim_per_head,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.initializer_range,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "max_position_embeddings": 32768,
        "torch_dtype": "float32",
        "use_cache": True,
    }

