"""What a token store holds, for people: the manifest when there is one, else the
splits and their token counts (the authors' stores), and optionally a decoded sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttt_data.manifest import Manifest, read_manifest
from ttt_data.store import list_splits, open_checked_split, split_path
from ttt_data.token_array import open_flat_array
from ttt_data.tokenizer import load_tokenizer


@dataclass(frozen=True)
class StoreSummary:
    root: Path
    manifest: Manifest | None
    split_tokens: dict[str, int]
    sample_split: str | None = None
    sample_ids: tuple[int, ...] = ()
    sample_text: str | None = None


def summarize_store(
    root: str | Path, *, tokenizer_dir: str | Path | None = None, sample_tokens: int = 64,
    split: str | None = None,
) -> StoreSummary:
    """Splits and token counts read from the arrays themselves (not trusted from the
    manifest), plus the first ``sample_tokens`` ids of ``split`` (default: the first
    non-empty split) decoded when a tokenizer is given."""
    root = Path(root)
    counts = {name: open_flat_array(split_path(root, name)).length for name in list_splits(root)}
    manifest = read_manifest(root)
    if split is None:
        split = next((name for name, n in counts.items() if n), None)
    ids: tuple[int, ...] = ()
    text = None
    if split is not None and sample_tokens > 0 and counts.get(split):
        head = open_checked_split(root, split).read(0, min(sample_tokens, counts[split]))
        ids = tuple(int(i) for i in np.asarray(head))
        if tokenizer_dir is not None:
            text = load_tokenizer(tokenizer_dir).decode(list(ids), skip_special_tokens=False)
    return StoreSummary(root, manifest, counts, split if ids else None, ids, text)


def _checksums_recorded(m: Manifest) -> str:
    algorithms = sorted({st.token_checksums.algorithm for st in m.splits.values()
                         if st.token_checksums is not None})
    return (f"chunk checksums recorded ({', '.join(algorithms)})" if algorithms
            else "no chunk checksums")


def format_summary(s: StoreSummary) -> str:
    """Plain-text report of a summary."""
    lines = [f"token store {s.root}"]
    m = s.manifest
    if m is None:
        lines.append("  manifest: none (splits read from the zarr arrays)")
    else:
        t = m.tokenizer
        lines += [
            f"  tokenizer: {t.name} sha256={t.sha256} vocab={t.vocab_size} "
            f"bos={t.bos_token!r}({t.bos_id}) add_bos={t.add_bos} "
            f"eos={t.eos_token!r}({t.eos_id}) add_eos={t.add_eos}",
            f"  documents={m.documents} tokens={m.tokens} raw_bytes={m.raw_bytes} "
            f"tokens_per_byte={m.tokens_per_byte}",
            f"  fingerprint: {m.fingerprint}",
            f"  manifest format version {m.format_version}: " + _checksums_recorded(m),
            f"  dtype={m.dtype} chunk_tokens={m.chunk_tokens} val_fraction={m.val_fraction} "
            f"input_files={m.input_files}",
        ]
        if m.invalid_utf8_documents is not None:
            lines.append(f"  invalid UTF-8: {m.invalid_utf8_documents} documents, "
                         f"{m.invalid_utf8_bytes} bytes"
                         + (" (replaced by U+FFFD)" if m.invalid_utf8_bytes else ""))
        if m.skipped_binary_files:
            lines.append(f"  skipped {len(m.skipped_binary_files)} binary file(s): "
                         f"{', '.join(m.skipped_binary_files)}")
    for name, n in s.split_tokens.items():
        line = f"  split {name}: {n} tokens"
        if m is not None and name in m.splits:
            st = m.splits[name]
            line += (f", {st.documents} documents, {st.raw_bytes} raw bytes, "
                     f"max id {st.max_token_id}, sha256 {st.sha256}")
        lines.append(line)
    if s.sample_ids:
        lines.append(f"  sample ({s.sample_split}, first {len(s.sample_ids)} ids): "
                     f"{list(s.sample_ids)}")
    if s.sample_text is not None:
        lines.append(f"  decoded: {s.sample_text!r}")
    return "\n".join(lines)
