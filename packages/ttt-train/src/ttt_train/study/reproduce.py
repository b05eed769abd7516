"""Whether two study results agree on every figure that does not depend on the clock:
losses, per-position NLLs, retrieval scores, compiled FLOPs and bytes, the ladder's losses.
Wall-clock figures (and what is derived from them) are left out by name."""

from __future__ import annotations

from typing import Any

# Keys whose values are measured with a clock (or derived from one), or describe the machine.
CLOCK_KEYS = frozenset({
    "train_s", "wall_s", "seconds", "compile_seconds", "elapsed_s", "charged_train_s",
    "wall_clock_saving", "passed", "environment", "timing", "platform", "prefill", "decode",
    "decode_over_prefill", "checkpoint_dir", "store", "checkpoint", "memory_limit_bytes",
    "batch_windows", "memory_bytes",
})


def _leaves(tree: Any, path: str = "", compiled: bool = False) -> dict[str, Any]:
    """Leaves by path; under a `compiled` subtree (XLA's analysis) every key counts."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            if compiled or k not in CLOCK_KEYS:
                out |= _leaves(v, f"{path}.{k}" if path else str(k), compiled or k == "compiled")
        return out
    if isinstance(tree, list):
        out = {}
        for i, v in enumerate(tree):
            out |= _leaves(v, f"{path}[{i}]", compiled)
        return out
    return {path: tree}


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per figure that differs or exists on one side only (empty: reproduced)."""
    a, b = _leaves(before), _leaves(after)
    diffs = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys())
             if a.get(k) != b.get(k)]
    return diffs
