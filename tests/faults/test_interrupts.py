"""SIGTERM (schedulers, preemption) and SIGINT (Ctrl-C) mid-step and mid-save: the stage
checkpoints the step it is in, the ledger says `interrupted` at that step, the exit code is
128 + the signal, and `load_part=all` then reproduces the uninterrupted run bit for bit.
Also: one writer per run, and a lock left by a dead process is taken over."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest
from faultlib import metric_lines, one_line_error, wait_for
from ttt_app_testlib import E2E, losses, run_dir, tiny_overrides, ttt_subprocess

from ttt_ledger import Ledger, RunStatus, ledger_path

STEPS = 24
KW = {**E2E, "training.eval_batches": 0, "training.save_checkpoint_freq": 8,
      "training.ilr_warmup_steps": 8}


def _record(work: Path, name: str):
    with Ledger(ledger_path(work / "experiments"), create=False) as ledger:
        return ledger.get_run("t", name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, store: Path) -> dict[int, float]:
    work = tmp_path_factory.mktemp("ref")
    proc = ttt_subprocess(["train", *tiny_overrides(work, store, name="ref", steps=STEPS, **KW)])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return losses(run_dir(work, "ref"))


def _ckpt_dir(work: Path, name: str) -> Path:
    return work / "checkpoints" / "t" / name


def _resume_and_compare(work: Path, store: Path, name: str, stopped: int,
                        reference: dict[int, float], **kw: object) -> None:
    proc = ttt_subprocess(["train", *tiny_overrides(
        work, store, name=name, steps=STEPS, **{**KW, **kw, "training.load_part": "all"})])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"RESUME: starting from global_step={stopped}" in out
    got = losses(run_dir(work, name))
    assert sorted(got) == list(range(1, STEPS + 1))
    assert [got[s] for s in sorted(got)] == [reference[s] for s in sorted(got)]  # bit-exact
    record = _record(work, name)
    assert record.status is RunStatus.COMPLETED and record.steps_completed == STEPS


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_step_checkpoints_that_step_and_resumes_exactly(
        tmp_path: Path, store: Path, reference: dict[int, float], sig: signal.Signals):
    name = f"sig{int(sig)}"
    proc = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name=name, steps=STEPS,
                                                    **KW)])
    metrics = run_dir(tmp_path, name) / "metrics.jsonl"
    wait_for(proc, lambda: metric_lines(metrics) >= 3)  # between checkpoints (every 8)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + int(sig), out
    stopped = metric_lines(metrics)
    assert 3 <= stopped < STEPS and stopped % 8, (stopped, out)
    assert f"INTERRUPTED: {sig.name} at step {stopped}" in out
    assert json.loads((_ckpt_dir(tmp_path, name) / "latest.json").read_text())["step"] == \
        stopped
    record = _record(tmp_path, name)
    assert record.status is RunStatus.INTERRUPTED and record.steps_completed == stopped
    assert f"{sig.name} at step {stopped}" in record.interrupt_reason
    assert "Traceback" not in out
    _resume_and_compare(tmp_path, store, name, stopped, reference)


def test_sigterm_mid_save_keeps_the_checkpoint_and_resumes_exactly(
        tmp_path: Path, store: Path, reference: dict[int, float]):
    name = "midsave"
    kw = {"training.save_checkpoint_freq": 1}
    proc = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name=name, steps=STEPS,
                                                    **{**KW, **kw})])
    ckpt = _ckpt_dir(tmp_path, name)
    metrics = run_dir(tmp_path, name) / "metrics.jsonl"

    def saving() -> bool:  # Orbax writes a step into a temporary dir, then renames it
        return metric_lines(metrics) >= 2 and ckpt.is_dir() and any(
            "tmp" in p.name for p in ckpt.iterdir())

    wait_for(proc, saving, poll=0.0005)
    in_save = metric_lines(metrics)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 143, out
    stopped = json.loads((ckpt / "latest.json").read_text())["step"]
    assert stopped == metric_lines(metrics) and stopped >= in_save, out
    assert not [p for p in ckpt.iterdir() if "tmp" in p.name]  # the save completed
    assert _record(tmp_path, name).status is RunStatus.INTERRUPTED
    _resume_and_compare(tmp_path, store, name, stopped, reference, **kw)


def test_a_second_writer_is_refused_and_the_first_loses_nothing(tmp_path: Path, store: Path):
    long = 5000  # the first writer is still training whenever the second one starts
    first = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name="one", steps=long,
                                                     **KW)])
    metrics = run_dir(tmp_path, "one") / "metrics.jsonl"
    wait_for(first, lambda: metric_lines(metrics) >= 1)
    second = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name="one",
                                                      steps=long, **KW)])
    out2, _ = second.communicate(timeout=300)
    assert first.poll() is None, "the first writer ended before the second one started"
    assert second.returncode == 2, out2
    line = one_line_error(out2, "ttt train:")
    assert f"pid {first.pid} on host {socket.gethostname()}" in line and "t/one" in line
    wait_for(first, lambda: metric_lines(metrics) >= 10)  # past a checkpoint (every 8)
    first.send_signal(signal.SIGTERM)
    out1, _ = first.communicate(timeout=300)
    assert first.returncode == 143, out1
    rows = [json.loads(r) for r in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    log = (run_dir(tmp_path, "one") / "train.log").read_text().splitlines()
    assert len(log) == len(set(log)), "train.log has lines written twice"
    record = _record(tmp_path, "one")
    assert record.status is RunStatus.INTERRUPTED and record.steps_completed == len(rows)
    assert json.loads((_ckpt_dir(tmp_path, "one") / "latest.json").read_text())["step"] == \
        len(rows)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, store: Path):
    dead = ttt_subprocess(["--help"])  # a real pid that is gone once reaped
    dead.communicate(timeout=60)
    lock = run_dir(tmp_path, "stale") / ".lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                "started": "2026-01-01T00:00:00Z"}) + "\n")
    proc = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name="stale", steps=2,
                                                    **{"training.eval_batches": 0})])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"took over the lock of pid {dead.pid}" in out
    assert lock.read_text() == ""  # released cleanly at the end
