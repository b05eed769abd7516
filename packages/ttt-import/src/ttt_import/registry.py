"""The family registry: every fact the toolkit keeps about a supported public checkpoint.

Profiles (`ttt_import.profiles`), the test stand-ins (`ttt_import.standins`), the pilot's
assets, the ledger's stage plan and the Hydra configs of each family (model, training
budgets, the ten experiments of docs/protocol.md) are all read from `REGISTRY`. Adding a
family is one `RegisteredFamily` entry here, plus a key-map module under
`ttt_import.families` when its architecture (`model_type`) is new.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ttt_import.errors import ProfileError


@dataclass(frozen=True)
class ModelProfile:
    """The pinned architecture facts of one public checkpoint (docs/models.md)."""

    key: str
    hf_id: str
    revision: str  # the hub commit the checkpoint is pinned to
    model_type: str  # config.json's, which picks the key-map module
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool
    qkv_bias: bool
    rope_theta: float
    rms_norm_eps: float
    params: int
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    qk_norm: bool = False
    post_norm: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FullBudget:
    """Steps of the full-size stages: 8K pretraining (adapt stages run as long) and the
    32K extension. `source` says where the numbers come from."""

    pretrain_steps: int
    ext_steps: int
    source: str


@dataclass(frozen=True)
class StandInShape:
    """The pilot's CPU-size model of a family: its architecture (head ratio aside) at a
    size that trains in seconds, with its window, chunk and context scaled to match."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    window: int = 256
    chunk: int = 32
    seq_len: int = 1024
    suffix_len: int = 1


@dataclass(frozen=True)
class RegisteredFamily:
    """A public checkpoint as every part of the toolkit needs it."""

    profile: ModelProfile
    run_prefix: str  # starts its run ids: Q -> Q-A1
    short: str  # names its checkpoints: qwen05 -> import-qwen05-fa-base
    max_position_embeddings: int  # config.json's, for exports and true-size stand-ins
    test_heads: tuple[int, int]  # (heads, kv heads) of the tiny test stand-in
    pilot_vocab_size: int  # the pilot stand-in's locally trained tokenizer
    budget: FullBudget
    pipeline_default: bool = False  # run by `ttt pipeline --model all`
    pilot: StandInShape = StandInShape()

    @property
    def key(self) -> str:
        return self.profile.key

    @property
    def ttt_suffix_len(self) -> int:
        """Prime MLPs in the last quarter of the blocks, as in the paper."""
        return max(1, self.profile.num_layers // 4)

    @property
    def ttt_intermediate_size(self) -> int:
        """The MLP width of a scratch TTT-E2E model whose every MLP, prime MLPs included,
        holds the FA model's MLP parameters: L·I/(L+s), rounded up to a multiple of 128
        (the paper's rule: it gives the paper's own E2E widths from its FA ones)."""
        return matched_intermediate_size(self.profile.num_layers,
                                         self.profile.intermediate_size, self.ttt_suffix_len)


    @property
    def pilot_ttt_intermediate_size(self) -> int:
        return matched_intermediate_size(self.pilot.num_layers, self.pilot.intermediate_size,
                                         self.pilot.suffix_len, multiple=8)


def matched_intermediate_size(num_layers: int, intermediate_size: int, suffix_len: int,
                              multiple: int = 128) -> int:
    exact = num_layers * intermediate_size / (num_layers + suffix_len)
    return math.ceil(exact / multiple) * multiple


_RUNBOOK_QWEN = FullBudget(12000, 300, "the runbook's Qwen2.5-0.5B budget")
_RUNBOOK_SMOL = FullBudget(9600, 240, "the runbook's SmolLM2-360M budget")

REGISTRY: dict[str, RegisteredFamily] = {f.key: f for f in (
    RegisteredFamily(
        ModelProfile("qwen2_5_0_5b", "Qwen/Qwen2.5-0.5B",
                     "060db6499f32faf8b98477b0a26969ef7d8b9987", "qwen2", 24, 896, 14, 2, 4864,
                     151936, True, True, 1_000_000.0, 1e-6, 494_032_768, 151643, 151643),
        run_prefix="Q", short="qwen05", max_position_embeddings=32768, test_heads=(14, 2),
        pilot_vocab_size=640, budget=_RUNBOOK_QWEN, pipeline_default=True),
    RegisteredFamily(
        ModelProfile("smollm2_360m", "HuggingFaceTB/SmolLM2-360M",
                     "f8027fd0eaeea54caa13c31d31b9fdc459c38b49", "llama", 32, 960, 15, 5, 2560,
                     49152, True, False, 100000.0, 1e-5, 361_821_120, 0, 0),
        run_prefix="S", short="smol360", max_position_embeddings=8192, test_heads=(15, 5),
        pilot_vocab_size=512, budget=_RUNBOOK_SMOL, pipeline_default=True),
    RegisteredFamily(
        ModelProfile("smollm2_135m", "HuggingFaceTB/SmolLM2-135M",
                     "93efa2f097d58c2a74874c7e644dbc9b0cee75a2", "llama", 30, 576, 9, 3, 1536,
                     49152, True, False, 100000.0, 1e-5, 134_515_008, 0, 0),
        run_prefix="S135", short="smol135", max_position_embeddings=8192, test_heads=(9, 3),
        pilot_vocab_size=512,
        budget=dataclasses.replace(_RUNBOOK_SMOL, source="borrowed from SmolLM2-360M")),
    RegisteredFamily(
        ModelProfile("qwen2_5_1_5b", "Qwen/Qwen2.5-1.5B",
                     "8faed761d45a263340a0528343f099c05c9a4323", "qwen2", 28, 1536, 12, 2, 8960,
                     151936, True, True, 1_000_000.0, 1e-6, 1_543_714_304, 151643, 151643),
        run_prefix="Q15", short="qwen15", max_position_embeddings=32768, test_heads=(12, 2),
        pilot_vocab_size=640,
        budget=dataclasses.replace(_RUNBOOK_QWEN, source="borrowed from Qwen2.5-0.5B")),
)}


def get_registered(name: str) -> RegisteredFamily:
    """A family by key (qwen2_5_0_5b), checkpoint short name (qwen05) or run prefix (Q)."""
    for family in REGISTRY.values():
        if name in (family.key, family.short, family.run_prefix):
            return family
    known = ", ".join(f"{f.key} ({f.short}, {f.run_prefix})" for f in REGISTRY.values())
    raise ProfileError(f"unknown model family {name!r}; known: {known}")
