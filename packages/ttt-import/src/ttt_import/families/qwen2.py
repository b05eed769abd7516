"""Qwen2 family (Qwen2.5): Llama-style decoder with q/k/v biases, GQA, tied embeddings.

Qwen2 configs carry their own sliding-window switches (`use_sliding_window`,
`max_window_layers`, `layer_types`), so SWA models export as qwen2 directly.
"""

from __future__ import annotations

from typing import Any

from ttt_import.families.base import ConfigReader, Family, common_config, common_hf_config
from ttt_model.config import ModelConfig


class Qwen2Family(Family):
    model_type = "qwen2"
    architecture = "Qwen2ForCausalLM"

    def config_from_hf(self, hf: dict[str, Any], source: str) -> ModelConfig:
        r = ConfigReader(hf, source)
        kw = common_config(r, name=self.model_type, qkv_bias=True)
        window = hf.get("sliding_window") if hf.get("use_sliding_window") else None
        if window is not None:
            n = kw["num_layers"]
            types = hf.get("layer_types") or [
                "sliding_attention" if i >= int(hf.get("max_window_layers", n)) else
                "full_attention" for i in range(n)]
            kinds = tuple("sliding" if t == "sliding_attention" else "full" for t in types)
            if len(set(kinds)) == 1:
                kw.update(attention=kinds[0])
            else:
                kw.update(attention_kinds=kinds)
            kw.update(sliding_window=int(window))
        return ModelConfig(**kw)

    def config_to_hf(self, cfg: ModelConfig) -> dict[str, Any]:
        kinds = [cfg.attention_kind(i) for i in range(cfg.num_layers)]
        sliding = "sliding" in kinds
        first_sliding = kinds.index("sliding") if sliding else cfg.num_layers
        return {**common_hf_config(cfg, self.model_type, self.architecture),
                "use_sliding_window": sliding,
                "sliding_window": cfg.sliding_window if sliding else None,
                "max_window_layers": first_sliding,
                "layer_types": [f"{k}_attention" for k in kinds]}
