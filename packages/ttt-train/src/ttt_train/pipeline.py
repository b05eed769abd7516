"""The staged pipeline (`ttt pipeline`): the 10-run matrix of docs/protocol.md per model family, in
dependency order, with the import of each family's pretrained checkpoint, per-family
tokenization of the data roots, a manifest, and the ledger report at the end.

The stage graph comes from ttt-ledger's plan (`build_stage_plan`): a stage's parent is
the stage whose output checkpoint it loads. Each stage is one `run_stage` call on the
experiment file `external/<family>/<config>` plus budget overrides. A stage whose
parent failed is not attempted; a failed stage leaves every earlier checkpoint and
ledger row as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttt_eval.bundle import BundleSpec
from ttt_eval.retrieval import RetrievalSpec
from ttt_eval.ruler import TASKS
from ttt_eval.sweep import DEFAULT_CONTEXTS
from ttt_ledger import (
    Ledger,
    RunRecord,
    RunStatus,
    build_plans,
    build_report,
    ledger_path,
    render,
)
from ttt_ledger.plan import CONTEXT_8K
from ttt_model.atomic import write_atomic
from ttt_train.config import compose_config
from ttt_train.families import pipeline_default_families, plan_family

PATHS = ("scratch", "adapter")
MANIFEST = "pipeline_manifest.json"


class PipelineError(ValueError):
    """Bad pipeline input: unknown family or path, missing data root or snapshot."""


@dataclass(frozen=True)
class Scale:
    """How a budget shapes every stage beyond the experiment file (the pilot's CPU scale).

    `context_divisor` shrinks contexts keeping the 8K:32K ratio, and the stage config's
    own sliding window and TTT chunk likewise; `model_group` swaps in the tiny stand-in.
    """

    context_divisor: int = 1
    batch_8k: int | None = None
    batch_ext: int | None = None
    model_group: str | None = None  # e.g. "pilot/{family}"
    eval_batch_size: int | None = None
    steps: bool = False  # override step budgets with the plan's
    # the evaluation bundle at this scale: RULER tasks, samples per cell, generation cap
    ruler_tasks: tuple[str, ...] | None = None  # None: all
    ruler_lengths: tuple[int, ...] | None = None  # None: the two shortest contexts
    ruler_depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    ruler_samples: int = 4
    ruler_max_new_tokens: int | None = None
    efficiency_repeats: int = 3
    efficiency_contexts: tuple[int, ...] | None = None  # None: the sweep's

    def bundle_spec(self) -> BundleSpec:
        """The evaluation bundle's contexts (8K..128K shrunk like every other length) and
        RULER grid at this scale."""
        contexts = tuple(c // self.context_divisor for c in DEFAULT_CONTEXTS)
        ruler = RetrievalSpec(tasks=self.ruler_tasks or tuple(TASKS),
                              lengths=self.ruler_lengths or contexts[:2],
                              depths=self.ruler_depths, samples_per_cell=self.ruler_samples,
                              max_new_tokens=self.ruler_max_new_tokens)
        return BundleSpec(contexts=contexts, retrieval=ruler,
                          trend_tokens=max(256, contexts[0]),
                          efficiency_repeats=self.efficiency_repeats,
                          efficiency_contexts=self.efficiency_contexts)

    def overrides(self, record: RunRecord, window: int, chunk: int) -> list[str]:
        """Everything this scale changes in a stage whose full-size config (its experiment
        file on the family's own model) has sliding window `window` and TTT chunk `chunk`."""
        out = [f"model={self.model_group.format(family=record.family)}"] if self.model_group \
            else []
        d = self.context_divisor
        if d != 1:
            ctx = record.context_length // d
            out += [f"training.seq_length={ctx}", f"model.seq_len={ctx}",
                    f"model.sliding_window_size={max(1, window // d)}",
                    f"model.mini_batch_size={max(1, chunk // d)}"]
        batch = self.batch_8k if record.context_length <= CONTEXT_8K else self.batch_ext
        if batch:
            out.append(f"training.global_batch_size={batch}")
        if self.eval_batch_size:
            out.append(f"training.eval_batch_size={self.eval_batch_size}")
        if self.steps and record.planned_steps:
            n = record.planned_steps
            out += [f"training.total_steps={n}", f"training.optimizer_outer.lr_decay_steps={n}",
                    f"training.optimizer_outer.lr_warmup_steps={max(1, n // 8)}",
                    f"training.ilr_warmup_steps={max(1, n // 4)}",
                    f"training.save_checkpoint_freq={max(1, n // 2)}", "training.log_freq=1"]
        return out


SCALES = {
    # CPU pilot: contexts 8K/32K -> 256/1024, window 256, b 32, tiny stand-in models.
    "pilot": Scale(context_divisor=32, batch_8k=4, batch_ext=2,
                   model_group="pilot/{family}", eval_batch_size=2, steps=True,
                   ruler_tasks=("niah_single_1", "niah_multikey_1", "niah_multivalue", "vt",
                                "fwe"),  # cwe's fixed parts alone exceed 1024 tokens
                   ruler_lengths=(1024,), ruler_depths=(0.0, 1.0), ruler_samples=2,
                   ruler_max_new_tokens=16, efficiency_contexts=(256, 1024, 4096),
                   efficiency_repeats=2),
    "full": Scale(),
}


@dataclass
class StageOutcome:
    run_id: str
    family: str
    config: str
    input_checkpoint: str | None
    output_checkpoint: str
    status: str  # completed | skipped | failed | blocked
    overrides: list[str] = field(default_factory=list)
    wall_clock_s: float = 0.0
    train_loss: float | None = None
    heldout_loss: float | None = None
    context_length: int | None = None
    error: str | None = None


@dataclass
class PipelineOptions:
    families: Sequence[str]
    path: str  # scratch | adapter | all
    budget: str  # pilot | full
    exp_folder: str
    exp_dir: Path
    checkpoint_path: Path
    dclm_root: Path
    books_root: Path
    hf_root: Path | None = None
    skip_existing: bool = False
    import_parity: bool = True
    overrides: Sequence[str] = ()
    config_dirs: Sequence[Path] = ()
    val_fraction: float = 0.1
    bundle: bool = True  # the evaluation bundle on each branch's final checkpoints


def resolve_families(model: str) -> list[str]:
    if model == "all":
        return pipeline_default_families()
    return [plan_family(m.strip()).key for m in model.split(",") if m.strip()]


def _is_store(path: Path) -> bool:
    return (path / "manifest.json").is_file() or (path / "zarr.json").is_file()


class Pipeline:
    """Runs the plan; `echo` receives progress lines."""

    def __init__(self, opts: PipelineOptions, echo: Callable[[str], None] = print) -> None:
        if opts.path not in (*PATHS, "all"):
            raise PipelineError(f"--path {opts.path!r}: expected scratch, adapter or all")
        if opts.budget not in SCALES:
            raise PipelineError(f"--budget {opts.budget!r}: expected one of {sorted(SCALES)}")
        self.opts, self.echo = opts, echo
        self.folder_dir = opts.exp_dir / opts.exp_folder
        self.outcomes: list[StageOutcome] = []
        self.interrupted: int | None = None  # the signal that stopped the pipeline
        self.imports: list[dict[str, Any]] = []
        self.data: dict[str, dict[str, str]] = {}

    # -- plan -------------------------------------------------------------------------
    def plan(self) -> list[RunRecord]:
        records = build_plans([plan_family(f) for f in self.opts.families],
                              self.opts.exp_folder, self.opts.budget)
        if self.opts.path != "all":
            records = [r for r in records if r.path == self.opts.path]
        return records

    def ckpt_dir(self, name: str) -> Path:
        return self.opts.checkpoint_path / self.opts.exp_folder / name

    # -- inputs -----------------------------------------------------------------------
    def snapshot(self, family: str) -> Path:
        if self.opts.hf_root is None:
            raise PipelineError(f"{family}: no --hf-root given: the family's HF snapshot "
                                "(config.json, *.safetensors, tokenizer) is needed")
        path = self.opts.hf_root / family
        if not (path / "config.json").is_file():
            raise PipelineError(f"{family}: no HF snapshot at {path} (expected "
                                f"{path / 'config.json'})")
        return path

    def data_stores(self, family: str) -> dict[str, str]:
        """Token stores of the family: the roots themselves if they are stores, else the
        corpora tokenized with the family's tokenizer (once, reused on re-runs)."""
        if family in self.data:
            return self.data[family]
        stores = {}
        for name, root in (("dclm", self.opts.dclm_root), ("books3", self.opts.books_root)):
            if not root.exists():
                raise PipelineError(f"data root {root} ({name}) does not exist")
            if _is_store(root):
                stores[name] = str(root)
                continue
            out = self.folder_dir / "data" / family / name
            if not _is_store(out):
                from ttt_data.tokenization import tokenize_corpus

                self.echo(f"[data] tokenizing {root} with the {family} tokenizer -> {out}")
                tokenize_corpus(self.snapshot(family), [root], out,
                                val_fraction=self.opts.val_fraction, progress=False)
            stores[name] = str(out)
        self.data[family] = stores
        return stores

    def import_base(self, family: str) -> str:
        """The family's `import-<short>-fa-base` checkpoint (imported once, with parity)."""
        name = f"import-{plan_family(family).short}-fa-base"
        out = self.ckpt_dir(name)
        if (out / "latest.json").is_file():
            self.imports.append({"family": family, "checkpoint": name, "status": "exists"})
            return name
        from ttt_import import Recipe, import_snapshot

        snap = self.snapshot(family)
        self.echo(f"[import] {snap} -> {out} (recipe fa, parity "
                  f"{'on' if self.opts.import_parity else 'off'})")
        t0 = time.perf_counter()
        result = import_snapshot(snap, out, recipe=Recipe(kind="fa"),
                                 parity=self.opts.import_parity)
        parity = result.audit.parity or {}
        self.imports.append({
            "family": family, "checkpoint": name, "status": "imported", "snapshot": str(snap),
            "seconds": round(time.perf_counter() - t0, 2),
            "max_abs_logit_diff": parity.get("max_abs_logit_diff"),
            "params": result.audit.param_count})
        self.echo(f"[import] done: {result.audit.param_count:,} parameters"
                  + (f", parity max |Δlogit| {parity['max_abs_logit_diff']:.2e}"
                     if "max_abs_logit_diff" in parity else ""))
        return name

    # -- stages -----------------------------------------------------------------------
    def stage_overrides(self, record: RunRecord, stores: dict[str, str]) -> list[str]:
        o = self.opts
        scale = SCALES[o.budget]
        base = [f"+experiment={record.config_name}",
                f"training.exp_folder={o.exp_folder}", f"training.exp_dir={o.exp_dir}",
                f"training.checkpoint_path={o.checkpoint_path}",
                f"training.run_id={record.run_id}",
                f"training.ledger.family={record.family}",
                f"training.ledger.path={record.path}", f"training.ledger.stage={record.stage}",
                f"deploy_paths.data.dclm={stores['dclm']}",
                f"deploy_paths.data.books3={stores['books3']}"]
        model = compose_config(base, o.config_dirs).resolved("model")  # the full-size sizes
        return [*base, *scale.overrides(record, model["sliding_window_size"],
                                        model["mini_batch_size"]), *o.overrides]

    def run(self) -> list[StageOutcome]:
        from ttt_train.stage import run_stage

        records = self.plan()
        self._check_existing(records)
        with Ledger(ledger_path(self.opts.exp_dir)) as ledger:
            ledger.add_plan(records)
        done: dict[str, str] = {}
        total = len(records)
        for i, record in enumerate(records, 1):
            out = StageOutcome(record.run_id, record.family, record.config_name or "",
                               record.checkpoint_source, record.output_checkpoint or "",
                               "failed")
            head = f"[{i}/{total}] {record.run_id} {record.config_name}"
            blocked = [p for p in record.parent_run_ids if done.get(p) not in
                       ("completed", "skipped")]
            if blocked:
                out.status, out.error = "blocked", f"parent {blocked[0]} did not complete"
                self._fail_record(record, out.error)
                self.echo(f"{head}: not run ({out.error})")
                self._finish(out, done)
                continue
            if self.opts.skip_existing and self._complete(record):
                out.status = "skipped"
                self.echo(f"{head}: skipped (completed; checkpoint exists)")
                self._finish(out, done)
                continue
            t0 = time.perf_counter()
            try:
                stores = self.data_stores(record.family)
                if record.checkpoint_source and record.checkpoint_source.startswith("import-"):
                    self.import_base(record.family)
                out.overrides = self.stage_overrides(record, stores)
                if self.opts.skip_existing and self._interrupted(record):
                    out.overrides += ["training.load_part=all", "training.resume_exp_name="]
                    self.echo(f"{head}: resuming its interrupted run (load_part=all)")
                self.echo(f"{head}: {record.model_kind.upper()} {record.train_mode}, "
                          f"input {record.checkpoint_source or 'fresh'} -> "
                          f"{record.output_checkpoint}")
                result = run_stage(compose_config(out.overrides, self.opts.config_dirs))
                out.status = result.status
                self.interrupted = result.signal
                out.train_loss = result.train_loss
                out.heldout_loss = result.heldout.loss if result.heldout else None
            except Exception as e:  # one stage's failure must not lose the others
                out.status, out.error = "failed", f"{type(e).__name__}: {e}"
                self._fail_record(record, out.error)
                self.echo(f"{head}: FAILED: {out.error}")
            out.wall_clock_s = round(time.perf_counter() - t0, 2)
            if out.status == "completed":
                self.echo(f"{head}: done in {out.wall_clock_s:.1f} s, train loss "
                          f"{out.train_loss:.4f}, held-out loss "
                          f"{_fmt(out.heldout_loss)}")
            self._finish(out, done)
            if self.interrupted is not None:  # stop here; --skip-existing resumes the stage
                self.echo(f"{head}: interrupted by signal {self.interrupted} (checkpointed); "
                          "rerun the same command with --skip-existing to resume")
                break
        return self.outcomes

    def evaluate(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The evaluation bundle on each branch's final checkpoints (None when no stage
        completed): JSON/CSV/plots in the folder and eval records in the ledger."""
        from ttt_train.external_eval import FolderBundle, bundle_folder

        if not any(o.status in ("completed", "skipped") for o in self.outcomes):
            return None
        self.echo("[eval] evaluation bundle on the final checkpoints")
        return bundle_folder(FolderBundle(self.opts.exp_dir, self.opts.exp_folder),
                             SCALES[self.opts.budget].bundle_spec(),
                             checkpoint_path=self.opts.checkpoint_path)

    def _finish(self, out: StageOutcome, done: dict[str, str]) -> None:
        done[out.run_id] = out.status
        self.outcomes.append(out)
        self.write_manifest()

    def _complete(self, record: RunRecord) -> bool:
        with Ledger(ledger_path(self.opts.exp_dir)) as ledger:
            current = ledger.get_run(record.exp_folder, record.run_id)
        return current.status is RunStatus.COMPLETED and \
            (self.ckpt_dir(record.output_checkpoint) / "latest.json").is_file()

    def _interrupted(self, record: RunRecord) -> bool:
        with Ledger(ledger_path(self.opts.exp_dir)) as ledger:
            current = ledger.get_run(record.exp_folder, record.run_id)
        return current.status is RunStatus.INTERRUPTED and \
            (self.ckpt_dir(record.output_checkpoint) / "latest.json").is_file()

    def _check_existing(self, records: list[RunRecord]) -> None:
        if self.opts.skip_existing:
            return
        taken = [r.output_checkpoint for r in records
                 if (self.ckpt_dir(r.output_checkpoint) / "latest.json").is_file()]
        if taken:
            raise PipelineError(
                f"experiment folder {self.opts.exp_folder!r} already holds checkpoints "
                f"{taken[:3]}{' ...' if len(taken) > 3 else ''} under "
                f"{self.opts.checkpoint_path / self.opts.exp_folder}; pass --skip-existing "
                "to keep completed stages and run the rest, or use a new --exp-folder")

    def _fail_record(self, record: RunRecord, reason: str) -> None:
        with Ledger(ledger_path(self.opts.exp_dir)) as ledger:
            current = ledger.get_run(record.exp_folder, record.run_id)
            if current.status not in (RunStatus.FAILED, RunStatus.COMPLETED,
                                      RunStatus.INTERRUPTED):
                ledger.fail_run(record.exp_folder, record.run_id, reason)

    # -- outputs ----------------------------------------------------------------------
    def write_manifest(self) -> Path:
        o = self.opts
        data = {"exp_folder": o.exp_folder, "budget": o.budget, "path": o.path,
                "families": list(o.families), "exp_dir": str(o.exp_dir),
                "checkpoint_path": str(o.checkpoint_path), "dclm_root": str(o.dclm_root),
                "books_root": str(o.books_root),
                "hf_root": str(o.hf_root) if o.hf_root else None,
                "data_stores": self.data, "imports": self.imports,
                "stages": [asdict(s) for s in self.outcomes]}
        self.folder_dir.mkdir(parents=True, exist_ok=True)
        return write_atomic(self.folder_dir / MANIFEST, json.dumps(data, indent=2) + "\n")

    def report(self, metric: str = "loss") -> str:
        """The ledger report of the folder (table), also written as CSV/JSON/Markdown."""
        with Ledger(ledger_path(self.opts.exp_dir)) as ledger:
            experiment = ledger.experiment(self.opts.exp_folder)
        report = build_report(experiment, metric)
        heldout = build_report(experiment, "heldout_loss")
        for name, rep in (("report", report), ("report_heldout", heldout)):
            for fmt in ("csv", "json", "md"):
                (self.folder_dir / f"{name}.{fmt}").write_text(render(rep, fmt))
        return render(report, "table")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"

