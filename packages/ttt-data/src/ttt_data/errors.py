"""Errors raised by ttt-data. Each message names the file, split, size or value at fault
and what was expected, so a failed run says what to fix without a debugger."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error ttt-data raises on bad input."""


class CorpusError(DataError):
    """An input corpus file is missing, unreadable, or lacks the requested field."""


class TokenizerError(DataError):
    """A tokenizer folder is missing files or names special tokens it does not have."""


class TokenizerMismatchError(DataError):
    """The tokenizer given at load time is not the one the store was written with."""


class StoreError(DataError):
    """A token store is missing, malformed, or would be overwritten."""


class MissingSplitError(StoreError):
    """The store has no array for the requested split."""


class StoreCorruptError(StoreError):
    """A chunk of a store is missing on disk, cannot be decoded, or differs from the
    checksum its manifest recorded: the tokens cannot be trusted."""


class EmptySplitError(StoreError):
    """A split holds no tokens (or no windows of the requested kind)."""


class StoreTooShortError(StoreError):
    """A split holds fewer tokens than one training window of seq_len + 1."""


class TokenIdOutOfRangeError(StoreError):
    """A token id is >= the model's vocabulary size: the embedding lookup would be wrong."""


class PipelineStateError(DataError):
    """A saved iterator state does not belong to the pipeline it is restored into."""
