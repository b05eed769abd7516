"""Selecting parameters by glob specs over their dotted paths (the inner/fast weights).

A spec such as `**.suffix_blocks.feed_forward_prime.**` is matched component-wise:
`*` matches one path component (or part of one), `**` any number of components,
zero included. Layer indices in a path are optional for the match, so the official
spec (written for scanned, index-free blocks) selects every suffix block, while
`suffix_blocks.2.feed_forward_prime.**` selects one. The official code's root module,
`language_model`, may lead a spec: our parameter paths start one level below it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from functools import lru_cache

from flax import nnx

OFFICIAL_ROOT = "language_model"


def path_str(path: Sequence[object]) -> str:
    return ".".join(str(getattr(p, "key", p)) for p in path)


@lru_cache(maxsize=4096)
def _match_parts(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match_parts(rest, parts[1:])


def glob_match(spec: str, path: str) -> bool:
    """Whether dotted `path` matches glob `spec` (with or without its integer components)."""
    pattern = tuple(spec.split("."))
    if pattern[0] == OFFICIAL_ROOT:
        pattern = pattern[1:]
    parts = tuple(path.split("."))
    if _match_parts(pattern, parts):
        return True
    no_index = tuple(p for p in parts if not p.isdigit())
    return _match_parts(pattern, no_index)


def spec_filter(specs: Sequence[str]):
    """An NNX filter selecting the Params whose path matches any of `specs`."""
    specs = tuple(specs)

    def select(path, value) -> bool:
        return isinstance(value, nnx.Param) and any(glob_match(s, path_str(path))
                                                   for s in specs)

    return select


def selected_paths(model: nnx.Module, specs: Sequence[str]) -> list[str]:
    state = nnx.state(model, spec_filter(specs))
    return sorted(path_str(p) for p, _ in nnx.to_flat_state(state))
