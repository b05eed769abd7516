"""Random-access sources of training windows (seq_len + 1 consecutive tokens) over one
split's flat token array, read with tensorstore on demand.

Two window layouts:
* contiguous (the authors'): window i starts at i * seq_len, so consecutive windows
  share one token and every token is a target exactly once; (n - 1) // seq_len windows.
* document-aligned: one window per document start (long-document extension), for
  documents of at least ``min_document_tokens`` tokens, while a full window fits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ttt_data.errors import EmptySplitError, StoreError, TokenIdOutOfRangeError
from ttt_data.integrity import CheckedReader
from ttt_data.store import open_checked_split
from ttt_data.token_array import DEFAULT_CACHE_BYTES


def contiguous_window_count(num_tokens: int, seq_len: int) -> int:
    """Windows of seq_len + 1 tokens at stride seq_len that fit in ``num_tokens``."""
    return max(0, (num_tokens - 1) // seq_len)


def document_window_starts(
    doc_starts: np.ndarray, num_tokens: int, seq_len: int, min_document_tokens: int = 1
) -> np.ndarray:
    """Starts of document-aligned windows: documents long enough, with room for a window.

    A document's length is the distance to the next start (or to the end).
    """
    starts = np.asarray(doc_starts, dtype=np.int64)
    if starts.size == 0:
        return starts
    lengths = np.diff(np.append(starts, num_tokens))
    keep = (lengths >= min_document_tokens) & (starts + seq_len + 1 <= num_tokens)
    return starts[keep]


class TokenWindows:
    """A Grain random-access data source: ``len()`` windows, ``[i]`` -> int32[seq_len + 1].

    Holds only the store path and the window starts; the tensorstore handle is opened
    lazily in each process that reads (so the source pickles for worker processes).
    Every chunk a window touches is verified against the manifest's checksum the first
    time this process reads it (``verify=False`` skips that; missing chunks are always
    refused). When ``vocab_size`` is given every window is checked for ids >= vocab_size.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        seq_len: int,
        *,
        starts: np.ndarray | None = None,
        num_tokens: int | None = None,
        vocab_size: int | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        verify: bool = True,
    ) -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.root = Path(root)
        self.split = split
        self.seq_len = int(seq_len)
        self.vocab_size = vocab_size
        self.cache_bytes = cache_bytes
        self.verify = verify
        self._reader: CheckedReader | None = None
        if num_tokens is None:
            num_tokens = self._open().length
        self.num_tokens = int(num_tokens)
        self.starts = None if starts is None else np.asarray(starts, dtype=np.int64)
        if self.starts is not None and self.starts.size and (
                self.starts.min() < 0 or self.starts.max() + self.seq_len + 1 > self.num_tokens):
            raise StoreError(f"window starts out of range for split {split!r} of {root} "
                             f"({self.num_tokens} tokens, window {self.seq_len + 1})")
        if len(self) == 0:
            kind = "document-aligned windows" if starts is not None else "windows"
            raise EmptySplitError(
                f"split {split!r} of token store {root} yields no {kind} of {self.seq_len + 1} "
                f"tokens ({self.num_tokens} tokens)")

    def _open(self) -> CheckedReader:
        if self._reader is None:
            self._reader = open_checked_split(self.root, self.split,
                                              cache_bytes=self.cache_bytes, verify=self.verify)
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None  # each process opens (and verifies) for itself
        return state

    def __len__(self) -> int:
        if self.starts is not None:
            return int(self.starts.size)
        return contiguous_window_count(self.num_tokens, self.seq_len)

    def start(self, index: int) -> int:
        """Token offset where window ``index`` starts."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        return int(self.starts[index]) if self.starts is not None else index * self.seq_len

    def __getitem__(self, index: int) -> np.ndarray:
        lo = self.start(int(index))
        window = self._open().read(lo, lo + self.seq_len + 1)
        if self.vocab_size is not None:
            bad = np.flatnonzero(window >= self.vocab_size)
            if bad.size:
                raise TokenIdOutOfRangeError(
                    f"split {self.split!r} of token store {self.root}: token id "
                    f"{int(window[bad[0]])} at offset {lo + int(bad[0])} is >= the model's "
                    f"vocab_size {self.vocab_size}")
        return window.astype(np.int32)

    def __repr__(self) -> str:
        kind = "document-aligned" if self.starts is not None else "contiguous"
        return (f"TokenWindows({str(self.root)!r}, split={self.split!r}, seq_len={self.seq_len}, "
                f"{kind}, windows={len(self)})")
