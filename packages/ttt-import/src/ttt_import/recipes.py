"""Conversion recipes: what an imported model becomes (docs/protocol.md).

- `fa`: the pretrained model as it is (full attention).
- `swa`: sliding-window attention with window K in every layer; weights unchanged.
- `ttt`: sliding attention (window K) in every layer, plus a prime MLP (with its own
  pre-norm) in each of the last `suffix_len` blocks. The pretrained MLPs stay whole.
  Prime init: `zeros` (gate/up random normal, down projection zero: the block's output is
  unchanged, so the model computes the pretrained function at step 0), `copy` (the
  block's own MLP and its pre-norm, duplicated), or `normal` (random normal, std
  initializer_range).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ttt_import.errors import ImportFailure
from ttt_import.families import block_path
from ttt_model.config import ModelConfig

RecipeKind = Literal["fa", "swa", "ttt"]
PrimeInit = Literal["zeros", "copy", "normal"]
DEFAULT_WINDOW = 8192  # the paper's window
RECIPES = ("fa", "swa", "ttt")
PRIME_INITS = ("zeros", "copy", "normal")


@dataclass(frozen=True)
class Recipe:
    kind: RecipeKind = "fa"
    window: int | None = None  # swa/ttt; default DEFAULT_WINDOW
    suffix_len: int | None = None  # ttt; default a quarter of the depth
    prime_init: PrimeInit = "zeros"
    mini_batch_size: int | None = None  # TTT chunk size b; default: ModelConfig's
    seed: int = 0  # for random prime weights

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ImportFailure(f"recipe {self.kind!r}: {msg}")

        need(self.kind in RECIPES, f"unknown recipe; choose from {RECIPES}")
        need(self.prime_init in PRIME_INITS, f"prime_init must be one of {PRIME_INITS}, "
                                             f"got {self.prime_init!r}")
        need(self.kind != "fa" or self.window is None,
             "--window applies to swa/ttt (fa keeps full attention)")
        need(self.kind == "ttt" or self.suffix_len is None, "--suffix-len applies to ttt only")
        need(self.window is None or self.window > 0, f"window must be positive, got "
                                                     f"{self.window}")
        need(self.mini_batch_size is None or self.mini_batch_size > 0,
             f"mini_batch_size must be positive, got {self.mini_batch_size}")

    @property
    def function_preserving_within_window(self) -> bool:
        """Whether the converted model equals the pretrained one on sequences no longer than
        the window (what `zeros` buys)."""
        return self.kind != "ttt" or self.prime_init == "zeros"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConfigChange:
    field: str
    before: Any
    after: Any
    justification: str


@dataclass(frozen=True)
class NewParameter:
    path: str
    shape: tuple[int, ...]
    init: str
    justification: str


def apply_recipe(base: ModelConfig, recipe: Recipe) -> tuple[ModelConfig, list[ConfigChange]]:
    """The converted model's config and every way it differs from the snapshot's."""
    changes: dict[str, Any] = {}
    why: dict[str, str] = {}
    if recipe.kind in ("swa", "ttt"):
        window = recipe.window or DEFAULT_WINDOW
        changes.update(attention="sliding", attention_kinds=None, sliding_window=window)
        why.update(attention=f"recipe {recipe.kind}: sliding-window attention in every layer",
                   attention_kinds=f"recipe {recipe.kind}: every layer slides",
                   sliding_window=f"recipe {recipe.kind}: window K={window}")
    if recipe.kind == "ttt":
        n = recipe.suffix_len if recipe.suffix_len is not None else max(1, base.num_layers // 4)
        if not 1 <= n <= base.num_layers:
            raise ImportFailure(f"recipe ttt: suffix_len={n} must lie in [1, num_layers="
                                f"{base.num_layers}]")
        changes.update(suffix_len=n, prime=True, prime_intermediate_size=None)
        why.update(suffix_len=f"recipe ttt: the last {n} blocks form the TTT suffix",
                   prime="recipe ttt: prime MLPs (inner weights) in the suffix blocks",
                   prime_intermediate_size="prime MLPs as wide as the pretrained MLPs")
    if recipe.mini_batch_size is not None:
        changes["mini_batch_size"] = recipe.mini_batch_size
        why["mini_batch_size"] = "TTT chunk size b requested by the recipe"
    target = base.replace(name=f"{base.name}-{recipe.kind}", **changes)
    diffs = [ConfigChange(f, getattr(base, f), getattr(target, f), why[f])
             for f in changes if getattr(base, f) != getattr(target, f)]
    return target, diffs


def new_parameters(cfg: ModelConfig, recipe: Recipe) -> list[NewParameter]:
    """Parameters the converted model has and the snapshot lacks, each with its reason."""
    if not cfg.prime:
        return []
    D, inter = cfg.hidden_size, cfg.prime_inter
    init = {"zeros": {"gate": "normal", "up": "normal", "down": "zeros", "norm": "ones"},
            "copy": {"gate": "copy", "up": "copy", "down": "copy", "norm": "copy"},
            "normal": {"gate": "normal", "up": "normal", "down": "normal", "norm": "ones"}
            }[recipe.prime_init]
    reason = {"zeros": "zero output projection: the block's output is unchanged, so the "
                       "pretrained function is preserved at step 0",
              "copy": "copy of this block's pretrained MLP (prime init 'copy')",
              "normal": f"random normal, std {cfg.initializer_range} (prime init 'normal')"
              }[recipe.prime_init]
    out = []
    for j in range(cfg.suffix_len):
        p = block_path(cfg, cfg.num_prefix_layers + j)
        base = f"TTT-E2E inner weights (prime MLP) of suffix block {j}, recipe ttt; "
        for name, shape in (("gate", (D, inter)), ("up", (D, inter)), ("down", (inter, D))):
            out.append(NewParameter(f"{p}.feed_forward_prime.{name}_proj.kernel", shape,
                                    init[name], base + reason))
        out.append(NewParameter(f"{p}.pre_prime_norm.scale", (D,), init["norm"],
                                "pre-norm of the prime MLP, recipe ttt; " +
                                ("copy of the block's pre-MLP norm" if init["norm"] == "copy"
                                 else "ones (identity scale), as a freshly built RMSNorm")))
        if cfg.post_norm:
            out.append(NewParameter(f"{p}.post_prime_norm.scale", (D,), "ones",
                                    "post-norm of the prime MLP, recipe ttt; ones"))
    return out


def init_new_parameters(cfg: ModelConfig, recipe: Recipe, params: dict[str, np.ndarray],
                        dtype: np.dtype) -> dict[str, np.ndarray]:
    """Arrays for `new_parameters`, given the converted pretrained `params` (for `copy`)."""
    rng = np.random.default_rng(recipe.seed)
    out: dict[str, np.ndarray] = {}
    for p in new_parameters(cfg, recipe):
        if p.init == "zeros":
            out[p.path] = np.zeros(p.shape, dtype)
        elif p.init == "ones":
            out[p.path] = np.ones(p.shape, dtype)
        elif p.init == "normal":
            out[p.path] = (rng.standard_normal(p.shape, np.float32)
                           * cfg.initializer_range).astype(dtype)
        else:  # copy: the same block's pretrained MLP / pre-MLP norm
            src = (p.path.replace("feed_forward_prime", "feed_forward")
                   .replace("pre_prime_norm", "pre_mlp_norm"))
            out[p.path] = np.array(params[src], dtype=dtype, copy=True)
    return out


PRIME_PARTS = (".feed_forward_prime.", ".pre_prime_norm.", ".post_prime_norm.")


def _layer_key(path: str, cfg: ModelConfig) -> str:
    """`prefix_blocks.i` / `suffix_blocks.j` -> `layer.<global index>` (else unchanged)."""
    parts = path.split(".")
    if parts[0] in ("prefix_blocks", "suffix_blocks"):
        layer = int(parts[1]) + (cfg.num_prefix_layers if parts[0] == "suffix_blocks" else 0)
        return ".".join(["layer", str(layer), *parts[2:]])
    return path


def insert_primes(source_cfg: ModelConfig, source: dict[str, np.ndarray],
                  target_cfg: ModelConfig, *, prime_init: str = "zeros", seed: int = 0,
                  where: str = "the source") -> dict[str, np.ndarray]:
    """The `ttt` recipe applied to trained weights (a checkpoint without prime MLPs): each
    weight of `source` goes to the same layer of `target_cfg` (whose last `suffix_len`
    blocks are suffix blocks), and the prime MLPs are initialised as `prime_init` says.
    A weight the target needs and `source` lacks, or one of another shape, is refused
    naming the path and `where`."""
    from ttt_import.checkpoints import param_shapes

    by_layer = {_layer_key(p, source_cfg): a for p, a in source.items()}
    shapes = param_shapes(target_cfg)
    carried: dict[str, np.ndarray] = {}
    for path, want in shapes.items():
        if any(part in path for part in PRIME_PARTS):
            continue
        got = by_layer.get(_layer_key(path, target_cfg))
        if got is None:
            raise ImportFailure(f"{where} has no weight for {path!r} (source model "
                                f"{source_cfg.name}, {source_cfg.num_layers} layers)")
        if got.shape != want.shape:
            raise ImportFailure(f"{where}: {path!r} has shape {got.shape} but the model "
                                f"expects {want.shape}")
        carried[path] = np.asarray(got).astype(want.dtype)
    recipe = Recipe(kind="ttt", suffix_len=target_cfg.suffix_len, prime_init=prime_init,
                    window=target_cfg.sliding_window, seed=seed)
    flat = {**carried, **init_new_parameters(target_cfg, recipe, carried,
                                             np.dtype(target_cfg.param_dtype))}
    missing = sorted(set(shapes) - set(flat))
    if missing:
        raise ImportFailure(f"{where}: the ttt recipe gives no value for {missing[:4]}")
    return flat
