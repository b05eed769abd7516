"""The evaluation bundle: every measure a long-context comparison needs, for each
checkpoint — the context sweep (loss against context, per position, inside vs beyond the
window), RULER retrieval, the decode trend and efficiency — written as one JSON, one long
CSV (a row per number, with its sample count) and plots.

A checkpoint is evaluated the way its run uses it: TTT-E2E models learn at test time with
the run's own inner loop. A failed measure (a missing or non-finite bucket, a context
that does not fit) marks its checkpoint and the bundle failed; the numbers that were
measured are still written, never replaced by a guess.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ttt_data.errors import DataError
from ttt_data.store import open_checked_split
from ttt_data.windows import TokenWindows, contiguous_window_count
from ttt_eval.efficiency import Timing, efficiency
from ttt_eval.errors import EvalError, one_line
from ttt_eval.nll import InnerLoop
from ttt_eval.plots import write_bundle_plots
from ttt_eval.retrieval import DEFAULT_DEPTHS, RetrievalSpec, evaluate_retrieval
from ttt_eval.ruler import TASKS
from ttt_eval.score import check_tokenizer, load_run_model
from ttt_eval.sweep import DEFAULT_CONTEXTS, choose_windows, sweep
from ttt_eval.trend import decode_trend, free_decode_trend
from ttt_model.atomic import write_atomic
from ttt_model.checkpoint import CheckpointError, read_model_config
from ttt_model.model import Transformer


@dataclass(frozen=True)
class BundleSpec:
    """What to measure. `trend_prompt` None: the shortest context; efficiency contexts
    None: the sweep's. `retrieval` None skips RULER (a tokenizer is needed for it)."""

    contexts: tuple[int, ...] = DEFAULT_CONTEXTS
    sweep_tokens: int | None = None
    retrieval: RetrievalSpec | None = field(default_factory=RetrievalSpec)
    trend_prompt: int | None = None
    trend_tokens: int = 1024
    trend_reference: Path | None = None  # a checkpoint that scores free generation
    efficiency: bool = True
    efficiency_contexts: tuple[int, ...] | None = None
    efficiency_repeats: int = 3
    efficiency_max_run_s: float | None = 120.0  # skip a prefill predicted to take longer
    seed: int = 0
    memory_limit_bytes: int | None = None
    split: str = "val"


@dataclass(frozen=True)
class BundleTarget:
    """One checkpoint to evaluate, on `store` (a token store), with `tokenizer` (the
    folder of the run's tokenizer.json, for RULER); `run_id` links it to a ledger run."""

    name: str
    checkpoint: Path
    store: Path | None
    tokenizer: Path | None = None
    run_id: str | None = None
    allow_tokenizer_mismatch: bool = False


def bundle_spec(*, contexts: Sequence[int] | None = None, sweep_tokens: int | None = None,
                ruler: bool = True, ruler_tasks: Sequence[str] | None = None,
                ruler_lengths: Sequence[int] | None = None,
                ruler_depths: Sequence[float] | None = None, ruler_samples: int = 4,
                ruler_generation: bool = True, ruler_max_new_tokens: int | None = None,
                trend_prompt: int | None = None, trend_tokens: int = 1024,
                trend_reference: Path | None = None, efficiency: bool = True,
                efficiency_contexts: Sequence[int] | None = None, efficiency_repeats: int = 3,
                memory_limit_gib: float | None = None, seed: int = 0, split: str = "val"
                ) -> BundleSpec:
    """A `BundleSpec` from a user's choices, each None (or empty) meaning its default:
    the paper's contexts, all RULER tasks at the sweep's contexts and the default depths;
    `ruler=False` skips RULER. RULER draws with the bundle's seed."""
    contexts = tuple(contexts or DEFAULT_CONTEXTS)
    retrieval = None
    if ruler:
        retrieval = RetrievalSpec(tasks=tuple(ruler_tasks or TASKS),
                                  lengths=tuple(ruler_lengths or contexts),
                                  depths=tuple(ruler_depths or DEFAULT_DEPTHS),
                                  samples_per_cell=ruler_samples, generation=ruler_generation,
                                  max_new_tokens=ruler_max_new_tokens, seed=seed)
    limit = None if memory_limit_gib is None else int(memory_limit_gib * 2**30)
    return BundleSpec(contexts=contexts, sweep_tokens=sweep_tokens, retrieval=retrieval,
                      trend_prompt=trend_prompt, trend_tokens=trend_tokens,
                      trend_reference=trend_reference, efficiency=efficiency,
                      efficiency_contexts=(None if efficiency_contexts is None
                                           else tuple(efficiency_contexts)),
                      efficiency_repeats=efficiency_repeats, seed=seed,
                      memory_limit_bytes=limit, split=split)


def model_kind(model: Transformer) -> str:
    cfg = model.cfg
    if cfg.prime:
        return "e2e"
    return "fa" if all(cfg.window(i) is None for i in range(cfg.num_layers)) else "swa"


def _window(model: Transformer) -> int | None:
    windows = [w for i in range(model.cfg.num_layers) if (w := model.cfg.window(i))]
    return max(windows) if windows else None


def trend_tokens(store: Path, split: str, length: int, vocab_size: int, seed: int
                 ) -> np.ndarray:
    """One seeded window of `length` tokens of the split (a prompt and its reference
    continuation), read through the store's checksums."""
    source = TokenWindows(store, split, length - 1, vocab_size=vocab_size)
    if len(source) == 0:
        n = contiguous_window_count(source.num_tokens, length - 1)
        raise EvalError(f"token store {store} split {split} has {source.num_tokens} tokens, "
                        f"fewer than the decode trend's {length} ({n} windows)")
    (index,) = choose_windows(len(source), 1, seed + 1)
    return np.asarray(source[int(index)])


def corpus_essay(store: Path, split: str, tokenizer: Any, tokens: int) -> str:
    """The first `tokens` tokens of a split as text: the haystack of RULER's essay tasks
    drawn from the user's own corpus (RULER's is Paul Graham's essays)."""
    reader = open_checked_split(store, split)
    ids = np.asarray(reader.read(0, min(tokens, reader.length))).tolist()
    return tokenizer.decode(ids, skip_special_tokens=True)


def _retrieval(entry: dict[str, Any], model: Transformer, target: BundleTarget,
               spec: RetrievalSpec, settings: dict[str, Any], inner: InnerLoop,
               progress: bool, split: str) -> None:
    """RULER task by task, so that one task that cannot be built (a length too short for
    its fixed parts) fails alone."""
    from ttt_data.tokenizer import describe_tokenizer, load_tokenizer

    try:
        if not target.allow_tokenizer_mismatch:
            check_tokenizer(target.checkpoint, settings["tokenizer"], target.tokenizer)
        tok = load_tokenizer(target.tokenizer)
        eos = describe_tokenizer(target.tokenizer).eos_id
        if spec.essay is None and target.store is not None:
            essay = corpus_essay(target.store, split, tok, 3 * max(spec.lengths))
            spec = replace(spec, essay=essay)
            entry["ruler_haystack"] = f"essay tasks: the first tokens of {target.store} {split}"
    except (EvalError, DataError) as e:
        _fail(entry, "ruler", one_line(e))
        return
    merged: dict[str, Any] | None = None
    for task in spec.tasks:
        try:
            out = evaluate_retrieval(model, tok, replace(spec, tasks=(task,)), inner=inner,
                                     eos_id=eos, progress=progress)
        except EvalError as e:
            _fail(entry, f"ruler/{task}", one_line(e))
            continue
        if merged is None:
            merged = out
        else:
            merged["tasks"].update(out["tasks"])
    if merged is not None:
        entry["ruler"] = merged


def _fail(entry: dict[str, Any], measure: str, reason: str) -> None:
    entry["failed"] = True
    entry["failures"].append({"measure": measure, "reason": reason})


def _trends(entry: dict[str, Any], model: Transformer, store: Path, spec: BundleSpec,
            inner: InnerLoop, ttt: bool) -> None:
    """The decode trend on the store's text and, with a reference checkpoint, on the
    model's own free generation after the same prompt."""
    n_prompt = spec.trend_prompt or min(spec.contexts)
    try:
        tokens = trend_tokens(store, spec.split, n_prompt + spec.trend_tokens,
                              model.cfg.vocab_size, spec.seed)
    except (EvalError, DataError) as e:
        _fail(entry, "trend", one_line(e))
        return
    try:
        entry["trend"] = decode_trend(model, tokens, n_prompt, inner=inner)
    except EvalError as e:
        _fail(entry, "trend", one_line(e))
    if spec.trend_reference is None:
        return
    try:
        reference, ref_settings = load_run_model(spec.trend_reference)
        entry["free_trend"] = free_decode_trend(
            model, tokens[:n_prompt], spec.trend_tokens, reference, inner,
            ref_settings["inner"], ttt=ttt, reference_ttt=model_kind(reference) == "e2e")
        entry["free_trend"]["reference_checkpoint"] = str(Path(spec.trend_reference).resolve())
    except EvalError as e:
        _fail(entry, "free_trend", one_line(e))


def evaluate_target(target: BundleTarget, spec: BundleSpec, *,
                    comparison_window: int | None = None, progress: bool = True
                    ) -> dict[str, Any]:
    """Every measure of one checkpoint; a measure that fails is recorded with its reason.
    `comparison_window`: where a full-attention model's inside/beyond slices split (the
    window of the models it is compared with)."""
    model, settings = load_run_model(target.checkpoint)
    inner: InnerLoop = settings["inner"]
    kind = model_kind(model)
    window = _window(model) or comparison_window
    entry: dict[str, Any] = {
        "name": target.name, "run_id": target.run_id,
        "checkpoint": str(Path(target.checkpoint).resolve()),
        "checkpoint_step": settings["step"], "model": model.cfg.name, "kind": kind,
        "window": window, "inner_loop": asdict(inner) if kind == "e2e" else None,
        "store": None if target.store is None else str(target.store),
        "failed": False, "failures": [], "skipped": []}
    ttt = kind == "e2e"
    t0 = time.perf_counter()
    if target.store is None:
        _fail(entry, "sweep", "no token store given (--dataset)")
    else:
        try:
            result = sweep(model, target.store, split=spec.split, ttt=ttt, inner=inner,
                           contexts=spec.contexts, window=window, seed=spec.seed,
                           memory_limit_bytes=spec.memory_limit_bytes, progress=progress,
                           **({} if spec.sweep_tokens is None
                              else {"tokens_per_context": spec.sweep_tokens}))
            entry["sweep"] = result.to_dict()
            for f in result.failures:
                _fail(entry, f"sweep@{f['context']}", f["reason"])
        except (EvalError, DataError) as e:
            _fail(entry, "sweep", one_line(e))
        _trends(entry, model, target.store, spec, inner, ttt)
    if spec.retrieval is not None:
        if target.tokenizer is None:  # not a failure of the model: a measure not asked
            entry["skipped"].append({"measure": "ruler", "reason": "no tokenizer given "
                                     "(--tokenizer): RULER prompts are built with the "
                                     "model's own tokenizer"})
        else:
            _retrieval(entry, model, target, spec.retrieval, settings, inner, progress,
                       spec.split)
    if spec.efficiency:
        try:
            timing = Timing(repeats=spec.efficiency_repeats, max_run_s=spec.efficiency_max_run_s)
            result = efficiency({target.name: model}, spec.efficiency_contexts or spec.contexts,
                                timing=timing, inner=inner, seed=spec.seed, progress=progress)
            entry["efficiency"] = efficiency_rows(result["models"][target.name])
            entry["efficiency"]["platform"] = result["platform"]
        except EvalError as e:
            _fail(entry, "efficiency", str(e))
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    return entry


def efficiency_rows(model_result: dict[str, Any]) -> dict[str, Any]:
    """One row per context from `efficiency`'s result for one model: measured ms/token with
    sample counts (None where not measured, with the reason), compiled FLOPs per token and
    temp bytes, and decode-state bytes."""
    rows = []
    for key, r in sorted(model_result["contexts"].items(), key=lambda kv: int(kv[0])):
        pre, dec = r.get("prefill", {}), r.get("decode", {})
        measured = lambda b: b.get("source") == "measured"  # noqa: E731
        rows.append({
            "context": int(key),
            "prefill_ms_per_token": pre["ms_per_token"] if measured(pre) else None,
            "prefill_ms_per_token_n": pre.get("n") if measured(pre) else 0,
            "prefill_not_measured": pre.get("not_measured"),
            "decode_ms_per_token": dec["ms_per_token"] if measured(dec) else None,
            "decode_ms_per_token_n": dec.get("n") if measured(dec) else 0,
            "decode_state": dec.get("state"),
            "prefill_flops_per_token": r["compiled"]["prefill"]["flops_per_token"],
            "prefill_temp_bytes": r["compiled"]["prefill"]["temp_bytes"],
            "decode_flops_per_token": r["compiled"]["decode_step"]["flops_per_token"],
            "state_bytes": r["state_bytes"]["total"],
            "kv_cache_bytes": r["state_bytes"].get("kv_cache"),
            "inner_weight_bytes": r["state_bytes"].get("inner_weights")})
    return {"kind": model_result["kind"], "params": model_result["params"], "contexts": rows}


def comparison_window(targets: Sequence[BundleTarget]) -> int | None:
    """The widest attention window among the windowed models compared (read from their
    configs): where a full-attention model's inside/beyond-window slices split."""
    windows = []
    for t in targets:
        try:
            cfg = read_model_config(t.checkpoint)
        except (CheckpointError, FileNotFoundError) as e:
            raise EvalError(f"{t.checkpoint}: not a readable ttt-model checkpoint ({e})"
                            ) from None
        windows += [w for i in range(cfg.num_layers) if (w := cfg.window(i))]
    return max(windows, default=None)


def run_bundle(targets: Sequence[BundleTarget], spec: BundleSpec, *,
               progress: bool = True) -> dict[str, Any]:
    """Every target evaluated; `failed` when any measure of any target failed."""
    if not targets:
        raise EvalError("the bundle has no checkpoints to evaluate")
    window = comparison_window(targets)
    entries = [evaluate_target(t, spec, comparison_window=window, progress=progress)
               for t in targets]
    return {"spec": _spec_dict(spec), "models": entries,
            "failed": any(e["failed"] for e in entries)}


def _spec_dict(spec: BundleSpec) -> dict[str, Any]:
    out = asdict(spec)
    if out.get("retrieval"):
        out["retrieval"].pop("essay", None)
    if spec.trend_reference is not None:
        out["trend_reference"] = str(Path(spec.trend_reference).resolve())
    return out


def csv_rows(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per number: model, measure, context, depth, key, value, n."""
    rows: list[dict[str, Any]] = []

    def add(m, measure, key, value, n, context=None, depth=None):
        rows.append({"model": m["name"], "kind": m["kind"], "measure": measure,
                     "context": context, "depth": depth, "key": key,
                     "value": value, "n": n})

    for m in bundle["models"]:
        for r in m.get("sweep", {}).get("contexts", []):
            c = r["context"]
            add(m, "sweep", "mean_nll", r.get("mean_nll"), r.get("tokens"), c)
            for part in ("inside_window", "beyond_window"):
                if r.get(part):
                    add(m, "sweep", part, r[part]["mean_nll"], r[part]["count"], c)
            bins = r.get("bins", [])
            for i, b in enumerate(bins):  # the last bin holds position = context too
                close = "]" if i == len(bins) - 1 else ")"
                add(m, "sweep", f"bin[{b['lo']},{b['hi']}{close}", b["mean_nll"], b["count"], c)
        for task, ways in m.get("ruler", {}).get("tasks", {}).items():
            for way, res in ways.items():
                for cell in res["cells"]:
                    add(m, f"ruler/{task}", way, cell["accuracy"], cell["n"], cell["length"],
                        cell["depth"])
        for key, name in (("trend", "decode_nll_slope"), ("free_trend", "free_decode_nll_slope")):
            if trend := m.get(key):
                add(m, "decode", name, trend["decode_nll_slope"]["per_1k_tokens"],
                    trend["decode_nll_slope"]["n"])
        for r in m.get("efficiency", {}).get("contexts", []):
            for key in ("prefill_ms_per_token", "decode_ms_per_token"):
                if r.get(key) is not None:
                    add(m, "efficiency", key, r[key], r.get(f"{key}_n"), r["context"])
    return rows


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite_or_none(v) for v in x]
    return x


def write_bundle(bundle: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Any]:
    """`<stem>.json`, `<stem>.csv` and the plots under `<stem>_plots/`; each file replaced
    whole. Non-finite numbers are written as null (the failure says why)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out_dir / f"{stem}.json", out_dir / f"{stem}.csv"
    write_atomic(json_path, json.dumps(_finite_or_none(bundle), indent=2,
                                        allow_nan=False) + "\n")
    rows = csv_rows(bundle)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["model", "kind", "measure", "context", "depth",
                                               "key", "value", "n"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(csv_path, table.getvalue())
    plots = write_bundle_plots(bundle["models"], out_dir / f"{stem}_plots")
    return {"json": json_path, "csv": csv_path, "plots": plots}


def bundle_checkpoints(checkpoints: Sequence[Path], spec: BundleSpec, *,
                       store: Path | None = None, tokenizer: Path | None = None,
                       allow_tokenizer_mismatch: bool = False,
                       out_dir: Path | None = None, progress: bool = True
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bundle of checkpoints named by their folders (each on the same store and
    tokenizer), written as `external_eval.*` under `out_dir` (default ./external_eval):
    (bundle, written paths)."""
    targets = [BundleTarget(name=Path(c).name, checkpoint=Path(c), store=store,
                            tokenizer=tokenizer,
                            allow_tokenizer_mismatch=allow_tokenizer_mismatch)
               for c in checkpoints]
    bundle = run_bundle(targets, spec, progress=progress)
    return bundle, write_bundle(bundle, Path(out_dir or "external_eval"), "external_eval")


def bundle_summary(bundle: dict[str, Any]) -> str:
    """One line per checkpoint: loss at each context, RULER accuracies, decode slope."""
    lines = []
    for m in bundle["models"]:
        parts = [f"{m['name']} ({m['kind']})"]
        for r in m.get("sweep", {}).get("contexts", []):
            if r.get("mean_nll") is not None:
                beyond = r.get("beyond_window") or {}
                parts.append(f"{r['context']}: {r['mean_nll']:.3f}"
                             + (f" (beyond window {beyond['mean_nll']:.3f})"
                                if beyond.get("count") else ""))
        for way in ("rank", "generation"):
            accs = [t[way]["accuracy"] for t in m.get("ruler", {}).get("tasks", {}).values()
                    if way in t]
            if accs:
                parts.append(f"RULER {way} {sum(accs) / len(accs):.3f}")
        if m.get("trend"):
            parts.append(f"decode slope {m['trend']['decode_nll_slope']['per_1k_tokens']:+.4f}/1K")
        if m.get("free_trend"):
            slope = m["free_trend"]["decode_nll_slope"]["per_1k_tokens"]
            parts.append(f"free-generation slope {slope:+.4f}/1K")
        lines.append("  ".join(parts))
    return "\n".join(lines)


def skip_notes(bundle: dict[str, Any]) -> list[str]:
    """`<model>: <measure> not run: <reason>` for each measure not asked for: not a
    failure, but a reader should know the number is missing and why."""
    return [f"{m['name']}: {skip['measure']} not run: {skip['reason']}"
            for m in bundle["models"] for skip in m.get("skipped", [])]


def failure_lines(bundle: dict[str, Any]) -> list[str]:
    """`<model> <measure>: <reason>` for each failed measure (none when the bundle passed)."""
    return [f"{m['name']} {f['measure']}: {f['reason']}"
            for m in bundle["models"] for f in m["failures"]]


def describe_written(paths: dict[str, Any]) -> str:
    """What `write_bundle` (and a ledger record, when `paths` counts one) left behind."""
    line = f"wrote {paths['json']}, {paths['csv']} and {len(paths['plots'])} plots"
    if "ledger_records" in paths:
        line += f"; {paths['ledger_records']} ledger eval records"
    return line
