"""Load a model family's own tokenizer from a local Hugging Face snapshot folder and
decide how documents are framed (BOS/EOS) by that family's convention.

Only ``tokenizers`` is used: ``tokenizer.json`` holds the model, and
``tokenizer_config.json`` / ``special_tokens_map.json`` name the special tokens.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from ttt_data.errors import TokenizerError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"


@dataclass(frozen=True)
class TokenizerInfo:
    """What a token store records about the tokenizer that wrote it.

    ``add_bos``/``add_eos`` are the framing applied to every document:
    ``[bos] + ids + [eos]`` with either part left out.
    """

    name: str
    sha256: str
    vocab_size: int
    bos_token: str | None
    bos_id: int | None
    eos_token: str | None
    eos_id: int | None
    add_bos: bool
    add_eos: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TokenizerInfo:
        return TokenizerInfo(**d)


def format_tokenizer(info: TokenizerInfo) -> str:
    """Vocabulary size, BOS and EOS with their ids, and the sha256 a run records: what to
    check before training on (or scoring with) a tokenizer."""
    return (f"vocab {info.vocab_size}, bos {info.bos_token!r}={info.bos_id}, "
            f"eos {info.eos_token!r}={info.eos_id}, sha256 {info.sha256}")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokenizer_file(folder: str | Path) -> Path:
    """Path of ``tokenizer.json`` in a snapshot folder, with a clear error if absent."""
    folder = Path(folder)
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
        raise TokenizerError(f"{path} not found (folder holds: {present}); "
                             "expected a Hugging Face tokenizer snapshot with tokenizer.json")
    return path


def tokenizer_sha256(folder: str | Path) -> str:
    """sha256 of the folder's ``tokenizer.json``: the identity a store's manifest records."""
    return file_sha256(tokenizer_file(folder))


@functools.lru_cache(maxsize=8)
def _load(path: str, sha256: str) -> Tokenizer:
    # Keyed by hash too, so a changed file on disk is reloaded.
    del sha256
    return Tokenizer.from_file(path)


def load_tokenizer(folder: str | Path, sha256: str | None = None) -> Tokenizer:
    """The ``tokenizers.Tokenizer`` of a snapshot folder, cached per process by path and
    file hash (pass ``sha256`` when known, to skip rehashing a large tokenizer.json)."""
    path = tokenizer_file(folder)
    return _load(str(path.resolve()), sha256 or file_sha256(path))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path}: not valid JSON ({e.msg})") from None
    return data if isinstance(data, dict) else {}


def _token_content(value: Any) -> str | None:
    # HF stores special tokens either as a string or as an AddedToken dict.
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _resolve_id(tok: Tokenizer, token: str | None, folder: Path, role: str) -> int | None:
    if token is None:
        return None
    tid = tok.token_to_id(token)
    if tid is None:
        raise TokenizerError(f"{folder}: {role} token {token!r} named in {CONFIG_FILE} or "
                             f"{SPECIAL_TOKENS_FILE} is not in {TOKENIZER_FILE}'s vocabulary")
    return tid


def describe_tokenizer(
    folder: str | Path, *, add_bos: bool | None = None, add_eos: bool | None = None
) -> TokenizerInfo:
    """Identity, special tokens and document framing of a snapshot's tokenizer.

    Framing by the family's convention when not forced:
    BOS is prepended when ``tokenizer_config.json`` says ``add_bos_token: true`` or the
    tokenizer's own post-processor adds it (Llama 3, Gemma); EOS is appended to every
    document when the family has an EOS token (documents are concatenated, so EOS is the
    separator), except when BOS and EOS are the same token and BOS is already added
    (one separator, not two).
    """
    folder = Path(folder)
    tok = load_tokenizer(folder)
    config = _read_json(folder / CONFIG_FILE)
    special = _read_json(folder / SPECIAL_TOKENS_FILE)
    bos = _token_content(config.get("bos_token")) or _token_content(special.get("bos_token"))
    eos = _token_content(config.get("eos_token")) or _token_content(special.get("eos_token"))
    bos_id = _resolve_id(tok, bos, folder, "bos")
    eos_id = _resolve_id(tok, eos, folder, "eos")
    if add_bos is None:
        if "add_bos_token" in config:
            add_bos = bool(config["add_bos_token"]) and bos_id is not None
        else:
            probe = tok.encode("a", add_special_tokens=True).ids
            add_bos = bos_id is not None and bool(probe) and probe[0] == bos_id
    if add_eos is None:
        add_eos = eos_id is not None and not (add_bos and eos_id == bos_id)
    if add_bos and bos_id is None:
        raise TokenizerError(f"{folder}: BOS framing requested but no bos token is named")
    if add_eos and eos_id is None:
        raise TokenizerError(f"{folder}: EOS framing requested but no eos token is named")
    name = config.get("name_or_path") or folder.resolve().name
    return TokenizerInfo(
        name=str(name),
        sha256=tokenizer_sha256(folder),
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        bos_token=bos, bos_id=bos_id, eos_token=eos, eos_id=eos_id,
        add_bos=bool(add_bos), add_eos=bool(add_eos),
    )


def encode_documents(
    tok: Tokenizer, info: TokenizerInfo, texts: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize documents with their framing; returns (all ids concatenated as uint32,
    tokens per document as int64).

    The post-processor is bypassed (``add_special_tokens=False``) so framing is applied
    once, here, the same way for every family.
    """
    pieces: list[np.ndarray] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    head = [info.bos_id] if info.add_bos else []
    tail = [info.eos_id] if info.add_eos else []
    for i, text in enumerate(texts):
        ids = tok.encode(text, add_special_tokens=False).ids
        arr = np.asarray(head + ids + tail, dtype=np.uint32)
        pieces.append(arr)
        lengths[i] = arr.size
    tokens = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.uint32)
    return tokens, lengths


@dataclass(frozen=True)
class EncodedPiece:
    """Tokens of consecutive documents, concatenated, with per-document counts."""

    tokens: np.ndarray  # uint32, all documents' framed ids back to back
    lengths: np.ndarray  # int64 tokens per document
    raw_bytes: np.ndarray  # int64 UTF-8 bytes per document


@dataclass(frozen=True)
class PieceEncoder:
    """Picklable encoding task for worker processes; the tokenizer is loaded once per
    process (cached) from ``tokenizer_dir``."""

    tokenizer_dir: str
    info: TokenizerInfo

    def __call__(self, texts: list[str]) -> EncodedPiece:
        tok = load_tokenizer(self.tokenizer_dir, self.info.sha256)
        tokens, lengths = encode_documents(tok, self.info, texts)
        raw = np.fromiter((len(t.encode("utf-8")) for t in texts), dtype=np.int64, count=len(texts))
        return EncodedPiece(tokens, lengths, raw)
