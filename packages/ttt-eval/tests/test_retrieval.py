"""RULER retrieval of a model: candidate log-likelihoods equal the one-shot / meta NLL of
prompt + candidate, for FA, SWA and TTT; the grid is filled with counts and intervals."""

from __future__ import annotations

import random

import numpy as np
import pytest
from tokenizers import Tokenizer

from ttt_data.bpe import train_bpe_tokenizer
from ttt_eval.nll import InnerLoop, token_nll
from ttt_eval.retrieval import CandidateScorer, RetrievalError, RetrievalSpec, evaluate_retrieval
from ttt_model.config import ModelConfig
from ttt_model.model import build_model
from ttt_model.testing import assert_close, ttt_terms

INNER = InnerLoop(lr=0.5, clip=1.0)


def _cfg(kind: str, vocab: int = 61) -> ModelConfig:
    return ModelConfig(name=f"ret-{kind}", vocab_size=vocab, hidden_size=32,
                       intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
                       attention="full" if kind == "full" else "sliding", sliding_window=16,
                       mini_batch_size=8, attention_block_size=8, suffix_len=1,
                       prime=kind == "ttt", bos_token_id=0, initializer_range=0.1)


@pytest.mark.parametrize("kind", ["full", "sliding", "ttt"])
def test_candidate_logprobs_equal_the_nll_of_prompt_plus_candidate(kind):
    """Each candidate scored after one shared prefill (rows of one decode batch) equals
    minus the summed NLL of its tokens when prompt + candidate is scored as one sequence:
    across TTT chunk boundaries (b = 8) and past the window (16)."""
    model = build_model(_cfg(kind), seed=3)
    rng = np.random.default_rng(0)
    prompt = rng.integers(2, 61, 37).tolist()
    conts = [rng.integers(2, 61, n).tolist() for n in (3, 6, 1)]
    got = CandidateScorer(model, INNER).logprobs(prompt, conts)
    want = []
    for c in conts:
        seq = np.asarray([prompt + c], np.int32)
        nll = np.asarray(token_nll(model, seq, ttt=kind == "ttt", inner=INNER))[0]
        want.append(-float(nll[len(prompt) - 1:].sum()))
    # fp32 chains: the TTT meta pass through every inner step; per candidate a sum of <= 6
    assert_close(np.asarray(got), np.asarray(want), terms=6 * ttt_terms(model.cfg, 48))
    assert abs(got[0] - got[1]) > 1e-2  # the candidates are told apart


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    work = tmp_path_factory.mktemp("ret_tok")
    rng = random.Random(5)
    lines = ["The grass is green. The sky is blue. The sun is yellow. Here we go."] * 30
    lines += [f"One of the special magic numbers for {w} is: {rng.randint(10**6, 10**7)}."
              for w in ("calm-owl", "red-fox", "tiny-cat") for _ in range(10)]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    folder = train_bpe_tokenizer([corpus], work / "tok", vocab_size=300)
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_grid_is_filled_with_counts_intervals_and_chance(tokenizer):
    model = build_model(_cfg("ttt", vocab=tokenizer.get_vocab_size()), seed=1)
    spec = RetrievalSpec(tasks=("niah_single_1",), lengths=(320,), depths=(0.0, 1.0),
                         samples_per_cell=2, max_new_tokens=3)
    out = evaluate_retrieval(model, tokenizer, spec, inner=INNER, progress=False)
    task = out["tasks"]["niah_single_1"]
    for way in ("rank", "generation"):
        cells = task[way]["cells"]
        assert [(c["length"], c["depth"], c["n"]) for c in cells] == [(320, 0.0, 2), (320, 1.0, 2)]
        for c in cells:
            assert c["low"] <= c["accuracy"] <= c["high"]
        assert task[way]["n"] == 4
    assert task["rank"]["chance"] == pytest.approx(1 / 5)
    assert task["generation"]["max_new_tokens"] == 3


def test_a_model_smaller_than_the_tokenizer_is_refused(tokenizer):
    model = build_model(_cfg("full", vocab=64), seed=1)
    with pytest.raises(RetrievalError, match="vocabulary of 64"):
        evaluate_retrieval(model, tokenizer, RetrievalSpec(tasks=("niah_single_1",),
                                                           lengths=(320,)), progress=False)


def test_a_length_too_short_for_the_task_says_task_and_length_once(tokenizer):
    model = build_model(_cfg("full", vocab=tokenizer.get_vocab_size()), seed=1)
    with pytest.raises(RetrievalError) as e:
        evaluate_retrieval(model, tokenizer, RetrievalSpec(tasks=("niah_single_1",),
                                                           lengths=(64,)), progress=False)
    assert str(e.value).count("niah_single_1 at 64 tokens") == 1
    assert "fixed parts alone" in str(e.value)
