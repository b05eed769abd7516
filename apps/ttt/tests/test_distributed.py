"""Scale-out: the DP+FSDP step on 4 (fake) CPU devices, and two processes joined by
`jax.distributed`, train the same as one device, through `ttt train`."""

import json
import socket
from pathlib import Path

import numpy as np
from ttt_app_testlib import losses, run_dir, tiny_overrides, ttt_subprocess

from ttt_cli.main import main
from ttt_model.testing import typical_error

FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def _same_training(got: Path, ref: dict[int, float], one: Path) -> None:
    """Step 1 (before any update) differs only in how sums are split over devices; later
    steps follow AdamW, whose 1/sqrt(v) can flip the update of an entry whose gradient is
    rounding noise by 2*lr: the loss then moves by O(lr^2 * curvature), ~1e-5 relative at
    lr 3e-3, while a sharding bug (a lost shard, a wrong reduction) moves it by O(lr*|g|),
    percents."""
    rows = {r["step"]: r for r in map(json.loads, (got / "metrics.jsonl").read_text()
                                      .splitlines())}
    ref_rows = {r["step"]: r for r in map(json.loads, (one / "metrics.jsonl").read_text()
                                          .splitlines())}
    assert sorted(rows) == sorted(ref)
    terms = 4 * 64 * 512  # tokens per batch x the longest reduction (vocab) of the stage
    for key in ("loss", "grad_norm"):
        np.testing.assert_allclose(rows[1][key], ref_rows[1][key], rtol=typical_error(terms))
    np.testing.assert_allclose([rows[s]["loss"] for s in sorted(ref)],
                               [ref[s] for s in sorted(ref)], rtol=1e-3)


def _reference(work: Path, store: Path, **kw) -> dict[int, float]:
    assert main(["train", *tiny_overrides(work, store, name="one", **kw)]) == 0
    return losses(run_dir(work, "one"))


def test_dp_fsdp_on_four_devices_equals_one_device(tmp_path: Path, store: Path):
    kw = {"training.eval_batches": 0, "training.global_batch_size": 8}
    ref = _reference(tmp_path, store, **kw)
    proc = ttt_subprocess(["train", *tiny_overrides(
        tmp_path, store, name="four", **kw, **{"training.n_data_parallel": 2,
                                               "training.n_state_parallel": 2,
                                               "backend.num_devices": 4})], env=FOUR_DEVICES)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "mesh {'data': 2, 'fsdp': 2} on 4 cpu device(s)" in out
    _same_training(run_dir(tmp_path, "four"), ref, run_dir(tmp_path, "one"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_train_as_one(tmp_path: Path, store: Path):
    kw = {"training.eval_batches": 0}
    ref = _reference(tmp_path, store, **kw)
    port = _free_port()
    procs = [ttt_subprocess(["train", *tiny_overrides(
        tmp_path, store, name="two", **kw, **{
            "backend.distributed": True, "backend.coordinator_address": f"127.0.0.1:{port}",
            "backend.num_processes": 2, "backend.process_id": i})]) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    assert "mesh {'data': 2, 'fsdp': 1} on 2 cpu device(s), 2 process(es)" in outs[0]
    _same_training(run_dir(tmp_path, "two"), ref, run_dir(tmp_path, "one"))
    assert (tmp_path / "checkpoints/t/two/latest.json").is_file()
