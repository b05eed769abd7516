"""train-tokenizer writes a loadable HF-format snapshot; document framing follows each
family's convention as declared by its tokenizer files."""

from __future__ import annotations

import json
import shutil

import pytest
from tokenizers import Tokenizer

from ttt_data.bpe import DEFAULT_BOS, DEFAULT_EOS, train_bpe_tokenizer
from ttt_data.errors import TokenizerError
from ttt_data.tokenizer import describe_tokenizer, encode_documents, load_tokenizer


def test_trained_tokenizer_is_a_complete_hf_snapshot(tokenizer_dir):
    assert sorted(p.name for p in tokenizer_dir.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    assert config["bos_token"] == DEFAULT_BOS and config["eos_token"] == DEFAULT_EOS
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    assert tok.get_vocab_size() == 320
    enc = tok.encode("héllo wörld")
    assert enc.ids[0] == tok.token_to_id(DEFAULT_BOS)  # post-processor adds BOS
    assert tok.decode(enc.ids, skip_special_tokens=True) == "héllo wörld"  # byte-level round trip


def test_vocab_below_byte_alphabet_is_refused(tmp_path, corpus_jsonl):
    with pytest.raises(ValueError, match="below the byte alphabet"):
        train_bpe_tokenizer([corpus_jsonl], tmp_path / "t", vocab_size=100)
    assert not (tmp_path / "t").exists()


def family(tmp_path, tokenizer_dir, name, config):
    """A snapshot with the trained tokenizer.json but another family's config."""
    folder = tmp_path / name
    shutil.copytree(tokenizer_dir, folder)
    (folder / "special_tokens_map.json").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_framing_conventions(tmp_path, tokenizer_dir):
    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    bos, eos = tok.token_to_id(DEFAULT_BOS), tok.token_to_id(DEFAULT_EOS)
    # Llama 3: no add_bos_token key, the post-processor adds BOS; EOS separates documents.
    llama = describe_tokenizer(family(tmp_path, tokenizer_dir, "llama", {
        "bos_token": DEFAULT_BOS, "eos_token": DEFAULT_EOS}))
    assert (llama.add_bos, llama.add_eos, llama.bos_id, llama.eos_id) == (True, True, bos, eos)
    # Qwen2.5: no BOS token at all; EOS (<|endoftext|>) only.
    qwen = describe_tokenizer(family(tmp_path, tokenizer_dir, "qwen", {
        "bos_token": None, "eos_token": DEFAULT_EOS}))
    assert (qwen.add_bos, qwen.add_eos, qwen.bos_id) == (False, True, None)
    # SmolLM2: BOS and EOS are one token and not added by config: one separator.
    smol = describe_tokenizer(family(tmp_path, tokenizer_dir, "smol", {
        "bos_token": DEFAULT_EOS, "eos_token": DEFAULT_EOS, "add_bos_token": False}))
    assert (smol.add_bos, smol.add_eos) == (False, True)
    # Gemma-like: add_bos_token true and BOS == EOS would double: EOS is dropped.
    same = describe_tokenizer(family(tmp_path, tokenizer_dir, "same", {
        "bos_token": DEFAULT_EOS, "eos_token": DEFAULT_EOS, "add_bos_token": True}))
    assert (same.add_bos, same.add_eos) == (True, False)
    ids, lengths = encode_documents(load_tokenizer(tokenizer_dir), qwen, ["ab", "c"])
    plain = [tok.encode(t, add_special_tokens=False).ids for t in ("ab", "c")]
    assert ids.tolist() == plain[0] + [eos] + plain[1] + [eos]
    assert lengths.tolist() == [len(plain[0]) + 1, len(plain[1]) + 1]


def test_special_token_missing_from_vocab(tmp_path, tokenizer_dir):
    folder = family(tmp_path, tokenizer_dir, "bad", {"bos_token": "<s>", "eos_token": DEFAULT_EOS})
    with pytest.raises(TokenizerError, match=r"bos token '<s>' named in .* is not in"):
        describe_tokenizer(folder)
