"""Export FA and SWA checkpoints back to Hugging Face format (safetensors + config.json).

The family comes from the checkpoint's import metadata (or is given). SWA models of the
Llama family export as Mistral (HF Llama has no sliding window; Mistral is Llama plus
`sliding_window`); Qwen2 expresses SWA with its own `use_sliding_window`/`layer_types`.
TTT models are refused: their prime MLPs and inner loop have no transformers counterpart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from ttt_import.checkpoints import flatten, load_model
from ttt_import.errors import ExportError
from ttt_import.families import Family, get_family
from ttt_import.staging import check_destination, staged_directory
from ttt_model.checkpoint import CheckpointError, read_meta, read_model_config
from ttt_model.config import ModelConfig

# Non-architectural config.json keys carried over from the imported snapshot.
CARRIED_KEYS = ("max_position_embeddings", "pad_token_id", "bos_token_id", "eos_token_id")


def _family_of(cfg: ModelConfig, meta: dict[str, Any], family: str | None) -> Family:
    if family is not None:
        return get_family(family, "--family")
    source = meta.get("source") or {}
    if source.get("family"):
        return get_family(source["family"], "checkpoint metadata")
    if cfg.qk_norm or cfg.post_norm:
        raise ExportError(f"{cfg.name}: qk_norm/post_norm (the paper's own family) have no "
                          "Llama/Qwen2 counterpart in transformers")
    return get_family("qwen2" if cfg.qkv_bias else "llama")


def export_checkpoint(checkpoint_dir: str | Path, out_dir: str | Path, *,
                      family: str | None = None) -> Path:
    """Write `out_dir` as an HF snapshot (model.safetensors + config.json) of the FA/SWA
    model in `checkpoint_dir`; `from_pretrained(out_dir)` computes the same logits."""
    check_destination(out_dir)
    try:
        cfg = read_model_config(checkpoint_dir)
        meta = read_meta(checkpoint_dir)
    except (CheckpointError, FileNotFoundError) as e:
        raise ExportError(f"{checkpoint_dir}: not a readable ttt-model checkpoint ({e})"
                          ) from None
    if cfg.prime or cfg.suffix_len:
        raise ExportError(
            f"{checkpoint_dir}: model {cfg.name!r} is a TTT model (prime={cfg.prime}, "
            f"suffix_len={cfg.suffix_len}); its prime MLPs and test-time inner loop have no "
            "transformers counterpart. Export FA or SWA checkpoints only.")
    fam = _family_of(cfg, meta, family).export_family(cfg)
    hf_config = fam.config_to_hf(cfg)
    source_cfg = (meta.get("source") or {}).get("hf_config") or {}
    hf_config.update({k: source_cfg[k] for k in CARRIED_KEYS if k in source_cfg})
    if cfg.attention == "sliding" or cfg.attention_kinds:
        hf_config["max_position_embeddings"] = max(hf_config.get("max_position_embeddings", 0),
                                                   cfg.sliding_window)
    try:  # every array is checked (checksums, NaN/Inf) as it is read
        params = flatten(load_model(checkpoint_dir))
    except CheckpointError as e:
        raise ExportError(f"{checkpoint_dir}: refused, nothing written ({e})") from None
    dtype = np.dtype(np.float32) if cfg.param_dtype == "float32" else None
    tensors = {}
    for link in fam.links(cfg):
        x = params.pop(link.ours)
        x = x.T if link.transpose else x
        tensors[link.hf] = np.ascontiguousarray(x, dtype=dtype or x.dtype)
    if params:
        raise ExportError(f"{checkpoint_dir}: parameters with no {fam.model_type} tensor: "
                          f"{sorted(params)[:5]}")
    hf_config["torch_dtype"] = str(next(iter(tensors.values())).dtype)
    with staged_directory(out_dir) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    return Path(out_dir)
