"""ttt-data: token stores (zarr v3 via tensorstore) with manifests, tokenization with a
model family's own tokenizer, Grain pipelines that resume exactly, and synthetic
long-range corpora. Imports no other ttt package.

Names are loaded lazily (importing Grain takes seconds; tokenizer worker processes and
the CLI's other commands should not pay for it).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_EXPORTS: dict[str, str] = {
    "train_bpe_tokenizer": "bpe",
    "CorpusInputs": "corpus", "Document": "corpus", "expand_inputs": "corpus",
    "iter_documents": "corpus",
    "CorpusError": "errors", "DataError": "errors", "EmptySplitError": "errors",
    "MissingSplitError": "errors", "PipelineStateError": "errors",
    "StoreCorruptError": "errors", "StoreError": "errors", "StoreTooShortError": "errors",
    "TokenizerError": "errors", "TokenizerMismatchError": "errors",
    "TokenIdOutOfRangeError": "errors",
    "ChunkChecksums": "manifest", "Manifest": "manifest", "SplitStats": "manifest",
    "read_manifest": "manifest",
    "BatchIterator": "pipeline", "PipelineConfig": "pipeline", "batches": "pipeline",
    "build_dataset": "pipeline", "make_batch": "pipeline",
    "check_split": "store", "list_splits": "store", "open_split": "store",
    "StoreSummary": "summary", "format_summary": "summary", "summarize_store": "summary",
    "SynthDocument": "synth", "synth_document": "synth", "synth_documents": "synth",
    "write_synth_corpus": "synth",
    "tokenize_corpus": "tokenization",
    "TokenizerInfo": "tokenizer", "describe_tokenizer": "tokenizer", "load_tokenizer": "tokenizer",
    "SplitVerdict": "verify", "format_verdict": "verify", "verify_store": "verify",
    "TokenWindows": "windows",
}

# Names that left this package, with where they went.
_MOVED: dict[str, str] = {}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _MOVED:
            raise ImportError(f"ttt_data.{name} {_MOVED[name]}")
        raise AttributeError(f"module 'ttt_data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ttt_data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
