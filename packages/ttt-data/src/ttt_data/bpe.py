"""Train a small byte-level BPE tokenizer with ``tokenizers`` and save it as a Hugging
Face snapshot (tokenizer.json, tokenizer_config.json, special_tokens_map.json), so tiny
offline stand-in models have a real tokenizer with BOS/EOS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from ttt_data.atomic import atomic_directory
from ttt_data.corpus import CorpusFormat, iter_documents
from ttt_data.tokenizer import CONFIG_FILE, SPECIAL_TOKENS_FILE, TOKENIZER_FILE

DEFAULT_BOS = "<|begin_of_text|>"
DEFAULT_EOS = "<|end_of_text|>"


def train_bpe_tokenizer(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    vocab_size: int = 512,
    fmt: CorpusFormat = "auto",
    field: str = "text",
    bos_token: str = DEFAULT_BOS,
    eos_token: str = DEFAULT_EOS,
    min_frequency: int = 2,
    overwrite: bool = False,
) -> Path:
    """Train on the documents of ``inputs`` and write the snapshot folder ``out``.

    Byte-level (every byte is in the alphabet, so any text encodes without unknowns).
    BOS is added by the post-processor and declared with ``add_bos_token`` (Llama 3
    convention); EOS is the document separator. Ids 0 and 1 are BOS and EOS.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 2:
        raise ValueError(f"vocab_size {vocab_size} is below the byte alphabet "
                         f"({len(alphabet)}) plus BOS and EOS")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=[bos_token, eos_token], initial_alphabet=alphabet,
    )
    texts = (doc.text for doc in iter_documents(inputs, fmt, field))
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id(bos_token)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B",
        special_tokens=[(bos_token, bos_id)],
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1 << 30,
    }
    special = {"bos_token": bos_token, "eos_token": eos_token}
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        tok.save(str(tmp / TOKENIZER_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / SPECIAL_TOKENS_FILE).write_text(json.dumps(special, indent=2, sort_keys=True) + "\n")
    return out
