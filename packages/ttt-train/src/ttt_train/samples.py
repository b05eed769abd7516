"""Text samples while training (`training.sample_every`): a greedy continuation of one
prompt every N steps, written to the run's log, so that whoever reads it sees the model
learn. Decoding is ttt-eval's, with the run's own inner loop for a TTT-E2E model."""

from __future__ import annotations

from dataclasses import dataclass

import jax
from flax import nnx

from ttt_eval.errors import EvalError
from ttt_eval.generate import Generator, PromptCodec
from ttt_eval.score import inner_loop_at
from ttt_model.config import TrainConfig


@dataclass(frozen=True)
class SampleSpec:
    every: int = 0  # 0: no samples
    prompt: str = "The"
    tokens: int = 32
    tokenizer_dir: str | None = None


class TextSampler:
    """Greedy samples of one prompt, decoded with the run's tokenizer."""

    def __init__(self, spec: SampleSpec, train: TrainConfig, vocab_size: int):
        if spec.tokenizer_dir is None:
            raise EvalError("training.sample_every needs the run's tokenizer: set "
                            "training.tokenizer_name to its folder")
        self.spec, self.train = spec, train
        self.codec = PromptCodec.load(spec.tokenizer_dir)
        self.prompt_ids = self.codec.encode(spec.prompt)
        if max(self.prompt_ids) >= vocab_size:
            raise EvalError(f"training.sample_prompt: the tokenizer at {spec.tokenizer_dir} "
                            f"gives id {max(self.prompt_ids)}, beyond the model's vocabulary "
                            f"of {vocab_size}")

    @property
    def prompt_text(self) -> str:
        return self.spec.prompt

    def due(self, step: int) -> bool:
        return self.spec.every > 0 and step % self.spec.every == 0

    def sample(self, graphdef: nnx.GraphDef, params: nnx.State, step: int) -> str:
        model = nnx.merge(graphdef, jax.device_get(params))
        inner = inner_loop_at(self.train.to_dict(), step)
        generator = Generator(model, inner, self.spec.tokens)
        eos = self.codec.info.eos_id
        out = generator.generate([self.prompt_ids], stop_ids=[eos] if eos is not None else [])
        return self.codec.decode(list(out[0].tokens))
