"""Device mesh and sharding rules: data parallelism and FSDP over a ("data", "fsdp") mesh.

The batch is split over both axes; every parameter and optimiser-state array of rank >= 2
is split over "fsdp" along its largest dimension that divides evenly (others are
replicated). XLA's SPMD partitioner inserts the gathers and reductions, so the same
train step runs on one CPU, one GPU, or a multi-host slice (after
`jax.distributed.initialize()`), and computes the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA, FSDP = "data", "fsdp"
BATCH_AXES = (DATA, FSDP)


@dataclass(frozen=True)
class MeshConfig:
    """Mesh shape; `data=-1` takes every device not used by `fsdp`."""

    data: int = -1
    fsdp: int = 1


def make_mesh(mc: MeshConfig = MeshConfig(), devices: list | None = None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if mc.fsdp < 1 or n % mc.fsdp:
        raise ValueError(f"fsdp={mc.fsdp} must divide the device count {n}")
    data = n // mc.fsdp if mc.data == -1 else mc.data
    if data * mc.fsdp != n:
        raise ValueError(f"mesh data={data} x fsdp={mc.fsdp} = {data * mc.fsdp} does not "
                         f"match the {n} devices available")
    return Mesh(np.asarray(devices).reshape(data, mc.fsdp), (DATA, FSDP))


def leaf_spec(shape: tuple[int, ...], fsdp: int) -> PartitionSpec:
    """FSDP rule: shard the largest evenly divisible dimension of rank>=2 arrays."""
    if fsdp == 1 or len(shape) < 2:
        return PartitionSpec()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = FSDP
            return PartitionSpec(*spec)
    return PartitionSpec()


def state_shardings(tree: Any, mesh: Mesh) -> Any:
    """NamedShardings for every array leaf of `tree` (params, optimiser state, step)."""
    fsdp = mesh.shape[FSDP]
    return jax.tree.map(lambda x: NamedSharding(mesh, leaf_spec(tuple(np.shape(x)), fsdp)),
                        tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Tokens [A, B, T+1]: the B windows are split over every device."""
    return NamedSharding(mesh, PartitionSpec(None, BATCH_AXES))

