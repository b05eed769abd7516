"""The process's JAX runtime: platform, persistent compilation cache, `jax.distributed`,
and the device mesh, set up once before any array is made.

Multi-host: every process runs the same `ttt train` command; with
`backend.distributed=true`, `jax.distributed.initialize()` connects them (on SLURM,
TPU pods and other clusters it reads the coordinator, process count and id from the
environment; elsewhere give `backend.coordinator_address`, `num_processes`,
`process_id`). CPU processes exchange collectives over Gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
from jax._src import xla_bridge
from jax.sharding import Mesh

from ttt_model.sharding import MeshConfig, make_mesh
from ttt_train.translate import BackendSpec

_PLATFORMS = {"gpu": "cuda", "cuda": "cuda", "cpu": "cpu", "tpu": "tpu"}


class RuntimeSetupError(RuntimeError):
    """The devices or processes found do not match what the config asks for."""


@dataclass(frozen=True)
class Runtime:
    """What this process is part of: processes, devices and the mesh over them."""

    process_index: int
    process_count: int
    mesh: Mesh
    device_kind: str
    device_count: int

    @property
    def is_primary(self) -> bool:
        return self.process_index == 0


def enable_compilation_cache(cache_dir: str | None) -> None:
    """Reuse compiled steps across processes (pipeline stages share shapes)."""
    if not cache_dir:
        return
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


_initialized = False


def start_runtime(backend: BackendSpec, mesh_cfg: MeshConfig) -> Runtime:
    """Platform, cache and (optionally) jax.distributed, then the mesh; idempotent for
    the distributed part (a pipeline runs many stages in one process)."""
    global _initialized
    if backend.platform is not None and not xla_bridge.backends_are_initialized():
        jax.config.update("jax_platforms", _PLATFORMS[backend.platform])
    enable_compilation_cache(backend.compilation_cache_dir)
    if backend.distributed and not _initialized:
        kwargs = {k: v for k, v in (
            ("coordinator_address", backend.coordinator_address),
            ("num_processes", backend.num_processes), ("process_id", backend.process_id),
            ("local_device_ids", list(backend.local_device_ids)
             if backend.local_device_ids is not None else None)) if v is not None}
        jax.distributed.initialize(**kwargs)
        _initialized = True
    devices = jax.devices()
    if backend.num_devices is not None and len(devices) != backend.num_devices:
        raise RuntimeSetupError(
            f"backend.num_devices={backend.num_devices} but JAX sees {len(devices)} "
            f"device(s): {[str(d) for d in devices][:8]}")
    try:
        mesh = make_mesh(mesh_cfg, devices)
    except ValueError as e:
        raise RuntimeSetupError(f"mesh (training.n_data_parallel={mesh_cfg.data}, "
                                f"training.n_state_parallel={mesh_cfg.fsdp}): {e}") from e
    return Runtime(process_index=jax.process_index(), process_count=jax.process_count(),
                   mesh=mesh, device_kind=devices[0].device_kind or devices[0].platform,
                   device_count=len(devices))
