"""Scale-out: the DP+FSDP step on 4 (fake) CPU devices, and two processes joined by
`jax.distributed`, train the same as one device, through `ttt train`."""

import socket
from pathlib import Path

import numpy as np
from ttt_app_testlib import losses, run_dir, tiny_overrides, ttt_subprocess

from ttt_cli.main import main

FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


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
    four = losses(run_dir(tmp_path, "four"))
    assert sorted(four) == sorted(ref)
    np.testing.assert_allclose([four[s] for s in sorted(ref)], [ref[s] for s in sorted(ref)],
                               rtol=2e-5)


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
    two = losses(run_dir(tmp_path, "two"))
    assert sorted(two) == sorted(ref)
    np.testing.assert_allclose([two[s] for s in sorted(ref)], [ref[s] for s in sorted(ref)],
                               rtol=2e-5)
    assert (tmp_path / "checkpoints/t/two/latest.json").is_file()
