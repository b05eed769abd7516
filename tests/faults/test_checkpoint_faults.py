"""Damaged checkpoints: a truncated, deleted or bit-flipped array file, NaN in a stored
tensor, or unreadable metadata in the newest step. Reading commands (`ttt eval score`,
`ttt export`) refuse it in one line and write nothing; `load_part=all` warns, moves the
damaged step aside, resumes from the newest intact step and reproduces the uninterrupted
run exactly, saving the damaged step's number again on the way."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from faultlib import one_line_error, tree_digest
from ttt_app_testlib import losses, run_dir, tiny_overrides, ttt_subprocess

STEPS, EVERY = 12, 4
KW = {"training.eval_batches": 0, "training.save_checkpoint_freq": EVERY,
      "training.keep_checkpoints": 3}


def _run(work: Path, store: Path, name: str, **kw: object) -> str:
    proc = ttt_subprocess(["train", *tiny_overrides(work, store, name=name, steps=STEPS,
                                                    **{**KW, **kw})])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, store: Path) -> dict[int, float]:
    work = tmp_path_factory.mktemp("ref")
    _run(work, store, "ref")
    return losses(run_dir(work, "ref"))


def _data_files(step_dir: Path) -> list[Path]:
    """The array data files Orbax (OCDBT) wrote for the params of a step, largest first."""
    files = [p for p in (step_dir / "params").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no OCDBT data files under {step_dir / 'params'}"
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def _flip(step_dir: Path) -> None:
    f = _data_files(step_dir)[0]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x10
    f.write_bytes(bytes(data))


def _truncate(step_dir: Path) -> None:
    f = _data_files(step_dir)[0]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _delete(step_dir: Path) -> None:
    _data_files(step_dir)[0].unlink()


def _bad_meta(step_dir: Path) -> None:
    (step_dir / "meta" / "metadata").write_text("{not json")


def _nan(step_dir: Path) -> None:
    """Rewrite the step's params with one NaN and matching checksums (a hand edit)."""
    meta = json.loads((step_dir / "meta" / "metadata").read_text())
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(step_dir / "params")
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    path, first = leaves[0]
    poisoned = np.array(first)
    poisoned.flat[0] = np.nan
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: poisoned if p == path else np.asarray(x), params)
    key = ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    meta["array_checksums"]["params"][key]["crc32"] = zlib.crc32(poisoned.tobytes())
    shutil.rmtree(step_dir / "params")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(step_dir / "params", params)
    (step_dir / "meta" / "metadata").write_text(json.dumps(meta))


DAMAGE = {"bit-flip": _flip, "truncated": _truncate, "deleted": _delete, "nan": _nan,
          "meta": _bad_meta}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_step_is_refused_by_readers_and_skipped_by_resume(
        tmp_path: Path, store: Path, reference: dict[int, float], damage: str):
    name = f"victim-{damage}"
    _run(tmp_path, store, name, **{"training.break_step": 8})
    ckpt = tmp_path / "checkpoints" / "t" / name
    assert json.loads((ckpt / "latest.json").read_text())["step"] == 8
    DAMAGE[damage](ckpt / "8")
    older = tree_digest(ckpt / "4")

    # readers refuse, in one line naming the step, and write nothing
    np.save(tmp_path / "tokens.npy", np.arange(2, 66))
    for args, prefix, out in (
            (["eval", "score", "--checkpoint", str(ckpt), "--tokens",
              str(tmp_path / "tokens.npy"), "--out", str(tmp_path / "s.json")],
             "ttt eval score:", tmp_path / "s.json"),
            (["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "hf")],
             "ttt export:", tmp_path / "hf")):
        proc = ttt_subprocess(args)
        text, _ = proc.communicate(timeout=300)
        assert proc.returncode == 2, text
        assert f"{ckpt}/8" in one_line_error(text, prefix)
        assert not out.exists()

    # resume: warn, move step 8 aside, continue from 4, and match the reference exactly
    out = _run(tmp_path, store, name, **{"training.load_part": "all"})
    assert "WARNING: checkpoint step 8 is damaged" in out and "using step 4" in out, out
    assert "RESUME: starting from global_step=4" in out
    moved = list((ckpt / "corrupt").iterdir())
    assert len(moved) == 1 and moved[0].name.startswith("8.")
    assert (moved[0] / "reason.txt").read_text().startswith(f"checkpoint {ckpt}/8")
    assert tree_digest(ckpt / "4") == older  # the intact step is untouched
    assert (ckpt / "8").is_dir() and (ckpt / "12").is_dir()  # step 8 was saved again
    got = losses(run_dir(tmp_path, name))
    assert [got[s] for s in range(1, STEPS + 1)] == \
        [reference[s] for s in range(1, STEPS + 1)]
