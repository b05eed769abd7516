"""The study's two corpora, each with its own byte-level BPE tokenizer and token store.

* ``synth``: ttt-data's synthetic long-range documents (key-value recall, a passage
  repeated after filler, a needle asked for at the end), sized so that what a document
  asks for lies beyond the sliding window but inside a training context.
* ``stdlib``: real text nobody here wrote and every machine has: the Python standard
  library of the interpreter running the study (`*.py` files outside tests), one document
  per file, in an order fixed by a hash of each file's relative path, up to a byte budget.
  Code reuses identifiers far apart, so long context matters there too.

Stores are reused when the manifest written for the same recipe is already there.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ttt_data.atomic import atomic_file
from ttt_data.bpe import train_bpe_tokenizer
from ttt_data.synth import write_synth_corpus
from ttt_data.tokenization import tokenize_corpus
from ttt_train.study.plan import StudyPlan

CORPORA: tuple[str, ...] = ("synth", "stdlib")
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})


@dataclass(frozen=True)
class Corpus:
    name: str
    jsonl: Path
    tokenizer: Path
    store: Path
    source: str  # where the text came from, in words


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(budget_bytes: int, root: Path | None = None) -> list[Path]:
    """The standard library's non-test `*.py` files in hash order, up to `budget_bytes`."""
    root = stdlib_root() if root is None else root
    files = [p for p in root.rglob("*.py")
             if not _SKIPPED_DIRS & set(p.relative_to(root).parts[:-1])]
    if not files:
        raise FileNotFoundError(f"no Python sources under {root} (the interpreter's stdlib)")

    def order(p: Path) -> str:
        return hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest()

    chosen, total = [], 0
    for path in sorted(files, key=order):
        size = path.stat().st_size
        if total + size > budget_bytes and chosen:
            continue
        chosen.append(path)
        total += size
    return chosen


def _write_stdlib_jsonl(out: Path, budget_bytes: int) -> None:
    root = stdlib_root()
    with atomic_file(out, overwrite=True) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for path in stdlib_files(budget_bytes, root):
            text = path.read_text(encoding="utf-8", errors="replace")
            f.write(json.dumps({"text": text, "path": path.relative_to(root).as_posix()}) + "\n")


def _recipe(name: str, plan: StudyPlan) -> dict:
    common = {"vocab": plan.shape.vocab, "val_fraction": plan.val_fraction}
    if name == "synth":
        return {**common, "docs": plan.synth_docs, "words": plan.synth_words, "seed": 0}
    return {**common, "bytes": plan.stdlib_bytes, "python": sys.version.split()[0],
            "stdlib": str(stdlib_root())}


def build_corpus(name: str, plan: StudyPlan, work: Path,
                 log: Callable[[str], None] = print) -> Corpus:
    """The corpus `name` under `work/name`: JSONL text, tokenizer, token store."""
    base = work / name
    corpus = Corpus(name, base / "corpus.jsonl", base / "tokenizer", base / "store",
                    source=("ttt-data synth (kv_recall, repeat, needle)" if name == "synth"
                            else f"Python {sys.version.split()[0]} standard library sources"))
    recipe = _recipe(name, plan)
    stamp = base / "recipe.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe and \
            (corpus.store / "manifest.json").is_file():
        log(f"corpus {name}: reusing {corpus.store}")
        return corpus
    base.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    if name == "synth":
        write_synth_corpus(corpus.jsonl, plan.synth_docs, seed=0, words=plan.synth_words,
                           overwrite=True)
    elif name == "stdlib":
        _write_stdlib_jsonl(corpus.jsonl, plan.stdlib_bytes)
    else:
        raise ValueError(f"unknown corpus {name!r}; expected one of {CORPORA}")
    train_bpe_tokenizer([corpus.jsonl], corpus.tokenizer, vocab_size=plan.shape.vocab,
                        overwrite=True)
    manifest = tokenize_corpus(corpus.tokenizer, [corpus.jsonl], corpus.store,
                               val_fraction=plan.val_fraction, overwrite=True, progress=False)
    splits = {k: v.tokens for k, v in manifest.splits.items()}
    log(f"corpus {name}: {corpus.source}; tokens {splits}")
    stamp.write_text(json.dumps(recipe, sort_keys=True))
    return corpus
