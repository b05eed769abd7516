"""`ttt train`: load_part semantics, exact resume (also after SIGKILL), fail-fast errors
and divergence, each through the command line on a tiny stage."""

import json
import signal
import time
from pathlib import Path

import jax
import pytest
from ttt_app_testlib import E2E, losses, run_dir, tiny_overrides, ttt_subprocess

from ttt_cli.main import main
from ttt_ledger import Ledger, RunStatus, ledger_path
from ttt_model.testing import forward_terms, typical_error


def _ledger_run(work: Path, run_id: str):
    with Ledger(ledger_path(work / "experiments"), create=False) as ledger:
        return ledger.get_run("t", run_id)


def test_resume_reproduces_uninterrupted_losses_meta_mode(tmp_path: Path, store: Path, capsys):
    """N+M steps vs N steps (break_step) then load_part=all: identical losses after N."""
    e2e = {**E2E, "training.total_steps": 6}
    assert main(["train", *tiny_overrides(tmp_path, store, name="full", **e2e)]) == 0
    assert main(["train", *tiny_overrides(tmp_path, store, name="part",
                                          **{**e2e, "training.break_step": 3})]) == 0
    assert sorted(losses(run_dir(tmp_path, "part"))) == [1, 2, 3]
    assert _ledger_run(tmp_path, "part").status is RunStatus.INTERRUPTED  # says why, and how
    capsys.readouterr()
    assert main(["train", *tiny_overrides(tmp_path, store, name="part",
                                          **{**e2e, "training.load_part": "all"})]) == 0
    out = capsys.readouterr().out
    assert "RESUME: starting from global_step=3" in out
    full, part = losses(run_dir(tmp_path, "full")), losses(run_dir(tmp_path, "part"))
    assert sorted(part) == [1, 2, 3, 4, 5, 6]
    assert [part[s] for s in (4, 5, 6)] == [full[s] for s in (4, 5, 6)]  # bit-identical
    record = _ledger_run(tmp_path, "part")
    assert record.status is RunStatus.COMPLETED and record.restore.label == "resumed@3"
    assert record.steps_completed == 6 and record.tokens_seen == 6 * 4 * 64


def test_resume_after_sigkill_between_checkpoints(tmp_path: Path, store: Path):
    steps = 40
    kw = {"training.seq_length": 256, "model.seq_len": 256, "training.save_checkpoint_freq": 7,
          "training.eval_batches": 0}
    assert main(["train", *tiny_overrides(tmp_path, store, name="ref", steps=steps, **kw)]) == 0
    proc = ttt_subprocess(["train", *tiny_overrides(tmp_path, store, name="killed",
                                                    steps=steps, **kw)])
    metrics = run_dir(tmp_path, "killed") / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 9:  # past step 7
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()
    done = len(metrics.read_text().splitlines())
    assert done < steps
    latest = json.loads((tmp_path / "checkpoints/t/killed/latest.json").read_text())["step"]
    assert latest % 7 == 0 and latest < steps
    proc = ttt_subprocess(["train", *tiny_overrides(
        tmp_path, store, name="killed", steps=steps, **{**kw, "training.load_part": "all"})])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert f"RESUME: starting from global_step={latest}" in out
    ref, resumed = losses(run_dir(tmp_path, "ref")), losses(run_dir(tmp_path, "killed"))
    assert sorted(resumed) == list(range(1, steps + 1))  # killed attempt's extra lines dropped
    assert [resumed[s] for s in range(latest + 1, steps + 1)] == \
        [ref[s] for s in range(latest + 1, steps + 1)]


def test_load_part_params_restarts_at_step_zero_with_loaded_weights(tmp_path: Path,
                                                                    store: Path):
    from flax import nnx

    from ttt_data.pipeline import BatchIterator, PipelineConfig
    from ttt_model.checkpoint import read_model_config, restore_params
    from ttt_model.losses import pretrain_loss
    from ttt_model.model import build_model

    assert main(["train", *tiny_overrides(tmp_path, store, name="src")]) == 0
    assert main(["train", *tiny_overrides(tmp_path, store, name="warm", steps=3, **{
        "training.load_part": "params", "training.resume_exp_name": "src",
        "training.optimizer_outer.lr_warmup_steps": 2})]) == 0
    warm = losses(run_dir(tmp_path, "warm"))
    assert sorted(warm) == [1, 2, 3]
    record = _ledger_run(tmp_path, "warm")
    assert record.restore.label == "params" and record.steps_completed == 3
    # step 1 runs at lr 0 (warmup from 0): its loss is the loaded weights' loss on batch 1
    src = tmp_path / "checkpoints/t/src"
    model = build_model(read_model_config(src), seed=123)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    model = nnx.merge(graphdef, restore_params(src, params), rest)
    batch = next(BatchIterator(PipelineConfig(store=str(store), seq_len=64,
                                              global_batch_size=4)))
    loss, _ = pretrain_loss(model, jax.numpy.asarray(batch["tokens"]),
                            jax.numpy.asarray(batch["loss_mask"]))
    # the same forward pass in another program: equal up to its rounding
    assert abs(float(loss) - warm[1]) <= typical_error(forward_terms(model.cfg, 64)) * warm[1]
    assert abs(warm[1] - losses(run_dir(tmp_path, "src"))[1]) > 0.1  # not a fresh init


@pytest.mark.parametrize("case", ["missing_source", "wrong_shape", "vocab", "own_resume"])
def test_bad_inputs_fail_fast_before_training(tmp_path: Path, store: Path, case: str, capsys):
    if case == "wrong_shape":
        assert main(["train", *tiny_overrides(tmp_path, store, name="src", steps=1)]) == 0
    extra, expect = {
        "missing_source": ({"training.load_part": "params",
                            "training.resume_exp_name": "nowhere"},
                           r"resume_exp_name='nowhere'.*nowhere/latest\.json"),
        "wrong_shape": ({"training.load_part": "params", "training.resume_exp_name": "src",
                         "model.hidden_size": 32}, r"has shape \(\d+, 64\) in the checkpoint "
                                                   r"but the model expects \(\d+, 32\)"),
        "vocab": ({"model.vocab_size": 300}, r"holds token id 511 but the model's vocab_size "
                                             r"is 300"),
        "own_resume": ({"training.load_part": "all"}, r"this run's own checkpoints"),
    }[case]
    capsys.readouterr()
    assert main(["train", *tiny_overrides(tmp_path, store, name="bad", **extra)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttt train: ") and __import__("re").search(expect, err), err
    assert not (run_dir(tmp_path, "bad") / "metrics.jsonl").exists()
    assert not (tmp_path / "checkpoints/t/bad").exists()


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, store: Path,
                                                             capsys):
    kw = {"training.optimizer_outer.lr": 1e38, "training.optimizer_outer.lr_warmup_steps": 0,
          "training.save_checkpoint_freq": 1}
    assert main(["train", *tiny_overrides(tmp_path, store, name="boom", **kw)]) == 3
    err = capsys.readouterr().err
    assert "training stopped; the last good checkpoint is step" in err
    rows = [json.loads(line) for line in
            (run_dir(tmp_path, "boom") / "metrics.jsonl").read_text().splitlines()]
    bad = rows[-1]
    assert {bad["loss"], bad["grad_norm"]} & {"nan", "inf", "-inf"}, bad  # written as strings
    bad_step = bad["step"]
    latest = json.loads((tmp_path / "checkpoints/t/boom/latest.json").read_text())["step"]
    assert latest == bad_step - 1
    record = _ledger_run(tmp_path, "boom")
    assert record.status is RunStatus.FAILED and "NonFiniteLossError" in record.failure_reason


def test_text_samples_are_logged_every_n_steps(tmp_path: Path, store: Path, tokenizer: Path):
    overrides = tiny_overrides(tmp_path, store, name="sampled", **{
        **E2E, "training.sample_every": 3, "training.sample_tokens": 4,
        "training.tokenizer_name": tokenizer})
    assert main(["train", *overrides]) == 0
    log = (run_dir(tmp_path, "sampled") / "train.log").read_text()
    samples = [line for line in log.splitlines() if "sample at step" in line]
    assert [line.split("sample at step ")[1].split(":")[0] for line in samples] == ["3", "6"]
    assert all("'The' -> '" in line for line in samples)


def test_text_samples_without_a_tokenizer_are_refused_up_front(tmp_path: Path, store: Path,
                                                               capsys):
    overrides = tiny_overrides(tmp_path, store, name="nosamp", **{"training.sample_every": 3})
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err
    assert "training.sample_every" in err and "tokenizer_name" in err and "\n" not in err[:-1]
    assert not (tmp_path / "checkpoints/t/nosamp").exists()
