"""One training stage (`ttt train`): compose the library calls in order.

1. Translate the composed config; set up the runtime (platform, cache, distributed, mesh).
2. Fail fast, before any training work: resume source, destination, token store (vocab,
   length, tokenizer hash), batch layout, checkpoint shapes.
3. Open the ledger record, write the configs, place the state on the mesh, compile once.
4. Train: metrics of every step to the trackers (metrics.jsonl, and W&B / TensorBoard when
   asked), a log line every `log_freq` steps, checkpoint every `save_checkpoint_freq` steps
   and at the end (params, optimiser, data iterator state, step), stop on a non-finite
   loss, and on SIGTERM/SIGINT checkpoint the current step and mark the record `interrupted`.
5. Evaluate the held-out loss at the stage's context; complete the ledger record; draw the
   training-loss curve (`loss_curve.png`).

Only one process writes a run at a time (`run_lock`); the lock is taken before anything of
the run is touched, so a refused second writer changes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from ttt_data.manifest import read_manifest
from ttt_eval.errors import EvalError
from ttt_eval.heldout import HeldoutLoss, heldout_loss
from ttt_ledger import (
    EvalResult,
    Ledger,
    MetricPoint,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    config_hash,
    git_commit,
    ledger_path,
    package_versions,
    save_record_json,
)
from ttt_model.checkpoint import save_checkpoint
from ttt_model.sharding import state_shardings
from ttt_model.train import TrainState, make_train_step
from ttt_train.config import ComposedConfig, RunConfigError, write_configs
from ttt_train.data_feed import TrainFeed, heldout_batches
from ttt_train.interrupts import StopRequest, stop_on_signals
from ttt_train.loss_curve import write_loss_curve
from ttt_train.redaction import composed_without_secrets
from ttt_train.run_lock import RunLock, describe_previous
from ttt_train.run_log import RunLog, format_step
from ttt_train.runtime import Runtime, start_runtime
from ttt_train.samples import TextSampler
from ttt_train.tracking import JsonlTracker, Trackers, optional_trackers
from ttt_train.translate import StageSpec, model_kind, tokens_per_step, translate
from ttt_train.warmstart import StartPoint, check_fresh_destination, source_dir, start_point

PACKAGES = ("ttt", "ttt-train", "ttt-model", "ttt-data", "ttt-ledger", "ttt-import", "ttt-eval",
            "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf: the run stops and keeps its last good checkpoint."""


@dataclass(frozen=True)
class StageResult:
    run_id: str
    exp_name: str
    status: str  # completed | interrupted (signal or break_step) | skipped (already done)
    step: int
    tokens_seen: int
    wall_clock_s: float
    train_loss: float | None
    heldout: HeldoutLoss | None
    checkpoint_dir: Path
    run_dir: Path
    signal: int | None = None  # the signal that interrupted the stage


def place(tree: Any, mesh: Mesh) -> Any:
    """Put host/default-device arrays on the mesh with the FSDP rule (any process count)."""
    shardings = state_shardings(tree, mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def one(x: Any, sharding: Any) -> jax.Array:
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


class _LedgerWriter:
    """The stage's ledger record, written by the primary process only."""

    def __init__(self, spec: StageSpec, composed: ComposedConfig, primary: bool) -> None:
        self.spec, self.composed = spec, composed
        self.ledger = Ledger(ledger_path(spec.paths.exp_dir)) if primary else None
        self.folder, self.run_id = spec.paths.exp_folder, spec.ledger.run_id

    def exists(self) -> bool:
        if self.ledger is None:
            return False
        try:
            self.ledger.get_run(self.folder, self.run_id)
            return True
        except RunNotFoundError:
            return False

    def start(self, start: StartPoint, runtime: Runtime) -> None:
        if self.ledger is None:
            return
        s = self.spec
        fields = dict(context_length=s.data.seq_len, planned_steps=s.train.total_steps,
                      config_name=self.composed.choices.get("experiment"),
                      data_root=s.data.store, output_checkpoint=s.paths.exp_name,
                      checkpoint_source=s.restore.source_exp_name, recipe=s.restore.recipe,
                      train_mode=s.train.train_mode, model_kind=model_kind(s.model))
        if not self.exists():
            self.ledger.add_run(RunRecord(
                run_id=self.run_id, exp_folder=self.folder, family=s.ledger.family,
                path=s.ledger.path, stage=s.ledger.stage, **fields))
        else:
            planned = self.ledger.get_run(self.folder, self.run_id)
            if planned.recipe is not None and s.restore.recipe is None:
                fields["recipe"] = planned.recipe  # an import recipe the plan recorded
            self.ledger.update_run(self.folder, self.run_id, **fields)
        self.ledger.start_run(
            self.folder, self.run_id, restore=start.status, device_kind=runtime.device_kind,
            device_count=runtime.device_count, config_hash=config_hash(s.resolved),
            git_commit=git_commit("."), package_versions=package_versions(PACKAGES),
            rerun=True)
        self.save_json()

    def progress(self, step: int, tokens: int, wall: float, points: list[MetricPoint]) -> None:
        if self.ledger is None:
            return
        self.ledger.record_progress(self.folder, self.run_id, steps_completed=step,
                                    tokens_seen=tokens, wall_clock_s=wall, points=points)
        self.save_json()

    def complete(self, final: dict[str, float], step: int, tokens: int, wall: float,
                 heldout: HeldoutLoss | None) -> None:
        if self.ledger is None:
            return
        if heldout is not None:
            self.ledger.append_eval(self.folder, self.run_id, EvalResult(
                "heldout", {"loss": heldout.loss, "tokens": heldout.tokens,
                            "sequences": heldout.sequences},
                context_length=self.spec.data.seq_len,
                per_position_nll=heldout.per_position_nll))
        self.ledger.complete_run(self.folder, self.run_id, final_metrics=final,
                                 steps_completed=step, tokens_seen=tokens, wall_clock_s=wall)
        self.save_json()

    def interrupt(self, reason: str, step: int, tokens: int, wall: float) -> None:
        if self.ledger is None:
            return
        self.ledger.interrupt_run(self.folder, self.run_id, reason=reason,
                                  steps_completed=step, tokens_seen=tokens, wall_clock_s=wall)
        self.save_json()

    def fail(self, reason: str) -> None:
        if self.ledger is None or not self.exists():
            return
        record = self.ledger.get_run(self.folder, self.run_id)
        if record.status in (RunStatus.COMPLETED, RunStatus.INTERRUPTED):
            return
        self.ledger.fail_run(self.folder, self.run_id, reason)
        self.save_json()

    def save_json(self) -> None:
        if self.ledger is not None and self.spec.paths.run_dir.exists():
            save_record_json(self.ledger.get_run(self.folder, self.run_id),
                             self.spec.paths.run_dir)

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()


def run_stage(composed: ComposedConfig) -> StageResult:
    """Run one stage end to end; raises with a clear message on bad input or divergence,
    after marking the stage's ledger record failed (earlier checkpoints stay)."""
    spec = translate(composed)
    runtime = start_runtime(spec.backend, spec.mesh)
    label = f"{spec.paths.exp_folder}/{spec.paths.exp_name}"
    lock = RunLock(spec.paths.run_dir, label) if runtime.is_primary else None
    writer = _LedgerWriter(spec, composed, runtime.is_primary)
    try:
        with stop_on_signals() as stop:
            return _run(spec, composed, runtime, writer, stop, lock)
    except BaseException as e:
        writer.fail(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        raise
    finally:
        writer.close()
        if lock is not None:
            lock.release()


def _run(spec: StageSpec, composed: ComposedConfig, runtime: Runtime,
         writer: _LedgerWriter, stop: StopRequest, lock: RunLock | None) -> StageResult:
    t_start = time.perf_counter()
    paths, model_cfg, tc = spec.paths, spec.model, spec.train
    # -- fail fast: nothing below compiles or trains ---------------------------------
    source_dir(spec.restore, paths)
    check_fresh_destination(paths, spec.restore)
    primary = runtime.is_primary
    extra_trackers = optional_trackers(  # imports W&B / TensorBoard now: a missing one stops here
        spec.tracking, paths.run_dir, name=spec.ledger.run_id, group=paths.exp_folder,
        job_type=spec.ledger.stage) if primary else []
    feed_kwargs = dict(vocab_size=model_cfg.vocab_size, bos_id=model_cfg.bos_token_id,
                       mesh=runtime.mesh, process_index=runtime.process_index,
                       process_count=runtime.process_count)
    feed = TrainFeed(spec.data, **feed_kwargs)
    eval_data = (heldout_batches(spec.data, **feed_kwargs) if spec.data.eval_batches > 0
                 else [])
    start = start_point(model_cfg, tc, spec.restore, paths, spec.model_seed)
    sampler = _sampler(spec, runtime)
    # -- run directory, ledger, log ---------------------------------------------------
    if primary:
        write_configs(composed_without_secrets(composed), paths.run_dir, spec.resolved)
    log = RunLog(paths.run_dir if primary else None, progress=spec.schedule.progress,
                 total_steps=tc.total_steps, start_step=start.step, label=spec.ledger.run_id)
    previous = describe_previous(lock) if lock is not None else None
    if previous is not None:
        log.info(f"took over the lock of {previous}, which ended without releasing it")
    for line in (*(f"config: {d}" for d in spec.derived), *start.notes):
        log.info(line)
    trackers = Trackers([JsonlTracker(log), *extra_trackers])
    try:
        return _train(spec, runtime, writer, feed, eval_data, start, log, trackers, t_start,
                      stop, sampler)
    finally:
        trackers.finish()
        if primary:
            write_loss_curve(paths.run_dir, spec.ledger.run_id)
        log.close()


def _train(spec: StageSpec, runtime: Runtime, writer: _LedgerWriter, feed: TrainFeed,
           eval_data: list, start: StartPoint, log: RunLog, trackers: Trackers,
           t_start: float, stop: StopRequest, sampler: TextSampler | None) -> StageResult:
    paths, tc, sched = spec.paths, spec.train, spec.schedule
    stop_at = min(tc.total_steps, sched.break_step or tc.total_steps)
    log.info(f"stage {spec.ledger.run_id} ({paths.exp_folder}/{paths.exp_name}): "
             f"{model_kind(spec.model).upper()} {tc.train_mode}, context {spec.data.seq_len}, "
             f"batch {spec.data.global_batch_size}, steps {tc.total_steps}, "
             f"mesh {dict(runtime.mesh.shape)} on {runtime.device_count} {runtime.device_kind} "
             f"device(s), {runtime.process_count} process(es)")
    if start.status.kind == "resumed":
        log.info(f"RESUME: starting from global_step={start.step}")
        feed.restore(start.data_state)
    elif start.status.kind == "params":
        log.info(f"loaded weights from {start.source_dir} (load_part=params); step 0")
    if start.step >= stop_at:
        log.info(f"nothing to do: checkpoint step {start.step} >= {stop_at}")
        return StageResult(spec.ledger.run_id, paths.exp_name, "skipped", start.step,
                           start.tokens_seen, start.wall_clock_s, None, None,
                           paths.checkpoint_dir, paths.run_dir)
    for line in trackers.start(spec.resolved, start.step):
        log.info(f"tracking: {line}")
    writer.start(start, runtime)

    state = place(start.state, runtime.mesh)
    step_fn = make_train_step(start.graphdef, tc, mesh=runtime.mesh, state=state)
    per_step = tokens_per_step(spec)
    tokens, wall0 = start.tokens_seen, start.wall_clock_s
    last_ckpt = start.step if start.status.kind == "resumed" else None
    points: list[MetricPoint] = []
    loss = None

    def wall() -> float:
        return wall0 + time.perf_counter() - t_start

    tokenizer = store_tokenizer(spec.data.store)

    def checkpoint(step: int, state: TrainState) -> None:
        nonlocal points, last_ckpt
        meta = {"data_state": feed.state(), "tokens_seen": tokens, "wall_clock_s": wall(),
                "exp_name": paths.exp_name, "train_config": tc.to_dict(),
                "rng": {"model_seed": spec.model_seed, "data_seed": spec.data.seed},
                "restore": start.status.label, "tokenizer": tokenizer}
        save_checkpoint(paths.checkpoint_dir, step, params=state.params,
                        model_cfg=spec.model, opt_state=state.opt_state, meta=meta,
                        max_to_keep=sched.keep_checkpoints)
        last_ckpt = step
        writer.progress(step, tokens, wall(), points)
        points = []
        log.info(f"checkpoint step {step} -> {paths.checkpoint_dir}")

    for step in range(start.step + 1, stop_at + 1):
        t0 = time.perf_counter()
        tokens_AxBxT1, mask_AxBxT = feed.next()
        state, metrics = step_fn(state, tokens_AxBxT1, mask_AxBxT)
        m = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "token_nll"}
        dt = time.perf_counter() - t0
        loss = m["loss"]
        tokens += per_step
        row = {"loss": loss, "grad_norm": m["grad_norm"], "lr": m["lr"],
               "inner_lr": m["inner_lr"], "n_tokens": int(m["n_tokens"]),
               "tokens_seen": tokens, "step_s": dt, "tokens_per_s": per_step / dt,
               "wall_clock_s": wall()}
        trackers.log(step, row)
        if not (math.isfinite(loss) and math.isfinite(m["grad_norm"])):
            where = (f"the last good checkpoint is step {last_ckpt} in {paths.checkpoint_dir}"
                     if last_ckpt is not None else "no checkpoint was written by this run")
            what = f"loss {loss}, grad_norm {m['grad_norm']}, lr {m['lr']:.3g}"
            log.info(f"STOP: non-finite loss or gradient at step {step} ({what}); {where}")
            raise NonFiniteLossError(
                f"non-finite loss or gradient at step {step} ({what}): training stopped; "
                f"{where}")
        points.append(MetricPoint("loss", step, tokens, row["wall_clock_s"], loss))
        status = f"loss {loss:.4f} {row['tokens_per_s']:,.0f} tok/s"
        log.advance(step, status)
        if step % sched.log_every == 0 or step == stop_at or step == start.step + 1:
            log.info(format_step(step, tc.total_steps, row))
        due = (step % sched.checkpoint_every == 0 if sched.checkpoint_every > 0 else False) or \
            (sched.milestone_every > 0 and step % sched.milestone_every == 0)
        if due or step == stop_at:
            checkpoint(step, state)
        if sampler is not None and sampler.due(step) and runtime.is_primary:
            log.info(f"sample at step {step}: {sampler.prompt_text!r} -> "
                     f"{sampler.sample(start.graphdef, state.params, step)!r}")
        signum = stop.any(runtime.process_count)
        if signum is not None and step < stop_at:
            if last_ckpt != step:
                checkpoint(step, state)
            return _interrupted(spec, writer, log, step, tokens, wall(), loss,
                                f"{stop.name or 'a stop signal'} at step {step}", signum)

    if stop_at < tc.total_steps:
        return _interrupted(spec, writer, log, stop_at, tokens, wall(), loss,
                            f"stopped at training.break_step={stop_at} of "
                            f"total_steps={tc.total_steps}", None)
    if stop.any(runtime.process_count) is not None:  # during the last step: skip the eval
        return _interrupted(spec, writer, log, stop_at, tokens, wall(), loss,
                            f"{stop.name} after the last step, before the held-out eval",
                            stop.signum)

    heldout = None
    if eval_data:
        heldout = heldout_loss(start.graphdef, state.params, tc, stop_at, eval_data,
                               runtime.mesh)
        log.info(f"held-out loss at context {spec.data.seq_len}: {heldout.loss:.4f} "
                 f"({heldout.tokens} tokens, {heldout.sequences} sequences, split "
                 f"{spec.data.eval_split!r})")
    final = {"loss": loss}  # the train-loss curve's last point, as the curve is logged
    if heldout is not None:
        final["heldout_loss"] = heldout.loss
    writer.complete(final, stop_at, tokens, wall(), heldout)
    log.info(f"done: {stop_at} steps, {tokens:,} tokens, {wall():.1f} s")
    return StageResult(spec.ledger.run_id, paths.exp_name, "completed", stop_at, tokens,
                       wall(), loss, heldout, paths.checkpoint_dir, paths.run_dir)


def _interrupted(spec: StageSpec, writer: _LedgerWriter, log: RunLog, step: int,
                 tokens: int, wall: float, loss: float | None, why: str,
                 signum: int | None) -> StageResult:
    """Close an interrupted stage: its checkpoint of `step` is written; say how to resume."""
    reason = f"{why}; checkpoint step {step} written; resume with training.load_part=all"
    log.info(f"INTERRUPTED: {reason}")
    writer.interrupt(reason, step, tokens, wall)
    paths = spec.paths
    return StageResult(spec.ledger.run_id, paths.exp_name, "interrupted", step, tokens, wall,
                       loss, None, paths.checkpoint_dir, paths.run_dir, signal=signum)


def _sampler(spec: StageSpec, runtime: Runtime) -> TextSampler | None:
    """The run's text sampler (`training.sample_every`), checked before any training."""
    if not spec.samples.every:
        return None
    if runtime.process_count > 1:
        raise RunConfigError("training.sample_every: text samples run in one process; set "
                             "it to 0 for a multi-process run")
    try:
        return TextSampler(spec.samples, spec.train, spec.model.vocab_size)
    except EvalError as e:
        raise RunConfigError(f"training.sample_every: {e}") from None


def store_tokenizer(store: str) -> dict[str, Any] | None:
    """The tokenizer (name, sha256) recorded by the token store's manifest, if it has one:
    saved with each checkpoint so evaluation can refuse a text tokenized differently."""
    manifest = read_manifest(store)
    if manifest is None:
        return None
    return {"name": manifest.tokenizer.name, "sha256": manifest.tokenizer.sha256}

