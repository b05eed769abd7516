"""Two processes writing at once lose nothing; SIGKILL mid-transaction loses only that
transaction. Both use real OS processes (subprocess), not threads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ttt_ledger import Ledger, RunRecord

N_PER_WRITER = 120

WRITER = r"""
import json, sys, time
from pathlib import Path
from ttt_ledger import Ledger, MetricPoint, RunRecord

db, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
ledger = Ledger(db)
Path(f"{go}.{tag}.ready").touch()
while not go.exists():          # start both writers together
    time.sleep(0.001)
t0 = time.time()
for i in range(n):
    ledger.add_run(RunRecord(run_id=f"{tag}-{i}", exp_folder="conc", family="qwen2_5_0_5b",
                             path="adapter", stage="adapt", model_kind="e2e",
                             train_mode="meta", context_length=8192, tokens_seen=i))
    # both writers append to the same run's curves ...
    ledger.log_metrics("conc", "shared", [MetricPoint(f"loss_{tag}", i, i, float(i), 1.0)])
    # ... and read-modify-write the same field: a lost update would show in the total
    with ledger.transaction():
        shared = ledger.get_run("conc", "shared")
        ledger.update_run("conc", "shared", steps_completed=shared.steps_completed + 1)
print(json.dumps({"start": t0, "end": time.time()}))
"""


def _record(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, exp_folder="conc", family="qwen2_5_0_5b", path="adapter",
                     stage="adapt", model_kind="e2e", train_mode="meta", context_length=8192)


def test_two_processes_writing_concurrently_lose_nothing(tmp_path):
    db = tmp_path / "ledger.sqlite"
    with Ledger(db) as ledger:
        ledger.add_run(_record("shared"))
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag,
                                 str(N_PER_WRITER), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for tag in ("w1", "w2")]
    deadline = time.time() + 120  # both imported and waiting at the start line, however slow
    while not all(Path(f"{go}.{tag}.ready").exists() for tag in ("w1", "w2")):
        assert time.time() < deadline, "writers never reached the start line"
        time.sleep(0.01)
    go.touch()
    spans = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        spans.append(json.loads(out))
    # the two writers really overlapped in time
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans)

    with Ledger(db, create=False) as ledger:
        assert ledger.integrity_ok()
        runs = {r.run_id: r for r in ledger.runs("conc")}
        assert len(runs) == 2 * N_PER_WRITER + 1
        for tag in ("w1", "w2"):
            for i in range(N_PER_WRITER):
                assert runs[f"{tag}-{i}"].tokens_seen == i
            assert [p.step for p in ledger.curve("conc", "shared", f"loss_{tag}")] == list(
                range(N_PER_WRITER))
        assert runs["shared"].steps_completed == 2 * N_PER_WRITER  # no lost update


KILLED_WRITER = r"""
import os, sys, time
from ttt_ledger import Ledger, MetricPoint, RunRecord

def record(run_id):
    return RunRecord(run_id=run_id, exp_folder="kill", family="qwen2_5_0_5b", path="scratch",
                     stage="pretrain", model_kind="fa", train_mode="pretrain",
                     context_length=8192)

db = sys.argv[1]
ledger = Ledger(db)
for i in range(5):
    ledger.add_run(record(f"committed-{i}"))
ledger.log_metrics("kill", "committed-0", [MetricPoint("loss", s, s, 0.0, 3.0)
                                           for s in range(100)])
wal_before = os.path.getsize(db + "-wal")
with ledger.transaction():
    for i in range(3):
        ledger.add_run(record(f"uncommitted-{i}"))
    ledger.update_run("kill", "committed-1", steps_completed=999)
    ledger.log_metrics("kill", "uncommitted-0", [MetricPoint("loss", s, s, 0.0, 2.0)
                                                 for s in range(150_000)])
    print(wal_before, os.path.getsize(db + "-wal"), flush=True)
    time.sleep(120)  # killed here, inside the transaction
"""


def test_sigkill_mid_transaction_keeps_every_committed_row(tmp_path):
    db = tmp_path / "ledger.sqlite"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        wal_before, wal_inside = map(int, line.split())
        # the open transaction had already spilled pages into the WAL file on disk
        assert wal_inside > wal_before + 1_000_000
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    assert Path(f"{db}-wal").exists()  # the torn WAL is still there for recovery
    with Ledger(db, create=False) as ledger:
        assert ledger.integrity_ok()
        assert [r.run_id for r in ledger.runs("kill")] == [f"committed-{i}" for i in range(5)]
        assert ledger.get_run("kill", "committed-1").steps_completed == 0
        assert len(ledger.curve("kill", "committed-0", "loss")) == 100
        assert ledger.curve("kill", "uncommitted-0", "loss") == []
        # and the ledger is writable again
        ledger.add_run(_record("after-crash"))
    with Ledger(db, create=False) as ledger:
        assert ledger.get_run("conc", "after-crash").run_id == "after-crash"
