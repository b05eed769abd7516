"""Generation: greedy decoding is the argmax of what the model's one-shot (FA, SWA) or meta
(TTT-E2E) pass predicts on the growing sequence; a mixed-length batch gives what each prompt
gives alone; seeded sampling reproduces; stop ids end rows; one compile per bucket; text
streams out whole characters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ttt_eval.errors import EvalError
from ttt_eval.generate import Generator, TextStream, bucket_length
from ttt_eval.nll import InnerLoop
from ttt_eval.sampling import Sampling
from ttt_model.config import ModelConfig
from ttt_model.model import build_model
from ttt_model.testing import forward_terms, tolerance, ttt_terms
from ttt_model.ttt import meta_loss

V = 61
T_REF = 32  # reference sequences: every prompt + generation fits, a multiple of b and blocks
N_NEW = 12
INNER = InnerLoop(lr=0.5, clip=1.0)  # not the default: the generator must use the one given
PROMPTS = [[int(t) for t in np.random.default_rng(s).integers(2, V, n)]
           for s, n in ((0, 5), (1, 13))]  # different lengths, different TTT chunk phases


def _cfg(kind: str) -> ModelConfig:
    base = dict(name=f"gen-{kind}", vocab_size=V, hidden_size=32, intermediate_size=48,
                num_layers=3, num_heads=4, num_kv_heads=2, qk_norm=True, post_norm=True,
                sliding_window=8, mini_batch_size=8, attention_block_size=16,
                bos_token_id=0, initializer_range=0.2)
    kinds = {"full": dict(attention="full"), "sliding": dict(attention="sliding"),
             "ttt": dict(attention="sliding", suffix_len=2, prime=True)}
    return ModelConfig(**base, **kinds[kind])


def reference_logprobs(model, seq: list[int], first: int) -> np.ndarray:
    """log-softmax [len(seq) - first, V] at positions first-1 .. len(seq)-2 of one sequence
    from the model's own full-sequence pass: the one-shot forward (FA, SWA) or the meta loss
    (TTT-E2E: the training loss's inner loop), whose NLL of target p+1 over V copies of the
    sequence that differ only there is the log-softmax at p (causal: what follows p+1 is
    invisible to position p, and target p+1 enters no inner step before it)."""
    graphdef, params = nnx.split(model)
    padded = np.full(T_REF + 1, 2, np.int32)
    padded[: len(seq)] = seq
    positions = np.arange(first - 1, len(seq) - 1)
    if not model.cfg.prime:
        z = nnx.merge(graphdef, params)(jnp.asarray(padded[None, :T_REF]))[0]
        return np.asarray(jax.nn.log_softmax(z, -1), np.float64)[positions]
    seqs = np.tile(padded, (len(positions), V, 1))
    seqs[np.arange(len(positions)), :, positions + 1] = np.arange(V)
    nll = _meta_nll(graphdef, params, jnp.asarray(seqs.reshape(-1, T_REF + 1)))
    nll = np.asarray(nll, np.float64).reshape(len(positions), V, T_REF)
    return -nll[np.arange(len(positions)), :, positions]


@jax.jit
def _meta_nll(graphdef, params, tokens_BxT1):
    model = nnx.merge(graphdef, params)
    return meta_loss(model, tokens_BxT1, inner_lr=INNER.lr, inner_clip=INNER.clip
                     )[1]["token_nll"]


def check_greedy(model, prompt: list[int], got: tuple[int, ...]) -> float:
    """Every generated token is the argmax of the reference pass on the sequence before it
    (by induction, the greedy loop over the growing sequence); returns the smallest top-2
    log-prob gap relative to the largest |log-prob|, which must beat the fp32 bound."""
    lp = reference_logprobs(model, [*prompt, *got], len(prompt))
    assert np.argmax(lp, -1).tolist() == list(got)
    top2 = np.sort(lp, -1)[:, -2:]
    return float(((top2[:, 1] - top2[:, 0]) / np.abs(lp).max()).min())


@pytest.fixture(scope="module")
def generators() -> dict[str, tuple]:
    out = {}
    # seeds whose greedy runs do not collapse into a repeated token within N_NEW steps
    for kind, seed in (("full", 6), ("sliding", 6), ("ttt", 9)):
        model = build_model(_cfg(kind), seed=seed)
        out[kind] = (model, Generator(model, INNER, N_NEW))
    return out


@pytest.mark.parametrize("kind", ["full", "sliding", "ttt"])
def test_greedy_equals_argmax_of_the_full_sequence_pass(generators, kind):
    """Each row of a batch of prompts of different lengths (different chunk phases for
    TTT) is checked against the reference pass over that row alone, so the batch gives what
    each prompt gives alone."""
    model, gen = generators[kind]
    got = gen.generate(PROMPTS)
    cfg = model.cfg
    terms = ttt_terms(cfg, T_REF) if kind == "ttt" else forward_terms(cfg, T_REF)
    for row, prompt in zip(got, PROMPTS, strict=True):
        assert len(row.tokens) == N_NEW and not row.stopped
        assert row.prompt_length == len(prompt)
        rel_gap = check_greedy(model, prompt, row.tokens)
        # the comparison is well posed: every argmax wins by far more than the two
        # computations may differ (each within the fp32 bound of the exact logits)
        assert rel_gap > 2 * tolerance(terms, statistical=True), rel_gap
        assert len(set(row.tokens)) >= 5  # not a degenerate repeat of a token or two


def test_seeded_sampling_reproduces_and_seeds_differ(generators):
    _, gen = generators["sliding"]
    gen.generate(PROMPTS)
    picks = gen.compilations["pick"]
    s = Sampling(temperature=1.0, top_k=20, seed=7)
    a, b = gen.generate(PROMPTS, sampling=s), gen.generate(PROMPTS, sampling=s)
    assert a == b
    c = gen.generate(PROMPTS, sampling=Sampling(temperature=1.0, top_k=20, seed=8))
    assert [g.tokens for g in c] != [g.tokens for g in a]
    assert gen.compilations["pick"] == picks + 1  # this sampling once: the seed is data
    # a row's draws depend on its seed and position in the batch, not on the other rows
    assert gen.generate([PROMPTS[0]], sampling=s)[0] == a[0]


def test_stop_ids_end_rows_and_the_loop(generators):
    _, gen = generators["sliding"]
    greedy = gen.generate(PROMPTS)
    stop = greedy[0].tokens[3]
    assert stop not in greedy[0].tokens[:3]
    events: list[list[int | None]] = []
    got = gen.generate(PROMPTS, stop_ids=[stop], on_tokens=events.append)
    assert got[0].tokens == greedy[0].tokens[:3] and got[0].stopped
    row1 = greedy[1].tokens
    n1 = row1.index(stop) if stop in row1 else N_NEW
    assert got[1].tokens == row1[:n1] and got[1].stopped == (stop in row1)
    assert [e[0] for e in events[:4]] == [*greedy[0].tokens[:3], None]
    assert all(e[0] is None for e in events[4:])
    assert [e[1] for e in events[:n1]] == list(row1[:n1])
    # the loop ends as soon as every row has: one call per step it took
    assert len(events) == max(4, n1 + 1 if stop in row1 else N_NEW)
    events.clear()
    both = gen.generate(PROMPTS, stop_ids=[greedy[0].tokens[0], greedy[1].tokens[0]],
                        on_tokens=events.append)
    assert all(g.stopped and g.tokens == () for g in both)
    assert events == [[None, None]]  # both rows stopped at once: no decode step follows


@pytest.mark.parametrize("kind", ["sliding", "full"])
def test_one_compile_per_bucket(generators, kind):
    _, gen = generators[kind]
    gen.generate([[3] * 9, [4] * 16])
    before = dict(gen.compilations)
    gen.generate([[5] * 16, [6]])  # same batch size and bucket (16): nothing new
    gen.generate([[5] * 3, [6] * 11], sampling=Sampling(temperature=0.0, seed=5))
    assert dict(gen.compilations) == before
    gen.generate([[7] * 20, [8] * 2])  # bucket 32: its own prefill
    assert gen.compilations["prefill"] == before["prefill"] + 1
    # a sliding ring does not grow with the context: one decode step for every bucket;
    # a full-attention ring holds bucket + max_new_tokens
    assert gen.compilations["decode_step"] == before["decode_step"] + (kind == "full")


def test_bucket_length():
    assert [bucket_length(n) for n in (1, 16, 17, 33, 64, 65)] == [16, 16, 32, 64, 64, 128]
    assert bucket_length(3, minimum=1) == 4 and bucket_length(1, minimum=1) == 1


def test_bad_requests_are_refused_in_one_line(generators):
    model, gen = generators["sliding"]
    for prompts, msg in (([[]], "prompt 0 is empty"),
                         ([[3, 4], [5, V]], r"prompt 1: token ids span \[5, 61\] but the "
                                            r"model's vocabulary is \[0, 61\)"),
                         ([[3, -1]], r"span \[-1, 3\]"), ([], "no prompts")):
        with pytest.raises(EvalError, match=msg):
            gen.generate(prompts)
    for n in (0, -3):
        with pytest.raises(EvalError, match="max_new_tokens must be an int >= 1"):
            Generator(model, max_new_tokens=n)
    with pytest.raises(EvalError, match="no prime MLPs"):
        Generator(model, max_new_tokens=4, ttt=True)
    with pytest.raises(EvalError, match="full attention"):
        Generator(build_model(_cfg("full").replace(suffix_len=1, prime=True)),
                  max_new_tokens=4)


def test_text_stream_hands_out_whole_characters(tmp_path):
    """A byte-level BPE splits rare characters over tokens; decoding token by token would
    print U+FFFD pieces. The stream holds them until the character is complete."""
    from ttt_data.bpe import train_bpe_tokenizer
    from ttt_data.tokenizer import load_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("plain ascii words and more words\n" * 20)
    tok = load_tokenizer(train_bpe_tokenizer([corpus], tmp_path / "tok", vocab_size=270))
    text = "words: 日本語 é ok 🙂"
    ids = tok.encode(text, add_special_tokens=False).ids
    decode = tok.decode
    assert any(decode(ids[:k]).endswith("\ufffd") for k in range(1, len(ids)))
    stream, pieces = TextStream(decode), []
    for i in ids:
        piece = stream.push([i])
        assert "\ufffd" not in piece
        pieces.append(piece)
    pieces.append(stream.flush())
    assert "".join(pieces) == text == decode(ids)
    assert sum(bool(p) for p in pieces) > 5  # it streams, not all at the end
    # an incomplete sequence at the very end still comes out on flush
    tail = TextStream(decode)
    cut = next(k for k in range(1, len(ids)) if decode(ids[:k]).endswith("\ufffd"))
    assert tail.push(ids[:cut]) + tail.flush() == decode(ids[:cut])
