"""The evaluation bundle of an experiment folder: which checkpoints it evaluates (each
branch's final FA, SWA and TTT-E2E checkpoints), on which store and tokenizer, and the
ledger eval records it leaves for `ttt report`.

A run is final when it completed and no completed run of the folder continues from it.
Its checkpoint lives at `<checkpoint_path>/<exp_folder>/<output_checkpoint>`; the store and
tokenizer come from the pipeline's manifest (the long-document store, the family's
snapshot) unless given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttt_eval.bundle import BundleSpec, BundleTarget, run_bundle, write_bundle
from ttt_eval.errors import EvalError
from ttt_ledger import EvalResult, Ledger, RunRecord, RunStatus, ledger_path
from ttt_ledger.external import DECODE_EVAL, RULER_EVAL, context_eval_name

MANIFEST = "pipeline_manifest.json"
LONG_DOCUMENT_STORE = "books3"  # the manifest's store of long documents (the 32K data)


@dataclass(frozen=True)
class FolderBundle:
    exp_dir: Path
    exp_folder: str

    @property
    def folder_dir(self) -> Path:
        return self.exp_dir / self.exp_folder

    @property
    def stem(self) -> str:
        return f"{self.exp_folder}_external_eval"

    def manifest(self) -> dict[str, Any]:
        path = self.folder_dir / MANIFEST
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise EvalError(f"{path}: not valid JSON ({e})") from None


def final_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Completed runs no other completed run continues from (each branch's last)."""
    completed = [r for r in runs if r.status is RunStatus.COMPLETED and r.output_checkpoint]
    parents = {p for r in completed for p in r.parent_run_ids}
    return [r for r in completed if r.run_id not in parents]


def folder_targets(folder: FolderBundle, *, checkpoint_path: Path | None = None,
                   dataset: Path | None = None, tokenizer: Path | None = None,
                   allow_tokenizer_mismatch: bool = False) -> list[BundleTarget]:
    """The folder's final checkpoints as bundle targets."""
    manifest = folder.manifest()
    with Ledger(ledger_path(folder.exp_dir), create=False) as ledger:
        runs = list(ledger.experiment(folder.exp_folder).runs.values())
    finals = final_runs(runs)
    if not finals:
        raise EvalError(f"experiment folder {folder.exp_folder!r} of {folder.exp_dir} has no "
                        "completed run to evaluate")
    root = checkpoint_path or (Path(manifest["checkpoint_path"])
                               if manifest.get("checkpoint_path") else None)
    if root is None:
        raise EvalError(f"{folder.folder_dir / MANIFEST} is missing; pass --checkpoint-path "
                        "(the folder holding <exp_folder>/<checkpoint>)")
    targets = []
    for r in finals:
        store = dataset
        if store is None:
            stores = manifest.get("data_stores", {}).get(r.family, {})
            chosen = stores.get(LONG_DOCUMENT_STORE) or r.data_root
            store = Path(chosen) if chosen else None
        tok = tokenizer
        if tok is None and manifest.get("hf_root"):
            candidate = Path(manifest["hf_root"]) / r.family
            tok = candidate if (candidate / "tokenizer.json").is_file() else None
        targets.append(BundleTarget(
            name=r.run_id, checkpoint=root / folder.exp_folder / r.output_checkpoint,
            store=store, tokenizer=tok, run_id=r.run_id,
            allow_tokenizer_mismatch=allow_tokenizer_mismatch))
    return targets


def eval_records(entry: dict[str, Any]) -> list[EvalResult]:
    """The ledger eval results of one evaluated checkpoint (names in ttt_ledger.external);
    a failed or non-finite measure is left out, its failure stays in the bundle JSON."""
    out = []
    for r in entry.get("sweep", {}).get("contexts", []):
        metrics = {"loss": r.get("mean_nll"), "tokens": r.get("tokens")}
        for part in ("inside_window", "beyond_window"):
            if (r.get(part) or {}).get("count"):
                metrics[part] = r[part]["mean_nll"]
        metrics = {k: v for k, v in metrics.items() if _finite(v)}
        if "loss" in metrics:
            out.append(EvalResult(context_eval_name(r["context"]), metrics, r["context"]))
    tasks = entry.get("ruler", {}).get("tasks", {})
    if tasks:
        metrics: dict[str, float] = {}
        for way in ("rank", "generation"):
            accs = [t[way]["accuracy"] for t in tasks.values() if way in t]
            if accs:
                metrics[way] = sum(accs) / len(accs)
            metrics.update({f"{name}/{way}": t[way]["accuracy"] for name, t in tasks.items()
                            if way in t})
        metrics["samples"] = sum(t["rank"]["n"] for t in tasks.values())
        out.append(EvalResult(RULER_EVAL, metrics))
    trend = entry.get("trend")
    if trend and _finite(trend["decode_nll_slope"]["per_1k_tokens"]):
        s = trend["decode_nll_slope"]
        metrics = {"nll_slope_per_1k": s["per_1k_tokens"], "low": s["ci95"][0],
                   "high": s["ci95"][1], "tokens": s["n"]}
        free = entry.get("free_trend")
        if free and _finite(free["decode_nll_slope"]["per_1k_tokens"]):
            metrics["free_nll_slope_per_1k"] = free["decode_nll_slope"]["per_1k_tokens"]
        out.append(EvalResult(DECODE_EVAL, metrics))
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and x == x and abs(x) != float("inf")


def record_bundle(folder: FolderBundle, bundle: dict[str, Any]) -> int:
    """Appends each entry's eval results to its ledger run; returns how many."""
    n = 0
    with Ledger(ledger_path(folder.exp_dir)) as ledger:
        for entry in bundle["models"]:
            if entry.get("run_id") is None:
                continue
            for result in eval_records(entry):
                ledger.append_eval(folder.exp_folder, entry["run_id"], result)
                n += 1
    return n


def bundle_folder(folder: FolderBundle, spec: BundleSpec, *, out_dir: Path | None = None,
                  checkpoint_path: Path | None = None, dataset: Path | None = None,
                  tokenizer: Path | None = None, allow_tokenizer_mismatch: bool = False,
                  progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate the folder's final checkpoints, write the bundle, record it in the ledger:
    (bundle, written paths)."""
    targets = folder_targets(folder, checkpoint_path=checkpoint_path, dataset=dataset,
                             tokenizer=tokenizer,
                             allow_tokenizer_mismatch=allow_tokenizer_mismatch)
    bundle = run_bundle(targets, spec, progress=progress)
    bundle["exp_folder"] = folder.exp_folder
    paths = write_bundle(bundle, out_dir or folder.folder_dir, folder.stem)
    paths["ledger_records"] = record_bundle(folder, bundle)
    return bundle, paths
