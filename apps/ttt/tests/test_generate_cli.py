"""`ttt generate` streams what the library generates with the run's own inner loop, as whole
characters; bad input is one line on stderr and exit 2."""

from __future__ import annotations

import re

import pytest
from flax import nnx

from ttt_cli.main import main
from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.tokenizer import describe_tokenizer, load_tokenizer
from ttt_eval.generate import Generator
from ttt_eval.nll import InnerLoop
from ttt_eval.sampling import Sampling
from ttt_model.checkpoint import save_checkpoint
from ttt_model.config import ModelConfig, TrainConfig
from ttt_model.model import build_model

TEXT = "the café on the corner sells 日本茶 and 🍵, and the tea is good. " * 12
INNER_LR = 0.3
N_NEW = 24


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny TTT-E2E checkpoint recording its inner loop and tokenizer, and that tokenizer
    (byte-level BPE: a random model emits pieces of multi-byte characters)."""
    root = tmp_path_factory.mktemp("gen")
    (root / "corpus.txt").write_text(TEXT)
    tok_dir = train_bpe_tokenizer([root / "corpus.txt"], root / "tok", vocab_size=300)
    info = describe_tokenizer(tok_dir)
    cfg = ModelConfig(name="gen-cli", vocab_size=304, hidden_size=32, intermediate_size=48,
                      num_layers=2, num_heads=4, num_kv_heads=2, attention="sliding",
                      sliding_window=8, mini_batch_size=8, attention_block_size=16,
                      suffix_len=1, prime=True, bos_token_id=info.bos_id,
                      initializer_range=0.2)
    model = build_model(cfg, seed=0)
    tc = TrainConfig(train_mode="meta", inner_lr=INNER_LR, inner_clip=1.0)
    meta = {"train_config": tc.to_dict(),
            "tokenizer": {"name": info.name, "sha256": info.sha256}}
    ckpt = root / "ckpt"
    save_checkpoint(ckpt, 5, params=nnx.state(model, nnx.Param), model_cfg=cfg, meta=meta)
    return {"root": root, "ckpt": ckpt, "tok": tok_dir, "model": model, "info": info}


def _generate(run: dict, *extra: str) -> list[str]:
    return ["generate", "--checkpoint", str(run["ckpt"]), "--tokenizer", str(run["tok"]),
            "--max-new-tokens", str(N_NEW), *extra]


def test_streamed_text_is_the_decode_of_the_generated_tokens(run, capsys):
    prompt = "the café on the"
    assert main(_generate(run, "--prompt", prompt, "--seed", "3")) == 0
    streamed = capsys.readouterr()
    tok, info = load_tokenizer(run["tok"]), run["info"]
    ids = [info.bos_id, *tok.encode(prompt, add_special_tokens=False).ids]
    # the same generation from the library, with the run's inner loop
    gen = Generator(run["model"], InnerLoop(lr=INNER_LR, clip=1.0), N_NEW)
    want = gen.generate([ids], stop_ids=[info.eos_id])[0]
    assert len(want.tokens) >= 8
    assert streamed.out == tok.decode(list(want.tokens)) + "\n"
    assert streamed.err == ""
    # the run's inner lr, not the paper's, is what the CLI decoded with: greedy tokens are
    # the argmax of its logits, so another inner lr shows in the NLL of those tokens
    nll = gen.teacher_force([ids], [want.tokens])
    paper = Generator(run["model"], InnerLoop(), N_NEW).teacher_force([ids], [want.tokens])
    assert abs(nll - paper).max() > 1e-3
    # sampled: one seed reproduces its text, and it is the library's sample
    args = _generate(run, "--prompt", prompt, "--temperature", "1.0", "--seed", "11")
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    sample = gen.generate([ids], sampling=Sampling(1.0, seed=11), stop_ids=[info.eos_id])[0]
    assert first == tok.decode(list(sample.tokens)) + "\n"


def test_stop_text_and_prompt_file(run, capsys, tmp_path):
    tok, info = load_tokenizer(run["tok"]), run["info"]
    prompt_file = tmp_path / "p.txt"
    prompt_file.write_text("日本茶 and")
    assert main(_generate(run, "--prompt-file", str(prompt_file))) == 0
    full = capsys.readouterr().out
    ids = [info.bos_id, *tok.encode("日本茶 and", add_special_tokens=False).ids]
    gen = Generator(run["model"], InnerLoop(lr=INNER_LR, clip=1.0), N_NEW)
    tokens = gen.generate([ids], stop_ids=[info.eos_id])[0].tokens
    assert full == tok.decode(list(tokens)) + "\n"
    stop = tokens[2]
    first = tokens.index(stop)
    stop_text = tok.id_to_token(stop)
    assert main(_generate(run, "--prompt-file", str(prompt_file), "--stop", stop_text)) == 0
    assert capsys.readouterr().out == tok.decode(list(tokens[:first])) + "\n"


@pytest.mark.parametrize("case", ["no checkpoint", "other tokenizer", "multi-token stop",
                                  "zero tokens", "bad top-p"])
def test_bad_input_is_one_line_and_exit_2(run, capsys, tmp_path, case):
    args = _generate(run, "--prompt", "the")
    if case == "no checkpoint":
        args[2] = str(tmp_path / "missing")
        match = "not a readable ttt-model checkpoint"
    elif case == "other tokenizer":
        (tmp_path / "c.txt").write_text("other words entirely, other words\n" * 30)
        args[4] = str(train_bpe_tokenizer([tmp_path / "c.txt"], tmp_path / "t2",
                                          vocab_size=270))
        match = "--allow-tokenizer-mismatch"
    elif case == "multi-token stop":
        args += ["--stop", "quite a long stop text"]
        match = "a stop must be a single token"
    elif case == "zero tokens":
        args[6] = "0"
        match = "max_new_tokens must be an int >= 1"
    else:
        args += ["--temperature", "1", "--top-p", "1.5"]
        match = r"top_p must lie in \(0, 1\]"
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttt generate: "), captured.err
    assert re.search(match, lines[0]), lines[0]
    assert captured.out == ""


def test_usage_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--max-new-tokens" in capsys.readouterr().out
