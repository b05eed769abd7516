"""Schedule lengths as a run means them. Warmup and decay lengths pinned in a file were
written for that file's total_steps; when a later layer (the command line, an experiment)
changes total_steps, they are scaled to it, and a `*_fraction` key gives a length as a
fraction of total_steps instead. Every derived length is reported in one line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ttt_train.config import ComposedConfig, RunConfigError

TOTAL = "training.total_steps"
DECAY = "training.optimizer_outer.lr_decay_steps"
WARMUP = "training.optimizer_outer.lr_warmup_steps"
ILR_WARMUP = "training.ilr_warmup_steps"
# Schedule lengths that follow total_steps (decay first: warmup is kept within it), each
# with the key (ours) that gives it as a fraction of total_steps.
SCHEDULE_LENGTHS = (
    (DECAY, "training.optimizer_outer.lr_decay_fraction"),
    (WARMUP, "training.optimizer_outer.lr_warmup_fraction"),
    (ILR_WARMUP, "training.ilr_warmup_fraction"),
)


@dataclass(frozen=True)
class ScheduleLengths:
    """The schedule lengths a run uses (dotted steps key -> steps), the key that gave each
    (the steps key or its fraction), and one line per length derived from total_steps."""

    steps: dict[str, int]
    given_by: dict[str, str]
    derived: tuple[str, ...]


def schedule_lengths(cfg: dict[str, Any], composed: ComposedConfig) -> ScheduleLengths:
    """Each schedule length as this run means it. A length pinned in a layer older than the
    one that set total_steps (a family file, then `training.total_steps=40`) was meant for
    that file's total, so it is scaled to the new one; a length set in the same layer as
    total_steps or a later one is the user's for this run and kept; a fraction, when set,
    gives the length from total_steps unless the steps key was set in a later layer."""
    total, total_layer = _get(cfg, TOTAL), composed.layer_index(TOTAL)
    steps: dict[str, int] = {}
    given_by: dict[str, str] = {}
    derived: list[str] = []
    for steps_key, fraction_key in SCHEDULE_LENGTHS:
        _refuse_both_in_one_layer(steps_key, fraction_key, composed)
        value, fraction = _get(cfg, steps_key), _get(cfg, fraction_key)
        steps_layer = _index(composed.layer_index(steps_key))
        if fraction is not None and _index(composed.layer_index(fraction_key)) > steps_layer:
            if not 0.0 <= fraction <= 1.0:
                raise RunConfigError(f"{fraction_key} (set in {composed.where_set(fraction_key)}):"
                                     f" must lie in [0, 1] (a fraction of total_steps), got "
                                     f"{fraction}")
            n = max(1, round(fraction * total)) if fraction > 0 else 0
            steps[steps_key], given_by[steps_key] = n, fraction_key
            derived.append(f"{steps_key}={n} (derived: {fraction_key.rsplit('.', 1)[1]}="
                           f"{fraction} in {composed.where_set(fraction_key)}, of "
                           f"total_steps={total})")
            continue
        steps[steps_key], given_by[steps_key] = value, steps_key
        old_total = _total_when_set(composed, steps_layer, steps_key)
        if total_layer is None or steps_layer >= total_layer or old_total is None:
            continue
        n = min(round(value * total / old_total), total)
        if steps_key == WARMUP:
            n = min(n, steps[DECAY])
        n = max(n, 1) if value >= 1 else n
        if n != value:
            steps[steps_key] = n
            derived.append(f"{steps_key}={n} (derived: {value} of {old_total} in "
                           f"{composed.layers[steps_layer].where(steps_key)}, scaled to "
                           f"total_steps={total})")
    return ScheduleLengths(steps, given_by, tuple(derived))


def _index(layer: int | None) -> int:
    return -1 if layer is None else layer


def _total_when_set(composed: ComposedConfig, layer: int, steps_key: str) -> int | None:
    """total_steps as the layer that set `steps_key` saw it, when that length was written
    as a number for it (an interpolation such as ${training.total_steps} follows anyway)."""
    if layer < 0 or "${" in str(composed.layers[layer].values.get(steps_key)):
        return None
    for earlier in reversed(composed.layers[:layer + 1]):
        if TOTAL in earlier.values:
            total = earlier.values[TOTAL]
            ok = isinstance(total, int) and not isinstance(total, bool) and total > 0
            return total if ok else None
    return None


def _refuse_both_in_one_layer(steps_key: str, fraction_key: str,
                              composed: ComposedConfig) -> None:
    for layer in composed.layers:
        if layer.values.get(fraction_key) is not None and layer.sets(steps_key):
            raise RunConfigError(
                f"{fraction_key} (set in {layer.where(fraction_key)}) and {steps_key} (set in "
                f"{layer.where(steps_key)}) give the same length: set only one of them")


def _get(tree: dict[str, Any], dotted_key: str) -> Any:
    for part in dotted_key.split("."):
        tree = tree[part]
    return tree


def with_lengths(cfg: dict[str, Any], steps: dict[str, int]) -> dict[str, Any]:
    """A copy of `cfg` holding the schedule lengths the run uses."""
    out = copy.deepcopy(cfg)
    for dotted_key, n in steps.items():
        *parents, leaf = dotted_key.split(".")
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = n
    return out
