"""Mistral family: the Llama architecture with a sliding window in every layer.

Used to export SWA models of the Llama family, and to import Mistral-architecture snapshots.
"""

from __future__ import annotations

from typing import Any

from ttt_import.errors import ExportError
from ttt_import.families.base import ConfigReader, Family, common_config, common_hf_config
from ttt_model.config import ModelConfig


class MistralFamily(Family):
    model_type = "mistral"
    architecture = "MistralForCausalLM"

    def config_from_hf(self, hf: dict[str, Any], source: str) -> ModelConfig:
        r = ConfigReader(hf, source)
        kw = common_config(r, name=self.model_type, qkv_bias=False)
        window = hf.get("sliding_window")
        if window is not None:
            kw.update(attention="sliding", sliding_window=int(window))
        return ModelConfig(**kw)

    def config_to_hf(self, cfg: ModelConfig) -> dict[str, Any]:
        kinds = {cfg.attention_kind(i) for i in range(cfg.num_layers)}
        if len(kinds) > 1:
            raise ExportError(f"{cfg.name}: Mistral slides in every layer or none; this model "
                              f"mixes {cfg.attention_kinds}")
        if cfg.qkv_bias:
            raise ExportError(f"{cfg.name}: Mistral has no attention biases; export as qwen2")
        return {**common_hf_config(cfg, self.model_type, self.architecture),
                "sliding_window": cfg.sliding_window if kinds == {"sliding"} else None}
