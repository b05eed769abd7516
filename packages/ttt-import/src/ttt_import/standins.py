"""Local stand-ins of the profiled checkpoints: random-weight HF snapshots built offline.

Tests, the pilot and benchmarks cannot download the real checkpoints, so they build
snapshots with the same family structure (GQA ratio, q/k/v biases, tying) locally:

- `build_hf_snapshot`: with `transformers` (the reference implementation builds and saves
  the model; `save_pretrained(safe_serialization=True)`), for parity tests.
- `write_random_snapshot`: numpy only, straight to safetensors, for large stand-ins where
  only reading speed and memory matter (benchmarks).
- `pretrain_hf_snapshot`: a miniature "public checkpoint" for the pilot's warm-start
  path: HF's own initialisation, trained by `transformers` (PyTorch) on a token array, so
  the weights we import already model the data as a real pretrained model would.

Random weights are scaled so activations and logits are O(1) (the HF default std of 0.02
makes every logit nearly zero, which would hide mapping errors from a parity check).
Random weights model nothing, so warm-starting from them says nothing about warm starts:
that is what the pretrained stand-in is for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

from ttt_import.checkpoints import param_shapes
from ttt_import.families import get_family
from ttt_import.profiles import get_profile, profile_model_config
from ttt_import.registry import REGISTRY


def tiny_hf_config(key: str, **overrides: Any) -> dict[str, Any]:
    """config.json fields of a test-size model shaped like profile `key`: the same family,
    head ratio (the registry's `test_heads`), biases and tying; 2 layers, head_dim 8,
    vocab 256."""
    profile = get_profile(key)
    heads, kv_heads = REGISTRY[key].test_heads
    cfg = {
        "model_type": profile.model_type,
        "vocab_size": 256,
        "hidden_size": heads * 8,
        "intermediate_size": heads * 8 * 2 + 16,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": 8,
        "rope_theta": profile.rope_theta,
        "rms_norm_eps": profile.rms_norm_eps,
        "tie_word_embeddings": profile.tie_embeddings,
        "max_position_embeddings": 4096,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    cfg.update(overrides)
    return cfg


def true_size_hf_config(key: str) -> dict[str, Any]:
    """config.json fields of profile `key` at its true size (docs/models.md)."""
    profile = get_profile(key)
    hf = get_family(profile.model_type).config_to_hf(profile_model_config(profile))
    hf["max_position_embeddings"] = REGISTRY[key].max_position_embeddings
    return hf


def _torch_config(hf: dict[str, Any]):
    import transformers

    kw = {k: v for k, v in hf.items() if k not in ("model_type", "architectures",
                                                      "torch_dtype")}
    cls = transformers.CONFIG_MAPPING[hf["model_type"]]
    return cls(**kw)


def build_hf_snapshot(directory: str | Path, hf: dict[str, Any], *, seed: int = 0,
                      dtype: str = "float32", max_shard_size: str | None = None) -> Path:
    """Build the HF model `hf` describes with transformers, randomise its weights to O(1)
    activations, and `save_pretrained` it (safetensors) into `directory`."""
    import torch
    import transformers

    config = _torch_config(hf)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(seed)
    embed_std = 3.0 / math.sqrt(config.hidden_size)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_tokens" in name or name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * embed_std)
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:  # [out, in] linear weights
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
    model = model.to(getattr(torch, dtype))
    directory = Path(directory)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(directory, safe_serialization=True, **kw)
    return directory


def write_random_snapshot(directory: str | Path, hf: dict[str, Any], *, seed: int = 0,
                          dtype: str = "bfloat16") -> Path:
    """A single-file safetensors snapshot of random weights for config `hf`, written with
    numpy only (tensor names and shapes from the family key map)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    family = get_family(hf["model_type"])
    cfg = family.config_from_hf(hf, "config.json")
    shapes = param_shapes(cfg)
    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for link in family.links(cfg):
        shape = tuple(shapes[link.ours].shape)
        shape = shape[::-1] if link.transpose else shape
        if link.hf.endswith("norm.weight"):
            x = 1.0 + 0.1 * rng.standard_normal(shape, np.float32)
        elif link.hf.endswith(".bias"):
            x = 0.1 * rng.standard_normal(shape, np.float32)
        elif "embed_tokens" in link.hf or link.hf == "lm_head.weight":
            x = rng.standard_normal(shape, np.float32) * (3.0 / math.sqrt(cfg.hidden_size))
        else:
            x = rng.standard_normal(shape, np.float32) / math.sqrt(shape[1])
        tensors[link.hf] = x.astype(np_dtype)
        del x
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps({**hf, "torch_dtype": dtype}, indent=2))
    return directory


def pretrain_hf_snapshot(directory: str | Path, hf: dict[str, Any], tokens: np.ndarray, *,
                         steps: int, seq_len: int, batch_size: int, lr: float = 3e-3,
                         warmup_steps: int = 10, seed: int = 0,
                         progress: bool = True) -> list[float]:
    """Train the HF model `hf` describes (HF initialisation) as a causal LM on random
    windows of `tokens` with AdamW, warmup then cosine, and `save_pretrained` it into
    `directory`; returns the per-step training losses."""
    import torch
    import transformers
    from tqdm.auto import tqdm

    ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    if ids.ndim != 1 or ids.numel() < seq_len + 1:
        raise ValueError(f"pretraining a stand-in needs a flat token array of at least "
                         f"seq_len+1={seq_len + 1} tokens; got shape {tuple(ids.shape)}")
    if int(ids.max()) >= hf["vocab_size"]:
        raise ValueError(f"token id {int(ids.max())} >= the stand-in's vocab_size "
                         f"{hf['vocab_size']}")
    if not 0 <= warmup_steps < steps:
        raise ValueError(f"warmup_steps={warmup_steps} must lie in [0, steps={steps})")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(_torch_config(hf))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)

    def lr_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"pretrain {hf['model_type']} stand-in", disable=not progress)
    for _ in bar:
        starts = torch.randint(0, ids.numel() - seq_len, (batch_size,), generator=gen)
        batch_BxT = torch.stack([ids[s:s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch_BxT, labels=batch_BxT).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"stand-in pretraining diverged at step {len(losses) + 1}: "
                                     f"loss {loss.item()}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.save_pretrained(Path(directory), safe_serialization=True)
    return losses
