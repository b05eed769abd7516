"""Generation from FA, SWA and TTT-E2E models, and the one decode loop everything that
decodes runs through (free generation here, teacher forcing for the decode trend).

Prompts of a batch are right-padded to a power-of-two bucket (`bucket_length`), so that
prompts of many lengths share one compiled prefill per (batch, bucket); the decode step
is compiled once per batch size (and, for a model with full-attention layers, once per
bucket: their rings hold bucket + max_new_tokens tokens). Compiled functions take the
weights as an argument, so Generators of the same model structure share them.

TTT-E2E models decode with `TTTRunner`: the inner step is taken on every completed chunk
of generated tokens, exactly as the meta loss does when the same tokens are scored.
Sampling is reproducible: step j of row i draws with `fold_in(fold_in(key(seed), j), i)`,
so a row's draws do not depend on the other rows of its batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ttt_data.errors import TokenizerError
from ttt_data.tokenizer import TokenizerInfo, describe_tokenizer, load_tokenizer
from ttt_eval.errors import EvalError
from ttt_eval.nll import PAPER_INNER_LOOP, InnerLoop, require_ttt
from ttt_eval.sampling import Sampling, next_tokens
from ttt_eval.score import check_tokenizer, load_run_model
from ttt_model.decoding import KVCacheDecoder
from ttt_model.inference import TTTRunner
from ttt_model.model import Transformer

GREEDY = Sampling()
REPLACEMENT = "\ufffd"  # what a byte-level decoder shows for an incomplete UTF-8 sequence


def bucket_length(n: int, minimum: int = 16) -> int:
    """The padded prompt length for n tokens: the next power of two >= n, at least
    `minimum`, so that prompts of different lengths share compiled functions."""
    if n < 1:
        raise EvalError(f"bucket_length needs n >= 1, got {n}")
    return max(1 << (n - 1).bit_length(), minimum)


@dataclass(frozen=True)
class Generation:
    """One row's new tokens (a stop token not included) and why decoding ended."""

    tokens: tuple[int, ...]
    stopped: bool  # True: at a stop id; False: max_new_tokens reached
    prompt_length: int


def _prompt_array(prompt: Sequence[int], vocab_size: int, row: int) -> np.ndarray:
    ids = np.asarray(prompt)
    if ids.ndim != 1 or ids.size == 0:
        raise EvalError(f"prompt {row} is empty or not a flat sequence of token ids "
                        f"(shape {list(ids.shape)})")
    if not np.issubdtype(ids.dtype, np.integer):
        raise EvalError(f"prompt {row}: token ids must be integers, got dtype {ids.dtype}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        raise EvalError(f"prompt {row}: token ids span [{lo}, {hi}] but the model's "
                        f"vocabulary is [0, {vocab_size})")
    return ids.astype(np.int32)


def _pick(logits_BxV: jax.Array, key: jax.Array, step: jax.Array,
          sampling: Sampling) -> jax.Array:
    """Next tokens [B]; row i's draw uses fold_in(fold_in(key, step), i)."""
    if sampling.greedy:
        return next_tokens(logits_BxV, key, sampling)
    step_key = jax.random.fold_in(key, step)
    keys_B = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(
        jnp.arange(logits_BxV.shape[0]))
    return jax.vmap(lambda z_V, k: next_tokens(z_V[None], k, sampling)[0])(logits_BxV, keys_B)


def _target_nll(logits_BxV: jax.Array, tgt_B: jax.Array) -> jax.Array:
    z = logits_BxV.astype(jnp.float32)
    return jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, tgt_B[:, None], -1)[:, 0]


class _Decoding:
    """What the compiled functions are specialised on (a static argument): the model's
    structure (not its weights, which are an argument) and the inner loop. Generators of
    equal ones share compiled functions, so a new Generator for the same model (or another
    checkpoint of the same run) compiles nothing."""

    __slots__ = ("graphdef", "ttt", "inner", "_key", "_hash")

    def __init__(self, graphdef: nnx.GraphDef, ttt: bool, inner: InnerLoop):
        self.graphdef, self.ttt, self.inner = graphdef, ttt, inner
        self._key = (graphdef, ttt, inner)
        self._hash = hash(self._key)  # hashed once, not at every dispatch

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, _Decoding) and self._key == other._key)

    def decoder(self, params, max_len: int | None):
        model = nnx.merge(self.graphdef, params)
        if self.ttt:
            return TTTRunner(model, inner_lr=self.inner.lr, inner_clip=self.inner.clip,
                             spec=self.inner.spec)
        # without TTT (a prime model's inner weights stay as trained): the one-shot prefill
        # that scoring without TTT uses, then a KV cache
        return KVCacheDecoder(model, max_len)


_TRACES: Counter[tuple[_Decoding | None, str]] = Counter()  # counted at trace time only


@partial(jax.jit, static_argnums=0, static_argnames="max_len")
def _prefill(how: _Decoding, params, tokens_BxN, lengths_B, *, max_len: int | None):
    _TRACES[how, "prefill"] += 1
    dec = how.decoder(params, max_len)
    state, _ = dec.prefill(tokens_BxN, lengths_B, per_token=False)
    return state, dec.next_logits(state)


@partial(jax.jit, static_argnums=0, static_argnames="max_len", donate_argnums=2)
def _step(how: _Decoding, params, state, tok_B, *, max_len: int | None):
    _TRACES[how, "decode_step"] += 1
    dec = how.decoder(params, max_len)
    state = dec.decode_step(state, tok_B)
    return state, dec.next_logits(state)


@partial(jax.jit, static_argnames="sampling")
def _pick_tokens(logits_BxV, key, step, *, sampling: Sampling):
    _TRACES[None, "pick"] += 1
    return _pick(logits_BxV, key, step, sampling)


_nll = jax.jit(_target_nll)


class Generator:
    """Prefill and decode for one model, compiled once per shape and reused across calls
    (and across Generators of the same model structure and inner loop).

    `ttt=None` decodes with the TTT inner loop when the model has prime MLPs; `ttt=False`
    runs the model without inner updates (as `ttt eval score --no-ttt` scores it).
    `compilations` counts compilations of the functions this generator runs (prefill,
    decode_step; pick, shared by all), so a caller can see one compile per bucket.
    """

    def __init__(self, model: Transformer, inner: InnerLoop = PAPER_INNER_LOOP,
                 max_new_tokens: int = 64, *, ttt: bool | None = None):
        cfg = model.cfg
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
                or max_new_tokens < 1:
            raise EvalError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        ttt = cfg.prime if ttt is None else ttt
        full = [i for i in range(cfg.num_layers) if cfg.window(i) is None]
        if ttt:
            require_ttt(cfg, "decoding")
        self.cfg = cfg
        self.inner = inner
        self.ttt = ttt
        self.max_new_tokens = max_new_tokens
        self.full_attention = bool(full)
        graphdef, self.params = nnx.split(model)
        self._how = _Decoding(graphdef, ttt, inner if ttt else PAPER_INNER_LOOP)

    @property
    def compilations(self) -> Counter[str]:
        return Counter({"prefill": _TRACES[self._how, "prefill"],
                        "decode_step": _TRACES[self._how, "decode_step"],
                        "pick": _TRACES[None, "pick"]})

    # ----- the decode loop -----
    def _check(self, prompts: Sequence[Sequence[int]]) -> list[np.ndarray]:
        if len(prompts) == 0:
            raise EvalError("no prompts given")
        return [_prompt_array(p, self.cfg.vocab_size, i) for i, p in enumerate(prompts)]

    def _decode(self, prompts: list[np.ndarray], n_new: int,
                choose: Callable[[int, jax.Array], jax.Array | None]) -> None:
        """Prefill the prompts, then for j = 0..n_new-1: `choose(j, logits_BxV)` gives the
        j-th new token of every row (None: stop), which is fed back unless it is the last."""
        if not 1 <= n_new <= self.max_new_tokens:
            raise EvalError(f"{n_new} new tokens asked of a generator built for "
                            f"1..{self.max_new_tokens}")
        lengths_B = np.array([p.size for p in prompts], np.int32)
        N = bucket_length(int(lengths_B.max()))
        tokens_BxN = np.zeros((len(prompts), N), np.int32)
        for i, p in enumerate(prompts):
            tokens_BxN[i, : p.size] = p
        # a full-attention ring holds the bucket and every new token; other rings do not
        # grow with the context, so one compiled step serves every bucket
        max_len = N + self.max_new_tokens if self.full_attention else None
        state, logits_BxV = _prefill(self._how, self.params, jnp.asarray(tokens_BxN),
                                     jnp.asarray(lengths_B), max_len=max_len)
        for j in range(n_new):
            tok_B = choose(j, logits_BxV)
            if tok_B is None or j == n_new - 1:
                return
            state, logits_BxV = _step(self._how, self.params, state, tok_B, max_len=max_len)

    def generate(self, prompts: Sequence[Sequence[int]], *, sampling: Sampling = GREEDY,
                 stop_ids: Collection[int] = (),
                 on_tokens: Callable[[list[int | None]], None] | None = None
                 ) -> list[Generation]:
        """Up to max_new_tokens new tokens per prompt; a row ends at a stop id (not kept)
        and the loop ends when every row has. `on_tokens` gets each step's new token per
        row (None for a row already finished, or finishing on a stop id)."""
        rows = self._check(prompts)
        stops = {int(s) for s in stop_ids}
        key = jax.random.key(sampling.seed)
        static = replace(sampling, seed=0)  # the seed is data: no recompile per seed
        out: list[list[int]] = [[] for _ in rows]
        stopped = [False] * len(rows)
        done = [False] * len(rows)

        def choose(j: int, logits_BxV: jax.Array) -> jax.Array | None:
            tok_B = _pick_tokens(logits_BxV, key, jnp.int32(j), sampling=static)
            new: list[int | None] = []
            for i, t in enumerate(np.asarray(tok_B).tolist()):
                if done[i] or t in stops:
                    stopped[i] = stopped[i] or not done[i]
                    done[i] = True
                    new.append(None)
                    continue
                out[i].append(t)
                done[i] = len(out[i]) == self.max_new_tokens
                new.append(t)
            if on_tokens is not None:
                on_tokens(new)
            return None if all(done) else tok_B

        self._decode(rows, self.max_new_tokens, choose)
        return [Generation(tuple(o), s, int(p.size))
                for o, s, p in zip(out, stopped, rows, strict=True)]

    def teacher_force(self, prompts: Sequence[Sequence[int]],
                      continuations: Sequence[Sequence[int]]) -> np.ndarray:
        """NLL [B, K] of each row's given continuation (K tokens, K <= max_new_tokens),
        token by token through decode steps: what the model pays while generating it."""
        rows = self._check(prompts)
        try:
            cont_BxK = np.asarray(continuations)
        except ValueError:  # ragged
            cont_BxK = np.empty(0)
        if cont_BxK.ndim != 2 or cont_BxK.shape[0] != len(rows) or cont_BxK.shape[1] < 1 \
                or not np.issubdtype(cont_BxK.dtype, np.integer):
            raise EvalError(f"continuations must be [{len(rows)}, K >= 1] token ids, got "
                            f"{cont_BxK.dtype} of shape {list(cont_BxK.shape)}")
        lo, hi = int(cont_BxK.min()), int(cont_BxK.max())
        if lo < 0 or hi >= self.cfg.vocab_size:
            raise EvalError(f"continuation token ids span [{lo}, {hi}] but the model's "
                            f"vocabulary is [0, {self.cfg.vocab_size})")
        cont_BxK = cont_BxK.astype(np.int32)
        nll: list[jax.Array] = []

        def choose(j: int, logits_BxV: jax.Array) -> jax.Array:
            tok_B = jnp.asarray(cont_BxK[:, j])  # sliced on the host: nothing to compile
            nll.append(_nll(logits_BxV, tok_B))  # stays on device: no sync per token
            return tok_B

        self._decode(rows, cont_BxK.shape[1], choose)
        return np.asarray(jnp.stack(nll, 1), np.float64)


class TextStream:
    """The text of a growing token sequence, handed out as it becomes final: the decode of
    all tokens so far minus what was handed out, holding back a trailing incomplete UTF-8
    sequence (shown by a byte-level decoder as U+FFFD) until the bytes that complete it
    arrive, so that a character split over several BPE tokens comes out whole."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self.ids: list[int] = []
        self._emitted = 0

    def push(self, ids: Iterable[int]) -> str:
        self.ids.extend(int(i) for i in ids)
        return self._take(self._decode(self.ids).rstrip(REPLACEMENT))

    def flush(self) -> str:
        """Everything left, an incomplete trailing sequence included (generation ended)."""
        return self._take(self._decode(self.ids))

    def _take(self, text: str) -> str:
        new = text[self._emitted:]
        self._emitted = max(self._emitted, len(text))
        return new


@dataclass(frozen=True)
class PromptCodec:
    """A run's tokenizer for generation: prompts framed as training framed documents
    (BOS when the family adds it), stop texts as token ids, streamed decoding."""

    folder: Path
    info: TokenizerInfo

    @staticmethod
    def load(folder: str | Path) -> PromptCodec:
        try:
            return PromptCodec(Path(folder), describe_tokenizer(folder))
        except TokenizerError as e:
            raise EvalError(str(e)) from None

    @property
    def _tok(self):
        return load_tokenizer(self.folder, self.info.sha256)

    def encode(self, text: str) -> list[int]:
        head = [self.info.bos_id] if self.info.add_bos else []
        ids = head + self._tok.encode(text, add_special_tokens=False).ids
        if not ids:
            raise EvalError("the prompt is empty: give at least one token of text")
        return ids

    def stop_id(self, text: str) -> int:
        """The id of a stop text that is one token (a special token, or a piece)."""
        tid = self._tok.token_to_id(text)
        if tid is not None:
            return tid
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if len(ids) != 1:
            raise EvalError(f"stop text {text!r} encodes to {len(ids)} tokens {ids}; a stop "
                            "must be a single token")
        return ids[0]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def stream(self) -> TextStream:
        return TextStream(self.decode)


def load_generator(checkpoint_dir: str | Path, max_new_tokens: int, *,
                   ttt: bool | None = None, tokenizer_dir: str | Path | None = None,
                   allow_tokenizer_mismatch: bool = False) -> Generator:
    """A `Generator` for a checkpoint's model with its run's own inner loop; a given
    tokenizer is checked against the one the run trained with."""
    model, settings = load_run_model(checkpoint_dir)
    if tokenizer_dir is not None and not allow_tokenizer_mismatch:
        check_tokenizer(checkpoint_dir, settings["tokenizer"], tokenizer_dir)
    return Generator(model, settings["inner"], max_new_tokens, ttt=ttt)


def read_prompt(path: str | Path) -> str:
    """A prompt file's UTF-8 text byte for byte (a trailing newline is part of it)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError(f"{path}: cannot read UTF-8 text ({e})") from None


def stream_generation(checkpoint_dir: str | Path, tokenizer_dir: str | Path, prompt: str,
                      max_new_tokens: int, write: Callable[[str], None], *,
                      sampling: Sampling = GREEDY, stops: Sequence[str] = (),
                      ttt: bool | None = None, allow_tokenizer_mismatch: bool = False) -> None:
    """Generate from a checkpoint with its run's inner loop and tokenizer, handing `write`
    the text as it becomes final (whole characters; never an empty string). Decoding stops
    at a `stops` text (each one token), at the tokenizer's EOS (the model's when the
    tokenizer names none), or after `max_new_tokens`."""
    codec = PromptCodec.load(tokenizer_dir)
    generator = load_generator(checkpoint_dir, max_new_tokens, ttt=ttt,
                               tokenizer_dir=tokenizer_dir,
                               allow_tokenizer_mismatch=allow_tokenizer_mismatch)
    eos = codec.info.eos_id if codec.info.eos_id is not None else generator.cfg.eos_token_id
    stop_ids = [codec.stop_id(s) for s in stops] + ([eos] if eos is not None else [])
    stream = codec.stream()

    def emit(text: str) -> None:
        if text:
            write(text)

    def on_tokens(new: list[int | None]) -> None:
        if new[0] is not None:
            emit(stream.push(new))

    generator.generate([codec.encode(prompt)], sampling=sampling, stop_ids=stop_ids,
                       on_tokens=on_tokens)
    emit(stream.flush())
