"""Damaged checkpoints fail in one line naming step, file and tensor; the newest intact step
is found; a bad step is moved aside so its number can be saved again; nothing else changes."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from conftest import tiny
from ttt_model.checkpoint import (
    CheckpointCorruptError,
    CheckpointError,
    latest_step,
    quarantine_step,
    read_meta,
    restore_newest_intact,
    restore_opt_state,
    restore_params,
    save_checkpoint,
    verify_checkpoint,
)
from ttt_model.config import TrainConfig
from ttt_model.model import build_model
from ttt_model.params import path_str
from ttt_model.train import init_train_state

NAN_KEY = "prefix_blocks.0.attention.q_proj.kernel"


@pytest.fixture(scope="module")
def model():
    cfg = tiny()
    return cfg, init_train_state(build_model(cfg, 1), TrainConfig())[1]


def _params_at(model, step: int) -> nnx.State:
    """Distinct parameters per step, so a restore shows which step it read."""
    return jax.tree.map(lambda x: x * step, model[1].params)


@pytest.fixture(scope="module")
def pristine(model, tmp_path_factory) -> Path:
    cfg, state = model
    run = tmp_path_factory.mktemp("pristine") / "run"
    for step in (1, 2, 3):
        save_checkpoint(run, step, params=_params_at(model, step), model_cfg=cfg,
                        opt_state=state.opt_state, meta={"data": {"pos": step}})
    return run


@pytest.fixture
def run(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "run"))


def _flat(params: nnx.State) -> dict[str, np.ndarray]:
    return {path_str(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(params)}


def _equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _data_files(run: Path, step: int, item: str = "params") -> list[Path]:
    """The OCDBT data files holding an item's array chunks, largest first."""
    files = (run / str(step) / item / "ocdbt.process_0" / "d").iterdir()
    return sorted(files, key=lambda p: -p.stat().st_size)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _tensor_named(err: pytest.ExceptionInfo, run: Path, step: int, file: Path) -> str | None:
    """Checks the message is one line naming step and file; returns the tensor it names."""
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"checkpoint {run / str(step)}: ")
    assert msg.endswith(f"(file {file})")
    found = re.search(r"tensor '([\w.]+)'", msg)
    return found.group(1) if found else None


def _write_raw_step(run: Path, step: int, pure: dict, meta: dict) -> None:
    """A step written by Orbax directly, as a hand-edited or pre-checksum checkpoint is."""
    handlers = {"params": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    with ocp.CheckpointManager(run.absolute(), item_handlers=handlers) as mngr:
        mngr.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(pure),
                                                meta=ocp.args.JsonSave(meta)))


def _with_nan(model, step: int) -> dict:
    pure = nnx.to_pure_dict(_params_at(model, step))
    q = pure["prefix_blocks"][0]["attention"]["q_proj"]
    q["kernel"] = q["kernel"].at[0, 0].set(jnp.nan)
    return pure


def test_save_records_the_crc32_of_each_arrays_bytes(model, run):
    meta = json.loads((run / "3" / "meta" / "metadata").read_text())
    records = meta["array_checksums"]
    flat = _flat(_params_at(model, 3))
    assert sorted(records["params"]) == sorted(flat)
    for key, x in flat.items():
        assert records["params"][key] == {"dtype": "float32", "shape": list(x.shape),
                                          "crc32": zlib.crc32(x.tobytes(order="C"))}
    opt_leaves = jax.tree.leaves(model[1].opt_state)
    assert [r["crc32"] for _, r in sorted(records["opt_state"].items())] == \
        [zlib.crc32(np.asarray(x).tobytes()) for x in opt_leaves]
    assert "array_checksums" not in read_meta(run, 3)
    assert verify_checkpoint(run) == 3


def test_a_flipped_byte_in_a_data_file_fails_its_checksum(model, run):
    _flip_byte(_data_files(run, 3)[0])
    with pytest.raises(CheckpointCorruptError, match="fails its checksum") as err:
        restore_params(run, model[1].params)
    assert _tensor_named(err, run, 3, run / "3" / "params") in _flat(model[1].params)
    with pytest.raises(CheckpointCorruptError, match="fails its checksum"):
        verify_checkpoint(run)
    assert _equal(restore_params(run, model[1].params, 2), _params_at(model, 2))


@pytest.mark.parametrize("damage", [_truncate, Path.unlink], ids=["truncated", "deleted"])
def test_a_truncated_or_deleted_data_file_names_a_tensor(model, run, damage):
    damage(_data_files(run, 3)[0])
    with pytest.raises(CheckpointCorruptError, match="cannot be read") as err:
        restore_params(run, model[1].params)
    assert _tensor_named(err, run, 3, run / "3" / "params") in _flat(model[1].params)


def test_damaged_array_metadata_or_a_missing_item_dir(model, run):
    _truncate(run / "3" / "params" / "_METADATA")
    with pytest.raises(CheckpointCorruptError, match="params metadata is unreadable") as err:
        restore_params(run, model[1].params)
    _tensor_named(err, run, 3, run / "3" / "params")
    shutil.rmtree(run / "2" / "opt_state")
    assert _equal(restore_params(run, model[1].params, 2), _params_at(model, 2))
    with pytest.raises(CheckpointCorruptError, match="opt_state is missing") as err:
        restore_opt_state(run, model[1].opt_state, 2)
    _tensor_named(err, run, 2, run / "2" / "opt_state")


@pytest.mark.parametrize("damage", [
    lambda f: f.write_text("{not json"),
    Path.unlink,
    lambda f: f.write_text(f.read_text().replace('"step": 3', '"step": 2')),
], ids=["bad-json", "deleted", "other-step"])
def test_unreadable_meta_is_named(model, run, damage):
    damage(run / "3" / "meta" / "metadata")
    for read in (lambda: read_meta(run), lambda: restore_params(run, model[1].params),
                 lambda: verify_checkpoint(run)):
        with pytest.raises(CheckpointCorruptError, match="meta") as err:
            read()
        _tensor_named(err, run, 3, run / "3" / "meta" / "metadata")


def test_save_refuses_nan_and_writes_nothing(model, run):
    before = _snapshot(run)
    with pytest.raises(CheckpointError, match=f"refusing to save step 4 .* tensor '{NAN_KEY}' "
                                              r"holds NaN/Inf \(1 of 1024 values\)") as err:
        save_checkpoint(run, 4, params=_with_nan(model, 4), model_cfg=model[0])
    assert not isinstance(err.value, CheckpointCorruptError)
    assert _snapshot(run) == before


@pytest.mark.parametrize("recorded", [False, True], ids=["pre-checksum", "checksum-matches"])
def test_nan_in_a_stored_tensor_is_named_and_skipped(model, run, recorded):
    pure = _with_nan(model, 4)
    meta = {"step": 4, "model_config": model[0].to_dict()}
    if recorded:  # a hand-edited file whose checksum was recomputed: NaN is still refused
        meta["array_checksums"] = {"params": {
            path_str(p): {"dtype": "float32", "shape": list(np.shape(x)),
                          "crc32": zlib.crc32(np.asarray(x).tobytes())}
            for p, x in jax.tree_util.tree_flatten_with_path(pure)[0]}}
    _write_raw_step(run, 4, pure, meta)
    with pytest.raises(CheckpointCorruptError, match=r"holds NaN/Inf \(1 of 1024") as err:
        restore_params(run, model[1].params)
    assert _tensor_named(err, run, 4, run / "4" / "params") == NAN_KEY
    found = restore_newest_intact(run, model[1].params)
    assert found.step == 3 and [s.step for s in found.skipped] == [4]


def test_a_step_saved_without_checksums_still_restores(model, run):
    pure = nnx.to_pure_dict(_params_at(model, 4))
    _write_raw_step(run, 4, pure, {"step": 4, "model_config": model[0].to_dict()})
    assert _equal(restore_params(run, model[1].params), _params_at(model, 4))
    assert verify_checkpoint(run) == 4


def test_restore_into_another_dtype_checks_the_stored_bytes(model, run):
    bf16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), model[1].params)
    got = _flat(restore_params(run, bf16))
    for key, x in _flat(_params_at(model, 3)).items():
        assert got[key].dtype == jnp.bfloat16
        assert np.array_equal(got[key], x.astype(jnp.bfloat16))
    save_checkpoint(run, 4, params=bf16, model_cfg=model[0])
    assert verify_checkpoint(run) == 4
    got = _flat(restore_params(run, model[1].params))
    for key, x in _flat(bf16).items():
        assert got[key].dtype == np.float32 and np.array_equal(got[key], x.astype(np.float32))
    _flip_byte(_data_files(run, 4)[0])
    with pytest.raises(CheckpointCorruptError, match="fails its checksum"):
        verify_checkpoint(run)


def test_fallback_to_the_newest_intact_step_then_quarantine(model, run):
    cfg, state = model
    _flip_byte(_data_files(run, 3)[0])
    (run / "2" / "meta" / "metadata").write_text("{not json")
    step1, bad2, bad3 = (_snapshot(run / s) for s in ("1", "2", "3"))
    other = init_train_state(build_model(cfg, 2), TrainConfig())[1]

    found = restore_newest_intact(run, other.params, other.opt_state)
    assert found.step == 1 and found.meta["data"] == {"pos": 1}
    assert _equal(found.params, _params_at(model, 1))
    assert _equal(found.opt_state, state.opt_state)
    assert [s.step for s in found.skipped] == [3, 2]
    for s in found.skipped:
        assert "\n" not in s.reason and s.reason.startswith(f"checkpoint {run / str(s.step)}: ")
    # The flipped byte lands in compressed chunk data: depending on where OCDBT packed the
    # chunks (write order varies), it either decodes to wrong bytes (the checksum catches
    # them) or does not decode at all; either way the step is skipped, saying why.
    assert re.search(r"params (tensor '.+' )?(fails its checksum|cannot be read)",
                     found.skipped[0].reason), found.skipped[0].reason
    assert "meta is unreadable" in found.skipped[1].reason
    assert _snapshot(run / "1") == step1 and _snapshot(run / "2") == bad2

    moved = [quarantine_step(run, s.step, s.reason) for s in found.skipped]
    assert [p.parent for p in moved] == [run / "corrupt"] * 2
    assert moved[0].name.startswith("3.") and moved[1].name.startswith("2.")
    assert (moved[0] / "reason.txt").read_text() == found.skipped[0].reason + "\n"
    assert {k: v for k, v in _snapshot(moved[0]).items() if k != "reason.txt"} == bad3
    assert sorted(p.name for p in run.iterdir()) == ["1", "corrupt", "latest.json"]
    assert json.loads((run / "latest.json").read_text())["step"] == 1
    assert latest_step(run) == 1 and _snapshot(run / "1") == step1

    save_checkpoint(run, 2, params=_params_at(model, 5), model_cfg=cfg,
                    opt_state=state.opt_state)
    assert verify_checkpoint(run) == 2
    assert _equal(restore_params(run, other.params), _params_at(model, 5))


def test_a_requested_damaged_step_falls_back_to_an_older_one(model, run):
    (run / "2" / "meta" / "metadata").unlink()
    found = restore_newest_intact(run, model[1].params, step=2)
    assert found.step == 1 and [s.step for s in found.skipped] == [2]
    assert found.opt_state is None


def test_only_damage_falls_back(model, run):
    narrow = init_train_state(build_model(tiny(hidden_size=16), 1), TrainConfig())[1].params
    with pytest.raises(CheckpointError, match="'embed' has shape") as err:
        restore_newest_intact(run, narrow)
    assert not isinstance(err.value, CheckpointCorruptError)


def test_every_step_damaged_is_one_line(model, run):
    for step in (1, 2, 3):
        (run / str(step) / "meta" / "metadata").unlink()
    with pytest.raises(CheckpointCorruptError, match=r"no intact step at or before 3 "
                                                     r"\(damaged: \[3, 2, 1\]\)") as err:
        restore_newest_intact(run, model[1].params)
    assert "\n" not in str(err.value)


def test_an_interrupted_save_breaks_neither_restore_nor_the_next_save(model, run):
    leftover = run / "4.orbax-checkpoint-tmp-1700000000000000"
    shutil.copytree(run / "3", leftover)
    shutil.rmtree(leftover / "params" / "ocdbt.process_0")
    assert latest_step(run) == 3 and verify_checkpoint(run) == 3
    assert restore_newest_intact(run, model[1].params).skipped == ()
    save_checkpoint(run, 4, params=_params_at(model, 4), model_cfg=model[0])
    assert not leftover.exists()
    assert _equal(restore_params(run, model[1].params), _params_at(model, 4))


def test_saving_an_existing_step_is_refused(model, run):
    before = _snapshot(run)
    with pytest.raises(CheckpointError, match="already holds step 3: quarantine_step"):
        save_checkpoint(run, 3, params=_params_at(model, 3), model_cfg=model[0])
    assert _snapshot(run) == before
