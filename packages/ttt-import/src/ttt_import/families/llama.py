"""Llama family (SmolLM2): Llama-style decoder, no biases, GQA, optional tied embeddings.

HF Llama has no sliding window, so an SWA model of this family exports as Mistral, which
is the Llama architecture plus `sliding_window` (identical tensor names).
"""

from __future__ import annotations

from typing import Any

from ttt_import.errors import ExportError
from ttt_import.families.base import ConfigReader, Family, common_config, common_hf_config
from ttt_model.config import ModelConfig


class LlamaFamily(Family):
    model_type = "llama"
    architecture = "LlamaForCausalLM"

    def config_from_hf(self, hf: dict[str, Any], source: str) -> ModelConfig:
        r = ConfigReader(hf, source)
        r.refuse("attention_bias", False,
                 "ttt-model has q/k/v biases (qkv_bias) but no output-projection bias")
        return ModelConfig(**common_config(r, name=self.model_type, qkv_bias=False))

    def config_to_hf(self, cfg: ModelConfig) -> dict[str, Any]:
        if any(cfg.attention_kind(i) == "sliding" for i in range(cfg.num_layers)):
            raise ExportError(f"{cfg.name}: HF Llama has no sliding-window attention; "
                              "export it through export_family() (Mistral)")
        if cfg.qkv_bias:
            raise ExportError(f"{cfg.name}: HF Llama's attention_bias also adds an o_proj "
                              "bias; a qkv-bias model exports as qwen2")
        return {**common_hf_config(cfg, self.model_type, self.architecture),
                "attention_bias": False, "mlp_bias": False}

    def export_family(self, cfg: ModelConfig) -> Family:
        kinds = {cfg.attention_kind(i) for i in range(cfg.num_layers)}
        if kinds == {"full"}:
            return self
        if kinds == {"sliding"}:
            from ttt_import.families.mistral import MistralFamily

            return MistralFamily()
        raise ExportError(f"{cfg.name}: mixed full/sliding layers {cfg.attention_kinds} have "
                          "no HF Llama/Mistral counterpart (Mistral slides in every layer)")
