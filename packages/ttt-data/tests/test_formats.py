"""The one-line texts `ttt data` prints: a store's closing verdict names every bad split,
and a tokenizer is described by what a run records of it."""

from __future__ import annotations

from ttt_data.tokenizer import TokenizerInfo, format_tokenizer
from ttt_data.verify import SplitVerdict, format_store_verdict


def _verdict(split: str, *faults: str) -> SplitVerdict:
    return SplitVerdict(split, tokens=10, chunks=1, checked="every chunk", faults=faults)


def test_store_verdict_is_intact_or_names_the_corrupt_splits():
    assert format_store_verdict("s", [_verdict("train"), _verdict("val")]) == \
        "token store s: intact (2 split(s))"
    bad = [_verdict("train", "chunk 0 missing"), _verdict("val"), _verdict("x", "bad")]
    assert format_store_verdict("s", bad) == "token store s: CORRUPT in split(s) train, x"


def test_tokenizer_line_has_vocab_specials_and_sha256():
    info = TokenizerInfo(name="t", sha256="ab" * 32, vocab_size=300, bos_token="<s>", bos_id=0,
                         eos_token=None, eos_id=None, add_bos=True, add_eos=False)
    assert format_tokenizer(info) == f"vocab 300, bos '<s>'=0, eos None=None, sha256 {'ab' * 32}"
