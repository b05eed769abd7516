"""The import pipeline: snapshot -> plan (headers only) -> arrays -> parity -> checkpoint.

1. `plan_import` reads config.json and the safetensors headers, picks the family (or checks
   the profile), applies the recipe, and audits every tensor by name, shape and dtype
   without reading any weights: a bad snapshot fails here, cheaply.
2. The parity reference (transformers) runs before our arrays are loaded, so the two
   models are never in memory at once.
3. `load_parameters` converts tensors one at a time from memory-mapped files.
4. The checkpoint, audit.json and audit.md are written into a staging directory that is
   renamed into place only when everything succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ttt_import.audit import Audit
from ttt_import.checkpoints import model_from_params, param_shapes, write_checkpoint
from ttt_import.errors import AuditError, ParityError
from ttt_import.families import Family, TensorLink, get_family
from ttt_import.parity import (
    DEFAULT_TOLERANCE,
    PARITY_SEED,
    compare,
    our_logits,
    parity_tokens,
    reference_logits,
)
from ttt_import.profiles import ModelProfile, check_config, get_profile, parameter_count
from ttt_import.recipes import Recipe, apply_recipe, init_new_parameters, new_parameters
from ttt_import.snapshot import CONFIG, Snapshot, open_snapshot
from ttt_import.staging import check_destination, staged_directory
from ttt_model.config import ModelConfig

FUNCTION_PRESERVED_TOL = 1e-5
WIDENING = {("bfloat16", "float32"), ("float16", "float32"), ("bfloat16", "float64"),
            ("float16", "float64"), ("float32", "float64")}


@dataclass
class ImportPlan:
    """Everything decided from config.json and the safetensors headers alone."""

    snapshot: Snapshot
    family: Family
    profile: ModelProfile | None
    base_config: ModelConfig  # the snapshot's model as it is
    config: ModelConfig  # the converted model (after the recipe)
    recipe: Recipe
    links: list[TensorLink]  # HF tensor -> parameter of `config`
    audit: Audit


@dataclass
class ImportResult:
    out_dir: Path | None
    config: ModelConfig
    audit: Audit
    params: dict[str, jax.Array] | None = None


def describe_import(result: ImportResult, hf_dir: str | Path) -> str:
    """What an import did, in lines: source, recipe and sizes; parity when it ran; where
    the audit is and the attention the converted model uses."""
    a, cfg, out = result.audit, result.config, result.out_dir
    lines = [f"imported {a.source['family']} ({a.source['profile'] or 'auto'}) from {hf_dir} "
             f"-> {out}: recipe {a.recipe['kind']}, {a.param_count:,} parameters, "
             f"{a.tensors_loaded} tensors, {len(a.new_parameters)} new"]
    if a.parity is not None:
        p = a.parity
        lines.append(f"parity vs {p['reference']}: max |Δlogit| {p['max_abs_logit_diff']:.3g}, "
                     f"max |ΔNLL| {p['max_abs_nll_diff']:.3g} (tolerance {p['tolerance']:g})")
    lines.append(f"audit: clean; {out}/audit.json, {out}/audit.md (attention {cfg.attention}, "
                 f"window {cfg.sliding_window}, suffix {cfg.suffix_len})")
    return "\n".join(lines)


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(jnp.dtype(name))


def source_dtype(snap: Snapshot) -> str:
    """The snapshot's weight dtype when every float tensor shares one, else float32."""
    names = {info.dtype_name for info in snap.tensors.values()}
    return names.pop() if len(names) == 1 and names <= {"float32", "bfloat16", "float16",
                                                        "float64"} else "float32"


def plan_import(hf_dir: str | Path, *, model: str = "auto", recipe: Recipe | None = None,
                param_dtype: str = "auto") -> ImportPlan:
    """Read and audit a snapshot's structure against the converted model (no weights read).

    `param_dtype="auto"` stores the weights in the snapshot's own dtype, bit for bit (a
    float32 training stage restores them into float32: a lossless widening at load time,
    and the import needs half the memory of widening here).
    Raises SnapshotError / ProfileError / AuditError naming what is wrong.
    """
    recipe = recipe or Recipe()
    snap = open_snapshot(hf_dir)
    if param_dtype == "auto":
        param_dtype = source_dtype(snap)
    source = str(snap.directory / CONFIG)
    profile = None if model in (None, "auto") else get_profile(model)
    if profile is not None:
        base = check_config(profile, snap.config, source)
        family = get_family(profile.model_type, source)
    else:
        family = get_family(snap.model_type, source)
        base = family.config_from_hf(snap.config, source)
    base = base.replace(name=profile.key if profile else snap.model_type,
                        param_dtype=param_dtype)
    target, changes = apply_recipe(base, recipe)
    links = family.links(target)
    shapes = param_shapes(target)

    audit = Audit(
        source={"hf_dir": str(snap.directory.resolve()), "model_type": snap.model_type,
                "family": family.model_type, "profile": profile.key if profile else None,
                "hf_id": profile.hf_id if profile else None, "revision": snap.revision,
                "pinned_revision": profile.revision if profile else None,
                "config_sha256": snap.config_sha256,
                "weight_files": [p.name for p in snap.weight_files],
                "weight_bytes": snap.nbytes},
        recipe=recipe.to_dict(), model_config=target.to_dict(),
        param_count=parameter_count(target))
    if profile is not None and snap.revision != profile.revision:
        audit.notes.append(f"snapshot revision {snap.revision!r} differs from the profile's "
                           f"pinned revision {profile.revision}; shapes and config facts were "
                           "checked against the profile")
    if snap.ignored_files:
        audit.notes.append(f"ignored pickle files {snap.ignored_files}: never unpickled; the "
                           "safetensors weights were read instead")

    linked = set()
    for link in links:
        linked.add(link.hf)
        want = tuple(shapes[link.ours].shape)
        want_hf = want[::-1] if link.transpose else want
        info = snap.tensors.get(link.hf)
        if info is None:
            audit.missing.append({"name": link.hf, "expected_shape": list(want_hf),
                                  "justification": None})
        elif info.shape != want_hf:
            audit.resized.append({"name": link.hf, "file": str(info.file),
                                  "shape": list(info.shape), "expected_shape": list(want_hf),
                                  "justification": None})
        else:
            audit.tensors_loaded += 1
            if info.dtype_name != param_dtype:
                widen = (info.dtype_name, param_dtype) in WIDENING
                audit.dtype_changed.append({
                    "name": link.hf, "from": info.dtype_name, "to": param_dtype,
                    "justification": ("lossless widening to param_dtype" if widen else
                                      f"param_dtype={param_dtype} requested (lossy)")})
    for name in sorted(set(snap.tensors) - linked):
        info = snap.tensors[name]
        audit.unexpected.append({"name": name, "file": str(info.file), "dtype": info.dtype_name,
                                 "shape": list(info.shape),
                                 "justification": _justify_extra(snap, family, target, name)})
    audit.config_changes = [{"field": c.field, "before": c.before, "after": c.after,
                             "justification": c.justification} for c in changes]
    audit.new_parameters = [{"path": p.path, "shape": list(p.shape), "init": p.init,
                             "justification": p.justification}
                            for p in new_parameters(target, recipe)]
    audit.raise_if_unjustified()
    return ImportPlan(snap, family, profile, base, target, recipe, links, audit)


def _justify_extra(snap: Snapshot, family: Family, cfg: ModelConfig, name: str) -> str | None:
    """Why a stored tensor without a parameter is harmless, or None (unjustified)."""
    info = snap.tensors[name]
    if name == "lm_head.weight" and cfg.tie_embeddings:
        embed = snap.tensors.get("model.embed_tokens.weight")
        if embed is not None and embed.shape == info.shape and \
                np.array_equal(snap.read(name), snap.read(embed.name)):
            return "stored copy of the tied embedding (checked equal); tie_word_embeddings"
        return None
    if info.nbytes < (1 << 20) and len(info.shape) <= 1:
        return family.derived_buffer(name, np.asarray(snap.read(name), np.float64), cfg)
    return None


def load_parameters(plan: ImportPlan) -> dict[str, jax.Array]:
    """Every parameter of the converted model as a CPU array in param_dtype: pretrained
    tensors read one at a time (transposed to [in, out]), new ones from the recipe.

    Each tensor is copied once from its memory-mapped file and handed to JAX before the
    next is read, so the peak is the converted model plus one tensor."""
    dtype = _np_dtype(plan.config.param_dtype)
    cpu = jax.devices("cpu")[0]
    params: dict[str, jax.Array] = {}
    for link in plan.links:
        mapped = plan.snapshot.read(link.hf)
        host = np.array(mapped.T if link.transpose else mapped, dtype=dtype, order="C")
        del mapped  # unmaps the file pages this tensor touched
        params[link.ours] = jax.device_put(host, cpu)
        del host
    new = init_new_parameters(plan.config, plan.recipe, params, dtype)
    params.update({k: jax.device_put(v, cpu) for k, v in new.items()})
    shapes = param_shapes(plan.config)
    if set(params) != set(shapes):
        raise AuditError(f"internal: converted parameters differ from the model's: missing "
                         f"{sorted(set(shapes) - set(params))[:5]}, extra "
                         f"{sorted(set(params) - set(shapes))[:5]}")
    return params


def base_parameters(plan: ImportPlan, params: dict[str, Any]) -> dict[str, Any]:
    """The pretrained arrays under the paths of the snapshot's own (unconverted) model."""
    by_hf = {link.hf: params[link.ours] for link in plan.links}
    return {link.ours: by_hf[link.hf] for link in plan.family.links(plan.base_config)}


def run_parity(plan: ImportPlan, params: dict[str, Any],
               reference: tuple[np.ndarray, str] | None = None,
               tolerance: float = DEFAULT_TOLERANCE,
               tokens: np.ndarray | None = None) -> dict[str, Any]:
    """Parity figures of the pretrained model against transformers, and of the converted
    model against the pretrained one (function preservation, where the recipe claims it)."""
    if tokens is None:
        tokens = parity_tokens(plan.base_config.vocab_size)
    ref, desc = reference if reference is not None else \
        reference_logits(plan.snapshot.directory, tokens)
    base = our_logits(model_from_params(plan.base_config, base_parameters(plan, params)), tokens)
    figures = compare(base, ref, tokens)
    out: dict[str, Any] = {"reference": desc, "tokens_shape": list(tokens.shape),
                           "seed": PARITY_SEED, "tolerance": tolerance, **figures,
                           "passed": figures["max_abs_logit_diff"] <= tolerance}
    if plan.recipe.kind != "fa":
        conv = our_logits(model_from_params(plan.config, params), tokens)
        diff = float(np.max(np.abs(conv - base)))
        out["recipe_max_abs_logit_diff"] = diff
        window = plan.config.sliding_window
        if plan.recipe.function_preserving_within_window and tokens.shape[1] <= window:
            out["recipe_note"] = (f"recipe {plan.recipe.kind} must preserve the function on "
                                  f"sequences within the window (tolerance "
                                  f"{FUNCTION_PRESERVED_TOL:g})")
            out["passed"] = out["passed"] and diff <= FUNCTION_PRESERVED_TOL
        elif plan.recipe.function_preserving_within_window:
            out["recipe_note"] = (f"parity length {tokens.shape[1]} exceeds the window "
                                  f"{window}: positions beyond it see fewer keys by design")
        else:
            out["recipe_note"] = (f"prime init {plan.recipe.prime_init!r} changes the function "
                                  "by design (justified by the recipe)")
    return out


def import_snapshot(hf_dir: str | Path, out_dir: str | Path | None, *, model: str = "auto",
                    recipe: Recipe | None = None, parity: bool = True,
                    tolerance: float = DEFAULT_TOLERANCE, param_dtype: str = "auto",
                    keep_params: bool = False) -> ImportResult:
    """Convert a local HF snapshot into a ttt-model checkpoint (step 0) at `out_dir`, with
    audit.json and audit.md beside it. Any unjustified difference or failed parity raises
    and writes nothing. `out_dir=None` converts and audits without writing."""
    if out_dir is not None:
        check_destination(out_dir)
    plan = plan_import(hf_dir, model=model, recipe=recipe, param_dtype=param_dtype)
    reference = None
    tokens = parity_tokens(plan.base_config.vocab_size)
    if parity:
        reference = reference_logits(plan.snapshot.directory, tokens)
    params = load_parameters(plan)
    if parity:
        plan.audit.parity = p = run_parity(plan, params, reference, tolerance, tokens)
        if not p["passed"]:
            raise ParityError(
                f"{plan.snapshot.directory}: parity failed, nothing written: max |Δlogit| "
                f"{p['max_abs_logit_diff']:.3g} (tolerance {tolerance:g}), max |ΔNLL| "
                f"{p['max_abs_nll_diff']:.3g}"
                + (f", converted vs pretrained {p['recipe_max_abs_logit_diff']:.3g}"
                   if "recipe_max_abs_logit_diff" in p else "")
                + f" against {p['reference']}")
    else:
        plan.audit.notes.append("parity check skipped (--no-parity)")
    plan.audit.raise_if_unjustified()
    if out_dir is not None:
        meta = {"source": {**plan.audit.source, "hf_config": plan.snapshot.config},
                "recipe": plan.recipe.to_dict(), "audit": "audit.json"}
        with staged_directory(out_dir) as tmp:
            write_checkpoint(tmp, plan.config, params, meta)
            (tmp / "audit.json").write_text(plan.audit.to_json())
            (tmp / "audit.md").write_text(plan.audit.to_markdown())
    return ImportResult(Path(out_dir) if out_dir is not None else None, plan.config,
                        plan.audit, params if keep_params else None)
