"""Experiment tracking on a tiny real stage: W&B (offline, no network) and TensorBoard hold
exactly metrics.jsonl's losses, read back with W&B's own reader and from the event files;
a resume logs no step twice; the W&B key is written nowhere; a missing tracker package is
one line before any training; the loss curve is drawn."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import google_crc32c
import pytest
import yaml
from tensorboardX.proto.event_pb2 import Event, SessionLog

from ttt_train.config import RunConfigError, compose_config
from ttt_train.loss_curve import LOSS_CURVE_FILE, write_loss_curve
from ttt_train.redaction import REDACTED, composed_without_secrets
from ttt_train.run_log import read_metrics
from ttt_train.stage import run_stage
from ttt_train.tracking import TENSORBOARD_DIR, WANDB_RUN_FILE, TrackerSetupError
from ttt_train.translate import translate

SECRET = "wandbkey0123456789secret"  # a W&B key: may reach no file and no output
JAX_CACHE = str(Path(tempfile.gettempdir()) / "ttt_jax_cache")  # shared with the app's tests
METRIC_KEYS = {"step", "loss", "grad_norm", "lr", "inner_lr", "n_tokens", "tokens_seen",
               "step_s", "tokens_per_s", "wall_clock_s"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny token store: a synthetic corpus under a 512-token BPE."""
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.synth import write_synth_corpus
    from ttt_data.tokenization import tokenize_corpus

    root = tmp_path_factory.mktemp("data")
    corpus = write_synth_corpus(root / "corpus.jsonl", 40, words=200)
    tok = train_bpe_tokenizer([corpus], root / "tokenizer", vocab_size=512)
    tokenize_corpus(tok, [corpus], root / "store", val_fraction=0.2, progress=False)
    return root / "store"


def _overrides(work: Path, store: Path, **extra: object) -> list[str]:
    """A tiny FA stage: a Llama-family stand-in at vocab 512, context 64, batch 4."""
    base = {
        "model": "pilot/smollm2_360m", "model.vocab_size": 512, "model.seq_len": 64,
        "training.exp_name": "run", "training.exp_folder": "t",
        "training.exp_dir": work / "experiments",
        "training.checkpoint_path": work / "checkpoints", "training.dataset_path": store,
        "training.seq_length": 64, "training.global_batch_size": 4, "training.total_steps": 6,
        "training.optimizer_outer.lr": 3e-3, "training.optimizer_outer.lr_warmup_steps": 1,
        "training.save_checkpoint_freq": 2, "training.log_freq": 1,
        "training.eval_batches": 0, "training.progress": False,
        "backend.compilation_cache_dir": JAX_CACHE,
    }
    return [f"{k}={v}" for k, v in {**base, **extra}.items()]


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B offline with every folder of its own under tmp_path; returns WANDB_DIR."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))
        (tmp_path / "wandb_home" / var.lower()).mkdir(parents=True)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return tmp_path / "wandb_home" / "wandb_dir"


# -- readers ----------------------------------------------------------------------------

def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _events(path: Path) -> list[Event]:
    """The records of one TFRecord event file (length, its CRC, data, its CRC), checked."""
    data, events, i = path.read_bytes(), [], 0
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == _masked_crc(header), path
        payload = data[i + 12:i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length:i + 16 + length])[0] == \
            _masked_crc(payload), path
        events.append(Event.FromString(payload))
        i += 16 + length
    return events


def tensorboard_scalars(logdir: Path, tag: str) -> dict[int, float]:
    """`tag`'s scalars by step as TensorBoard shows them: event files in the order they were
    started, and a SessionLog START at step s drops what was logged before at steps >= s
    (how TensorBoard purges an interrupted attempt's events). A step twice fails."""
    files = [_events(p) for p in logdir.glob("events.out.tfevents.*")]
    values: dict[int, float] = {}
    for events in sorted(files, key=lambda events: events[0].wall_time):
        for event in events:
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                values = {s: v for s, v in values.items() if s < event.step}
            for value in event.summary.value:
                if value.tag == tag:
                    assert event.step not in values, f"step {event.step} logged twice"
                    values[event.step] = value.simple_value
    return values


def wandb_history(wandb_dir: Path) -> tuple[set[str], dict[int, dict]]:
    """(run ids, history rows by step) of every offline run under `wandb_dir`, read with
    W&B's own reader of .wandb transaction logs (`wandb leet inspect --json`)."""
    run_ids, rows = set(), {}
    for path in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json",
                              str(path)], capture_output=True, text=True, check=True).stdout
        for record in map(json.loads, out.splitlines()):
            if record["type"] == "run":
                run_ids.add(record["run"]["run_id"])
            elif record["type"] == "history":
                item = record["history"]["item"]
                assert item["_step"] not in rows, f"step {item['_step']} logged twice"
                rows[item["_step"]] = item
    return run_ids, rows


def _losses(run_dir: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_metrics(run_dir)}


# -- tests ------------------------------------------------------------------------------

def test_wandb_offline_and_tensorboard_hold_the_jsonl_losses_across_a_resume(
        tmp_path: Path, store: Path, wandb_offline: Path, capfd: pytest.CaptureFixture):
    """Attempt 1 stops at step 5 (checkpoints 4 and 5); attempt 2 resumes from step 4, so
    step 5 is trained and logged again: no tracker may show it twice."""
    tracked = {"training.log_wandb": True, "training.log_tensorboard": True,
               "training.wandb_project": "ttt-test", "training.wandb_key": SECRET}
    first = run_stage(compose_config(_overrides(tmp_path, store, **tracked,
                                                **{"training.break_step": 5})))
    assert (first.status, first.step) == ("interrupted", 5)
    run_dir = first.run_dir
    assert sorted(tensorboard_scalars(run_dir / TENSORBOARD_DIR, "loss")) == [1, 2, 3, 4, 5]
    run_id = json.loads((run_dir / WANDB_RUN_FILE).read_text())["id"]

    second = run_stage(compose_config(_overrides(
        tmp_path, store, **tracked, **{"training.load_part": "all", "training.resume_step": 4})))
    assert (second.status, second.step) == ("completed", 6)

    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # the format, as before
    assert all(set(r) == METRIC_KEYS for r in rows)
    jsonl = _losses(run_dir)
    # TensorBoard keeps float32 scalars; the loss is a float32 from JAX, so it is exact
    assert tensorboard_scalars(run_dir / TENSORBOARD_DIR, "loss") == jsonl
    run_ids, history = wandb_history(wandb_offline)
    assert run_ids == {run_id}  # the resumed attempt continued the same W&B run
    assert {step: row["loss"] for step, row in history.items()} == jsonl
    assert json.loads((run_dir / WANDB_RUN_FILE).read_text()) == {"id": run_id,
                                                                  "last_step": 6}

    # the key: placeholder in the written configs, in no file and in no output
    resolved = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    assert resolved["training"]["wandb_key"] == REDACTED
    assert f"training.wandb_key={REDACTED}" in (run_dir / "config_unresolved.yaml").read_text()
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    out, err = capfd.readouterr()
    assert SECRET not in out + err

    png = (run_dir / LOSS_CURVE_FILE).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize("module, key, extra", [
    ("wandb", "training.log_wandb", "wandb"),
    ("tensorboardX", "training.log_tensorboard", "tensorboard"),
])
def test_a_missing_tracker_package_is_one_line_before_any_training(
        tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, module: str, key: str,
        extra: str):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    with pytest.raises(TrackerSetupError) as info:
        run_stage(compose_config(_overrides(tmp_path, store, **{key: True})))
    message = str(info.value)
    assert isinstance(info.value, RunConfigError)  # `ttt train` prints it, exits 2
    assert "\n" not in message and message.startswith(f"{key}=true needs the {module} package")
    assert f"pip install 'ttt-train[{extra}]'" in message
    run_dir = tmp_path / "experiments" / "t" / "run"
    assert not (run_dir / "metrics.jsonl").exists() and not (tmp_path / "checkpoints").exists()


def test_the_tracking_keys_reach_the_spec_and_the_key_only_there(store: Path, tmp_path: Path):
    composed = compose_config(_overrides(tmp_path, store, **{
        "training.log_wandb": True, "training.wandb_entity": "team",
        "training.wandb_mode": "offline", "++training.wandb_key": SECRET}))
    spec = translate(composed)
    t = spec.tracking
    assert (t.wandb, t.wandb_entity, t.wandb_mode, t.tensorboard) == (True, "team", "offline",
                                                                      False)
    assert t.wandb_key == SECRET and SECRET not in repr(spec)
    assert spec.resolved["training"]["wandb_key"] == REDACTED
    clean = composed_without_secrets(composed)
    assert f"++training.wandb_key={REDACTED}" in clean.overrides
    assert SECRET not in repr(clean.unresolved()) + repr(clean.overrides)
    assert translate(compose_config(_overrides(tmp_path, store))).tracking.wandb_key is None


def test_the_loss_curve_is_drawn_again_from_metrics_jsonl(tmp_path: Path):
    rows = [{"step": 1, "loss": 5.0}, {"step": 2, "loss": "nan"}, {"step": 3, "loss": 4.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = write_loss_curve(tmp_path)
    assert path == tmp_path / LOSS_CURVE_FILE and path.read_bytes()[:4] == b"\x89PNG"
    assert write_loss_curve(tmp_path / "empty") is None
