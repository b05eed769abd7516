"""`ttt pipeline`: the scratch path of one family at pilot budget on a token store, the
manifest and report, and --skip-existing; the ttt warm start preserves the function."""

import json
from pathlib import Path

import jax
import numpy as np
from ttt_app_testlib import JAX_CACHE

from ttt_cli.main import main
from ttt_ledger import Ledger, RunStatus, ledger_path
from ttt_model.testing import assert_close, forward_terms


def test_scratch_path_pilot_runs_in_order_and_skips_existing(tmp_path: Path, store: Path,
                                                             capsys):
    args = ["pipeline", "--model", "smollm2_360m", "--path", "scratch", "--budget", "pilot",
            "--exp-folder", "p", "--exp-dir", str(tmp_path / "exp"),
            "--checkpoint-path", str(tmp_path / "ckpt"), "--dclm-root", str(store),
            "--books-root", str(store), f"backend.compilation_cache_dir={JAX_CACHE}",
            "training.progress=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("[") and
            "done in" in line] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "Stages (lineage, tokens, wall-clock, loss):" in out and "Ledger report: p" in out
    with Ledger(ledger_path(tmp_path / "exp"), create=False) as ledger:
        runs = {r.run_id: r for r in ledger.runs("p")}
    assert sorted(runs) == ["S-S1", "S-S2", "S-S3", "S-S4"]
    assert all(r.status is RunStatus.COMPLETED for r in runs.values())
    assert runs["S-S2"].parent_run_ids == ("S-S1",) and runs["S-S2"].restore.label == "params"
    assert (runs["S-S1"].context_length, runs["S-S2"].context_length) == (256, 1024)
    assert (runs["S-S1"].steps_completed, runs["S-S4"].steps_completed) == (8, 4)
    for r in runs.values():
        assert np.isfinite(r.final_metrics["heldout_loss"])
    manifest = json.loads((tmp_path / "exp/p/pipeline_manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["completed"] * 4
    assert (tmp_path / "exp/p/report.md").is_file()
    # the evaluation bundle on the branch's finals (FA S-S2, E2E S-S4), shown by the report
    bundle = json.loads((tmp_path / "exp/p/p_external_eval.json").read_text())
    assert [m["run_id"] for m in bundle["models"]] == ["S-S2", "S-S4"]
    assert not bundle["failed"]
    assert [c["context"] for c in bundle["models"][1]["sweep"]["contexts"]] == \
        [256, 1024, 2048, 4096]  # the paper's 8K..128K at pilot scale
    assert "ruler not run: no tokenizer" in out  # a store without its tokenizer: said
    report = out.split("External evaluation")[1]
    assert "S-S2" in report and "S-S4" in report and "loss@4096" in report
    with Ledger(ledger_path(tmp_path / "exp"), create=False) as ledger:
        evals = {e.name for e in ledger.get_run("p", "S-S4").eval_results}
    assert {"ctx256", "ctx4096", "decode"} <= evals

    args.insert(1, "--no-bundle")
    assert main(args) == 2  # would overwrite: refused up front
    assert "--skip-existing" in capsys.readouterr().err
    assert main([*args, "--skip-existing"]) == 0
    assert out.count("skipped") == 0 and capsys.readouterr().out.count("skipped (completed") == 4


def test_ttt_warm_start_adds_zero_primes_and_preserves_the_function(tmp_path: Path):
    from flax import nnx

    from ttt_model.checkpoint import save_checkpoint
    from ttt_model.config import TrainConfig
    from ttt_model.model import build_model
    from ttt_train.config import compose_config
    from ttt_train.translate import RestoreSpec, RunPaths, model_config_of
    from ttt_train.warmstart import start_point

    swa = model_config_of(compose_config(["model=pilot/smollm2_360m",
                                          "model.seq_modeling_block=SWA",
                                          "model.sliding_window_size=64"]))
    e2e = swa.replace(prime=True, suffix_len=1, mini_batch_size=16)
    source = build_model(swa, seed=3)
    paths = RunPaths(tmp_path, "f", "target", tmp_path / "ckpt")
    save_checkpoint(paths.checkpoint_dir_of("src"), 5, params=nnx.state(source, nnx.Param),
                    model_cfg=swa)
    start = start_point(e2e, TrainConfig(train_mode="meta"), RestoreSpec(
        "params", "src", None, "ttt", "zeros"), paths, seed=0)
    assert start.step == 0 and start.status.label == "params"
    target = nnx.merge(start.graphdef, start.state.params)
    down = target.suffix_blocks[0].feed_forward_prime.down_proj.kernel[...]
    assert not np.any(np.asarray(down))
    np.testing.assert_array_equal(np.asarray(target.suffix_blocks[0].feed_forward.up_proj
                                             .kernel[...]),
                                  np.asarray(source.prefix_blocks[3].feed_forward.up_proj
                                             .kernel[...]))
    tokens = jax.random.randint(jax.random.key(0), (2, 48), 0, swa.vocab_size)
    assert_close(np.asarray(target(tokens)), np.asarray(source(tokens)),
                 terms=forward_terms(e2e, 48), statistical=True)  # zero-init primes add 0
