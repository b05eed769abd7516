"""`ttt eval score` scores a trained checkpoint the way its run trained it: the run's own
inner lr, clip and spec, BOS targets not counted, the run's tokenizer only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ttt_app_testlib import E2E, tiny_overrides

from ttt_cli.main import main
from ttt_model.checkpoint import load_model
from ttt_model.ttt import meta_loss

INNER_LR = 0.3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, store: Path) -> Path:
    work = tmp_path_factory.mktemp("eval")
    kw = {**E2E, "training.optimizer_inner.lr": INNER_LR, "training.ilr_warmup_steps": 0,
          "training.eval_batches": 0}
    assert main(["train", *tiny_overrides(work, store, name="e2e", steps=2, **kw)]) == 0
    return work / "checkpoints" / "t" / "e2e"


def _tokens(bos: int) -> np.ndarray:
    tokens = np.random.default_rng(0).integers(2, 512, size=(2, 65))
    tokens[0, [5, 40]] = bos  # two BOS targets, which training does not count
    return tokens


def _score(ckpt: Path, tmp_path: Path, *extra: str) -> tuple[int, dict | None]:
    out = tmp_path / "score.json"
    rc = main(["eval", "score", "--checkpoint", str(ckpt), *extra, "--out", str(out)])
    return rc, json.loads(out.read_text()) if out.exists() else None


def test_score_uses_the_runs_inner_lr_and_masks_bos(trained: Path, tmp_path: Path):
    model = load_model(trained)
    tokens = _tokens(model.cfg.bos_token_id)
    np.save(tmp_path / "tokens.npy", tokens)
    rc, result = _score(trained, tmp_path, "--tokens", str(tmp_path / "tokens.npy"))
    assert rc == 0 and result["ttt"] and result["inner_lr"] == pytest.approx(INNER_LR)
    assert result["settings_from"] == "train_config"
    counted = tokens[:, 1:] != model.cfg.bos_token_id
    assert result["counted_targets"] == counted.sum() == 2 * 64 - 2
    # the reference: the training loss's own per-token NLL (the meta loss, not prefill)
    want = {}
    for lr in (INNER_LR, 1.0):
        nll = np.asarray(meta_loss(model, tokens, inner_lr=lr)[1]["token_nll"], np.float64)
        want[lr] = nll[counted].mean()
    # prefill and the meta loss agree per token to ~2e-5 (ttt-model's own prefill test)
    assert result["mean_nll"] == pytest.approx(want[INNER_LR], abs=2e-5)
    assert abs(want[1.0] - want[INNER_LR]) > 1e-3  # the inner lr matters on this batch
    rows = np.asarray(result["token_nll"])
    assert result["mean_nll"] == pytest.approx(rows[counted].mean(), abs=1e-12)
    assert rows[~counted].size == 2  # every position is still reported


def test_score_refuses_a_text_of_another_tokenizer(trained: Path, tmp_path: Path,
                                                   tokenizer: Path, capsys):
    from ttt_data.bpe import train_bpe_tokenizer

    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    rc, result = _score(trained, tmp_path, "--text", str(text), "--tokenizer", str(tokenizer))
    assert rc == 0, capsys.readouterr().err
    other = train_bpe_tokenizer([text], tmp_path / "other_tok", vocab_size=300)
    (tmp_path / "score.json").unlink()
    capsys.readouterr()
    rc, result = _score(trained, tmp_path, "--text", str(text), "--tokenizer", str(other))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and result is None
    assert len(err) == 1 and "--allow-tokenizer-mismatch" in err[0] and "sha256" in err[0]
    rc, _ = _score(trained, tmp_path, "--text", str(text), "--tokenizer", str(other),
                   "--allow-tokenizer-mismatch")
    assert rc == 0


def test_bundle_of_checkpoints_writes_json_csv_plots(trained: Path, store: Path,
                                                     tokenizer: Path, tmp_path: Path, capsys):
    """`ttt eval bundle --checkpoint`: the sweep (with the run's inner loop), the decode
    trend and RULER ranking on the run's store and tokenizer, written and summarised."""
    out = tmp_path / "b"
    rc = main(["eval", "bundle", "--checkpoint", str(trained), "--dataset", str(store),
               "--tokenizer", str(tokenizer), "--contexts", "64,128", "--tokens-per-context",
               "256", "--ruler-tasks", "niah_single_1", "--ruler-lengths", "512",
               "--ruler-depths", "0.5", "--samples-per-cell", "1", "--no-generation",
               "--trend-tokens", "32", "--no-efficiency", "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    bundle = json.loads((out / "external_eval.json").read_text())
    (m,) = bundle["models"]
    assert m["kind"] == "e2e" and m["inner_loop"]["lr"] == pytest.approx(INNER_LR)
    assert [r["context"] for r in m["sweep"]["contexts"]] == [64, 128]
    assert m["ruler"]["tasks"]["niah_single_1"]["rank"]["n"] == 1
    assert (out / "external_eval.csv").read_text().count("\n") > 10
    assert (out / "external_eval_plots" / "loss_vs_context.png").is_file()
    assert "e2e (e2e)" in capsys.readouterr().out


def test_bundle_bad_input_is_one_line(tmp_path: Path, capsys):
    rc = main(["eval", "bundle", "--checkpoint", str(tmp_path / "nope"), "--no-progress",
               "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]
    assert not (tmp_path / "b").exists()
