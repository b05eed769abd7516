"""`ttt profile | import | export | eval score` end to end, offline, on tiny random HF
snapshots built with transformers; outputs checked against transformers' own logits."""

from __future__ import annotations

import json
import os
import pickle

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ttt_cli.main import main  # noqa: E402


def _hf_nll(hf_dir, tokens):
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager", local_files_only=True)
    with torch.no_grad():
        z = model(torch.as_tensor(tokens, dtype=torch.long)).logits.double().numpy()[:, :-1]
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    return lse - np.take_along_axis(z, tokens[:, 1:, None], -1)[..., 0]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    from ttt_import.standins import build_hf_snapshot, tiny_hf_config

    return build_hf_snapshot(tmp_path_factory.mktemp("hf") / "qwen",
                             tiny_hf_config("qwen2_5_0_5b"), seed=1)


def test_profile_list_show_prepare(tmp_path, capsys):
    import transformers

    assert main(["profile", "list"]) == 0
    out = capsys.readouterr().out
    assert "qwen2_5_1_5b" in out and "1,543,714,304" in out and "HuggingFaceTB/SmolLM2-360M" in out

    assert main(["profile", "show", "smollm2_135m"]) == 0
    assert ("parameters (computed from the model): 134,515,008 (matches the pinned "
            "134,515,008)") in capsys.readouterr().out
    assert main(["profile", "show", "qwen2_5_0_5b", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["param_count_computed"] == 494_032_768 and shown["qkv_bias"]

    snap = tmp_path / "snap"
    transformers.Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                             num_hidden_layers=24, num_attention_heads=14,
                             num_key_value_heads=2, rope_theta=1e6, rms_norm_eps=1e-6,
                             tie_word_embeddings=True).save_pretrained(snap)
    root = tmp_path / "artifacts" / "external_models"
    assert main(["profile", "prepare", "--model", "qwen2_5_0_5b", "--hf-dir", str(snap),
                 "--root", str(root)]) == 0
    assert "revision local" in capsys.readouterr().out
    record = json.loads((root / "qwen2_5_0_5b" / "model_profile.json").read_text())
    assert record["source_revision"] == "local" and record["param_count"] == 494_032_768
    assert (root / "qwen2_5_0_5b" / "hf_config.json").read_bytes() == \
        (snap / "config.json").read_bytes()

    assert main(["profile", "prepare", "--model", "smollm2_360m", "--hf-dir", str(snap),
                 "--root", str(root)]) == 2
    assert "model_type='qwen2' but profile smollm2_360m" in capsys.readouterr().err
    assert not (root / "smollm2_360m").exists()


def test_import_export_score(snapshot, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["import", "--hf-dir", str(snapshot), "--out", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "imported qwen2 (auto)" in out and "audit: clean" in out
    audit = json.loads((ckpt / "audit.json").read_text())
    assert audit["clean"] and audit["parity"]["max_abs_logit_diff"] <= 1e-4
    assert (ckpt / "audit.md").is_file() and (ckpt / "latest.json").is_file()

    hf_out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(hf_out)]) == 0
    x = np.random.default_rng(4).integers(0, 256, (2, 20))
    assert np.max(np.abs(_hf_nll(hf_out, x) - _hf_nll(snapshot, x))) <= 1e-5

    np.save(tmp_path / "tokens.npy", x)
    scores = tmp_path / "scores.json"
    assert main(["eval", "score", "--checkpoint", str(ckpt), "--tokens",
                 str(tmp_path / "tokens.npy"), "--no-ttt", "--out", str(scores)]) == 0
    result = json.loads(scores.read_text())
    nll = np.array(result["token_nll"])
    assert nll.shape == (2, 19) and result["ttt"] is False
    assert np.max(np.abs(nll - _hf_nll(snapshot, x))) <= 1e-4
    assert result["mean_nll"] == pytest.approx(nll.mean())


def test_score_text_with_tokenizer_and_ttt(snapshot, tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    text = tmp_path / "doc.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 12)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train([str(text)], trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"]))
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    ids = np.array(tok.encode(text.read_text()).ids)[None]
    assert 40 < ids.shape[1] <= 256 and ids.max() < 256

    ckpt = tmp_path / "ttt"
    assert main(["import", "--hf-dir", str(snapshot), "--out", str(ckpt), "--recipe", "ttt",
                 "--window", "256", "--suffix-len", "1", "--mini-batch-size", "16"]) == 0
    capsys.readouterr()
    with_ttt, without = tmp_path / "ttt.json", tmp_path / "plain.json"
    assert main(["eval", "score", "--checkpoint", str(ckpt), "--text", str(text),
                 "--tokenizer", str(tok_dir), "--out", str(with_ttt)]) == 0
    assert main(["eval", "score", "--checkpoint", str(ckpt), "--text", str(text),
                 "--tokenizer", str(tok_dir), "--no-ttt", "--out", str(without)]) == 0
    a = json.loads(with_ttt.read_text())
    b = json.loads(without.read_text())
    assert a["ttt"] is True and b["ttt"] is False  # default: TTT for a model with primes
    na, nb = np.array(a["token_nll"][0]), np.array(b["token_nll"][0])
    assert len(na) == ids.shape[1] - 1
    # zeros prime + window >= length: no TTT equals the pretrained model's NLL
    assert np.max(np.abs(nb - _hf_nll(snapshot, ids)[0])) <= 1e-4
    assert np.max(np.abs(na[:16] - nb[:16])) <= 1e-4 and np.max(np.abs(na[16:] - nb[16:])) > 1e-3
    assert a["mean_nll"] < b["mean_nll"]  # learning from a repetitive text at test time helps


def test_refusals_exit_2_and_write_nothing(snapshot, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((snapshot / "config.json").read_text())
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"x": 1}))
    out = tmp_path / "out"
    assert main(["import", "--hf-dir", str(bad), "--out", str(out)]) == 2
    assert "refusing pickle checkpoint pytorch_model.bin" in capsys.readouterr().err
    assert not out.exists()

    ckpt = tmp_path / "ttt"
    assert main(["import", "--hf-dir", str(snapshot), "--out", str(ckpt), "--recipe", "ttt",
                 "--window", "64", "--no-parity"]) == 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "hf")]) == 2
    assert "is a TTT model" in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()
    assert main(["import", "--hf-dir", str(snapshot), "--out", str(tmp_path / "x"),
                 "--recipe", "fa", "--window", "8"]) == 2
    assert "--window applies to swa/ttt" in capsys.readouterr().err
    assert main(["eval", "score", "--checkpoint", str(ckpt), "--text", str(bad / "config.json"),
                 "--out", str(tmp_path / "s.json")]) == 2
    assert "--text needs --tokenizer" in capsys.readouterr().err
