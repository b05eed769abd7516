"""Checkpoints (Orbax): parameters, optimiser state and JSON metadata per step, atomically,
each array checked when it is read back.

Layout of a checkpoint directory:
    <dir>/<step>/params       parameter arrays (an nnx pure dict)
    <dir>/<step>/opt_state    optimiser state (optional)
    <dir>/<step>/meta         JSON: model config, step, the arrays' checksums, and whatever
                              the caller adds (data iterator state, RNG, train config, ...)
    <dir>/latest.json         {"step": N, "model_config": {...}}, rewritten after each save
    <dir>/corrupt/<step>.<utc>/  damaged steps moved aside by `quarantine_step` (reason.txt)

Orbax writes each step into `<step>.orbax-checkpoint-tmp-*` and renames it when complete, so
a crash mid-save leaves the previous steps intact; listing and restoring ignore such a
leftover and the next save removes it. `latest.json` is replaced atomically too.

Integrity. Orbax keeps no checksum of array data (a flipped byte in an OCDBT data file
restores as a silently wrong value), so every save records, in the step's meta (written in
the same atomic step), the dtype, shape and CRC32 of each params/opt_state array's host bytes
in C order. Arrays that are not fully addressable (multi-host) get `crc32: null`: only their
finiteness is checked. Save refuses NaN/Inf: a poisoned step would otherwise become the
newest and rotate a good one out of `max_to_keep`. Every read checks the checksums and that
floating arrays are finite; any damage (unreadable, truncated or missing file, checksum
mismatch, NaN/Inf, unreadable meta) raises `CheckpointCorruptError`, one line naming the
step, the file and the tensor. Steps saved before checksums existed restore with the
finiteness check only. Restoring also checks every array's shape against the target.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from ttt_model.atomic import write_atomic
from ttt_model.config import ModelConfig

LATEST = "latest.json"
CHECKSUMS = "array_checksums"  # reserved meta key: {item: {tensor key: record}}
CORRUPT = "corrupt"
ARRAY_ITEMS = ("params", "opt_state")
_RECORD_FIELDS = {"dtype", "shape", "crc32"}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or does not fit the model it is restored into."""


class CheckpointCorruptError(CheckpointError):
    """A step's files are damaged: use an older step (`restore_newest_intact`) and move this
    one aside (`quarantine_step`)."""


@dataclass(frozen=True)
class SkippedStep:
    """A step `restore_newest_intact` passed over, with its one-line reason."""
    step: int
    reason: str


@dataclass(frozen=True)
class IntactCheckpoint:
    """The newest step that restored cleanly, and the newer damaged steps (newest first)."""
    step: int
    params: nnx.State
    opt_state: Any  # None when no optimiser target was given
    meta: dict[str, Any]
    skipped: tuple[SkippedStep, ...]


def _manager(directory: Path, max_to_keep: int | None = None, create: bool = True,
             clean_tmp: bool = False) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                        enable_async_checkpointing=False,
                                        cleanup_tmp_directories=clean_tmp)
    handlers = {"params": ocp.StandardCheckpointHandler(),
                "opt_state": ocp.StandardCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory.absolute(), options=opts, item_handlers=handlers)


def _write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_checkpoint(directory: str | Path, step: int, *, params: nnx.State,
                    model_cfg: ModelConfig, opt_state: Any = None,
                    meta: dict[str, Any] | None = None, max_to_keep: int | None = None
                    ) -> Path:
    """Save one step with its arrays' checksums; keeps the newest `max_to_keep` steps.
    Returns the step directory. Refuses NaN/Inf and an existing step (nothing is written)."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    arrays = {"params": _to_pure(params)}
    if opt_state is not None:
        arrays["opt_state"] = _leaves(opt_state)
    checksums = {item: _record_arrays(directory, step, item, tree)
                 for item, tree in arrays.items()}
    meta = {**(meta or {}), "step": int(step), "model_config": model_cfg.to_dict(),
            CHECKSUMS: checksums}
    items = {item: ocp.args.StandardSave(tree) for item, tree in arrays.items()}
    items["meta"] = ocp.args.JsonSave(meta)
    with _manager(directory, max_to_keep, clean_tmp=True) as mngr:
        try:
            mngr.save(int(step), args=ocp.args.Composite(**items), force=True)
        except ocp.checkpoint_manager.StepAlreadyExistsError:
            raise CheckpointError(
                f"{directory} already holds step {step}: quarantine_step() or delete it "
                "before saving that step again") from None
        mngr.wait_until_finished()
    if jax.process_index() == 0:
        _write_json_atomic(directory / LATEST, {"step": int(step),
                                                "model_config": model_cfg.to_dict()})
    return directory / str(step)


def _leaves(tree: Any) -> dict[str, Any]:
    """Optimiser state as numbered leaves: its structure comes from the optimiser config."""
    return {f"{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree))}


def _to_pure(params: nnx.State) -> dict:
    return nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params


def _host_array(x: Any) -> np.ndarray | None:
    """The array's bytes on this host in C order; None when other hosts hold parts of it."""
    if not getattr(x, "is_fully_addressable", True):
        return None
    return np.asarray(x, order="C")


def _crc32(host: np.ndarray) -> int:
    return zlib.crc32(host.reshape(-1).view(np.uint8))


def _count_nonfinite(x: Any, host: np.ndarray | None) -> int:
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return 0
    if host is None:  # a global reduction: every host takes part
        return int(jnp.size(x) - jnp.count_nonzero(jnp.isfinite(x)))
    return int(host.size - np.count_nonzero(np.isfinite(host)))


def _record_arrays(directory: Path, step: int, item: str, tree: Any
                   ) -> dict[str, dict[str, Any]]:
    """dtype, shape and CRC32 of each array, refusing NaN/Inf (see the module docstring)."""
    records = {}
    for key, x in _flat(tree):
        host = _host_array(x)
        bad = _count_nonfinite(x, host)
        if bad:
            raise CheckpointError(
                f"refusing to save step {step} to {directory}: {item} tensor {key!r} holds "
                f"NaN/Inf ({bad} of {np.size(x)} values); earlier steps are untouched")
        records[key] = {"dtype": str(x.dtype), "shape": list(np.shape(x)),
                        "crc32": None if host is None else _crc32(host)}
    return records


def latest_step(directory: str | Path) -> int | None:
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    if not directory.is_dir():
        return None
    with _manager(directory, create=False) as mngr:
        return mngr.latest_step()


def _steps(directory: Path) -> list[int]:
    """The complete steps, oldest first (interrupted saves are not listed)."""
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    with _manager(directory, create=False) as mngr:
        steps = sorted(mngr.all_steps())
    if not steps:
        raise CheckpointError(f"checkpoint directory {directory} holds no complete step")
    return steps


def _resolve_step(directory: Path, step: int | None) -> int:
    steps = _steps(directory)
    if step is None:
        return steps[-1]
    if step not in steps:
        raise CheckpointError(f"{directory} has no step {step}; it has {steps}")
    return step


def _corrupt(directory: Path, step: int, what: str, file: Path) -> CheckpointCorruptError:
    return CheckpointCorruptError(f"checkpoint {directory / str(step)}: {what} (file {file})")


def _reason(e: BaseException) -> str:
    """The innermost cause of an Orbax/tensorstore error as one short line (their messages
    span many lines and embed whole tensorstore specs)."""
    while (inner := e.__cause__ or e.__context__) is not None:
        e = inner
    lines = str(e).strip().splitlines()
    text = (lines[0] if lines else "").split(" [tensorstore_spec=")[0]
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def _well_formed(checksums: Any) -> bool:
    return isinstance(checksums, dict) and all(
        isinstance(records, dict) and all(
            isinstance(r, dict) and set(r) == _RECORD_FIELDS and isinstance(r["dtype"], str)
            and isinstance(r["shape"], list) and (r["crc32"] is None or isinstance(r["crc32"], int))
            for r in records.values())
        for records in checksums.values())


def _raw_meta(directory: Path, step: int) -> dict[str, Any]:
    """A step's meta as saved, checksums included; damage raises CheckpointCorruptError."""
    file = directory / str(step) / "meta" / "metadata"
    try:
        with _manager(directory, create=False) as mngr:
            meta = mngr.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax and json raise assorted types for a damaged file
        raise _corrupt(directory, step, f"meta is unreadable ({_reason(e)})", file) from e
    if not isinstance(meta, dict) or meta.get("step") != step:
        got = meta.get("step") if isinstance(meta, dict) else type(meta).__name__
        raise _corrupt(directory, step, f"meta belongs to step {got!r}, not this one", file)
    if CHECKSUMS in meta and not _well_formed(meta[CHECKSUMS]):
        raise _corrupt(directory, step, "meta's array checksums are malformed", file)
    return dict(meta)


def read_meta(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON metadata saved with a step (the newest by default), without the checksums."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    step = _resolve_step(directory, step)
    return {k: v for k, v in _raw_meta(directory, step).items() if k != CHECKSUMS}


def read_model_config(directory: str | Path, step: int | None = None) -> ModelConfig:
    return ModelConfig.from_dict(read_meta(directory, step)["model_config"])


def _stored_tree(directory: Path, step: int, item: str) -> Any | None:
    """The array metadata tree of an item as stored; None when its directory is absent."""
    path = directory / str(step) / item
    if not path.is_dir():
        return None
    handler = ocp.StandardCheckpointHandler()
    try:
        tree = handler.metadata(epath.Path(path))
    except Exception as e:  # orbax and tensorstore raise assorted types for damaged files
        raise _corrupt(directory, step, f"{item} metadata is unreadable ({_reason(e)})",
                       path) from e
    finally:
        handler.close()
    if tree is None:
        raise _corrupt(directory, step, f"{item} has no array metadata", path)
    return tree


def _check_against_records(directory: Path, step: int, item: str, stored: dict[str, Any],
                           records: dict[str, dict[str, Any]]) -> None:
    file = directory / str(step) / item
    if missing := sorted(set(records) - set(stored)):
        raise _corrupt(directory, step, f"{item} tensor {missing[0]!r} is missing (meta "
                                        "records its checksum)", file)
    if unrecorded := sorted(set(stored) - set(records)):
        raise _corrupt(directory, step, f"{item} tensor {unrecorded[0]!r} has no checksum "
                                        "in meta", file)
    for key, m in stored.items():
        want = (records[key]["dtype"], tuple(records[key]["shape"]))
        if (str(m.dtype), tuple(m.shape)) != want:
            raise _corrupt(directory, step, f"{item} tensor {key!r} is stored as {m.dtype}"
                                            f"{tuple(m.shape)} but was saved as "
                                            f"{want[0]}{want[1]}", file)


def _check_fits(directory: Path, step: int, item: str, stored: dict[str, Any],
                target: dict[str, Any]) -> None:
    missing = sorted(set(target) - set(stored))
    unexpected = sorted(set(stored) - set(target))
    if missing or unexpected:
        raise CheckpointError(
            f"{directory}/{step}/{item} does not fit the target: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}")
    for key, t in target.items():
        s = stored[key]
        if tuple(s.shape) != tuple(np.shape(t)):
            raise CheckpointError(
                f"{directory}/{step}/{item}: '{key}' has shape {tuple(s.shape)} in the "
                f"checkpoint but the model expects {tuple(np.shape(t))}")


def _path_key(path: tuple[Any, ...]) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _flat(tree: Any) -> list[tuple[str, Any]]:
    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: hasattr(x, "shape") and not isinstance(x, dict))[0]
    return [(_path_key(path), leaf) for path, leaf in leaves]


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, name = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[name] = value
    return out


def _first_unreadable(path: Path, abstract: Any) -> tuple[str, str] | None:
    """(tensor key, reason) of the first array of an item that fails to read on its own."""
    handler = ocp.PyTreeCheckpointHandler()
    try:
        for key, sds in _flat(abstract):
            try:
                handler.restore(epath.Path(path), args=ocp.args.PyTreeRestore(
                    item=_nest({key: sds}), partial_restore=True))
            except Exception as e:  # any failure names this tensor
                return key, _reason(e)
    finally:
        handler.close()
    return None


_ABANDONED_READ_ERRORS = ("Encountered error while reading array", "Event loop is closed")


def _silence_abandoned_reads() -> None:
    """When a bulk read fails, Orbax leaves the other reads of that restore running; when
    they fail in turn, tensorstore and asyncio report each one (an unretrieved exception, a
    closed event loop, a task never awaited) as a traceback on stderr, long after our
    one-line error. Installed before the first read, the filters drop exactly those reports
    for the rest of the process; every other report reaches the previous hook."""
    if getattr(sys.unraisablehook, "_ttt_filter", False):
        return

    def abandoned(exc: BaseException | None) -> bool:
        return exc is not None and str(exc).startswith(_ABANDONED_READ_ERRORS)

    old_unraisable, old_except, old_thread = (sys.unraisablehook, sys.excepthook,
                                              threading.excepthook)

    def unraisable(u: Any) -> None:
        if not abandoned(u.exc_value):
            old_unraisable(u)

    def excepthook(kind: type, exc: BaseException, tb: Any) -> None:
        if not abandoned(exc):
            old_except(kind, exc, tb)

    def thread_hook(args: Any) -> None:
        if not abandoned(args.exc_value):
            old_thread(args)

    def log_filter(record: logging.LogRecord) -> bool:  # asyncio: "never retrieved"
        return not (record.exc_info and abandoned(record.exc_info[1]))

    logging.getLogger("asyncio").addFilter(log_filter)
    unraisable._ttt_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook, sys.excepthook, threading.excepthook = (unraisable, excepthook,
                                                                thread_hook)


def _read_item(directory: Path, step: int, item: str, abstract: Any) -> Any:
    _silence_abandoned_reads()  # before the read: abandoned reads report as soon as it fails
    try:
        with _manager(directory, create=False) as mngr:
            return mngr.restore(step, args=ocp.args.Composite(
                **{item: ocp.args.StandardRestore(abstract)}))[item]
    except Exception as e:  # orbax and tensorstore raise assorted types for damaged files
        path = directory / str(step) / item
        found = _first_unreadable(path, abstract)
        what = (f"{item} tensor {found[0]!r} cannot be read ({found[1]})" if found
                else f"{item} cannot be read ({_reason(e)})")
        raise _corrupt(directory, step, what, path) from e


def _verify_arrays(directory: Path, step: int, item: str, tree: Any,
                   records: dict[str, dict[str, Any]] | None) -> None:
    file = directory / str(step) / item
    for key, x in _flat(tree):
        host = _host_array(x)
        crc = records[key]["crc32"] if records is not None else None
        if crc is not None and host is not None and _crc32(host) != crc:
            raise _corrupt(directory, step, f"{item} tensor {key!r} fails its checksum", file)
        bad = _count_nonfinite(x, host)
        if bad:
            raise _corrupt(directory, step, f"{item} tensor {key!r} holds NaN/Inf ({bad} of "
                                            f"{np.size(x)} values)", file)


def _load_item(directory: Path, step: int, item: str, target: Any | None) -> Any | None:
    """One array item of a step, read in its stored dtypes and checked (module docstring):
    in the structure of `target` (a pure tree), or as stored when None. None when the item
    was never saved (opt_state of a params-only step)."""
    checksums = _raw_meta(directory, step).get(CHECKSUMS)
    records = None if checksums is None else checksums.get(item)
    tree = _stored_tree(directory, step, item)
    if tree is None:
        if records is None and item != "params":
            return None
        raise _corrupt(directory, step, f"{item} is missing", directory / str(step) / item)
    stored = dict(_flat(tree))
    if checksums is not None:
        if records is None:
            raise _corrupt(directory, step, f"{item} has no checksums in meta",
                           directory / str(step) / "meta" / "metadata")
        _check_against_records(directory, step, item, stored, records)
    if target is None:
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree)
    else:
        _check_fits(directory, step, item, stored, dict(_flat(target)))
        abstract = jax.tree_util.tree_map_with_path(
            lambda p, t: jax.ShapeDtypeStruct(np.shape(t), stored[_path_key(p)].dtype), target)
    got = _read_item(directory, step, item, abstract)
    _verify_arrays(directory, step, item, got, records)
    return got


def _cast_like(tree: Any, target: Any) -> Any:
    """Checked arrays in the target's dtypes (they are read, and checksummed, as stored)."""
    return jax.tree.map(lambda x, t: x if x.dtype == t.dtype else x.astype(t.dtype),
                        tree, target)


def restore_params(directory: str | Path, target: nnx.State, step: int | None = None
                   ) -> nnx.State:
    """Parameters of a step, checked, restored into the structure, shapes and dtypes of
    `target`. Steps saved without checksums are checked for NaN/Inf only."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    step = _resolve_step(directory, step)
    pure = _to_pure(target)
    got = _cast_like(_load_item(directory, step, "params", pure), pure)
    out = jax.tree.map(lambda x: x, target)
    nnx.replace_by_pure_dict(out, got)
    return out


def restore_opt_state(directory: str | Path, target: Any, step: int | None = None) -> Any:
    """Optimiser state of a step, checked like `restore_params`, in the structure of `target`."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    step = _resolve_step(directory, step)
    flat = _leaves(target)
    got = _load_item(directory, step, "opt_state", flat)
    if got is None:
        raise CheckpointError(f"{directory}/{step} holds no optimiser state "
                              "(saved with params only)")
    got = _cast_like(got, flat)
    return jax.tree.unflatten(jax.tree.structure(target), [got[k] for k in sorted(got)])


def verify_checkpoint(directory: str | Path, step: int | None = None) -> int:
    """Read and check every array and the meta of a step (the newest by default), for
    commands that only read (eval, export). Returns the step; raises CheckpointCorruptError.
    Steps saved without checksums are checked for NaN/Inf only."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    step = _resolve_step(directory, step)
    for item in ARRAY_ITEMS:
        _load_item(directory, step, item, None)
    return step


def restore_newest_intact(directory: str | Path, params_target: nnx.State,
                          opt_target: Any = None, step: int | None = None
                          ) -> IntactCheckpoint:
    """The requested (default: newest) step, or else the newest older step that restores
    cleanly, with the damaged steps passed over so the caller can warn and quarantine them.
    Only damage falls back: a target that does not fit raises CheckpointError at once."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    start = _resolve_step(directory, step)
    skipped: list[SkippedStep] = []
    for candidate in reversed([s for s in _steps(directory) if s <= start]):
        try:
            meta = read_meta(directory, candidate)
            params = restore_params(directory, params_target, candidate)
            opt_state = (None if opt_target is None
                         else restore_opt_state(directory, opt_target, candidate))
        except CheckpointCorruptError as e:
            skipped.append(SkippedStep(candidate, str(e)))
            continue
        return IntactCheckpoint(candidate, params, opt_state, meta, tuple(skipped))
    raise CheckpointCorruptError(
        f"checkpoint {directory}: no intact step at or before {start} (damaged: "
        f"{[s.step for s in skipped]}); newest: {skipped[0].reason}")


def quarantine_step(directory: str | Path, step: int, reason: str) -> Path:
    """Move a damaged step to `<dir>/corrupt/<step>.<utc>/` (with `reason.txt`) and point
    latest.json at the newest remaining step (removed when none remains), so that step
    number can be saved again. Other steps are untouched. Call it from one process."""
    directory = Path(directory).absolute()  # orbax reads absolute paths only
    source = directory / str(step)
    if not source.is_dir():
        raise CheckpointError(f"{directory} has no step {step} to quarantine")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    dest = directory / CORRUPT / f"{step}.{stamp}"
    dest.parent.mkdir(exist_ok=True)
    source.rename(dest)
    (dest / "reason.txt").write_text(reason.rstrip("\n") + "\n")
    _point_latest_at_newest(directory)
    return dest


def _point_latest_at_newest(directory: Path) -> None:
    latest = directory / LATEST
    with _manager(directory, create=False) as mngr:
        steps = mngr.all_steps()
    if not steps:
        latest.unlink(missing_ok=True)
        return
    try:
        old = json.loads(latest.read_text())
    except (OSError, ValueError):
        old = {}
    _write_json_atomic(latest, {**(old if isinstance(old, dict) else {}), "step": max(steps)})


def load_model(directory: str | Path, step: int | None = None):
    """The model stored in a checkpoint (newest step by default), every array checked."""
    from ttt_model.model import abstract_model

    graphdef, params, rest = nnx.split(abstract_model(read_model_config(directory, step)),
                                       nnx.Param, ...)
    return nnx.merge(graphdef, restore_params(directory, params, step), rest)
