"""Hydra composition of a run's config, offline, with the compose API.

`+experiment=<path>` and `key=value` overrides mean what they mean in the official
TTT-E2E repo: the primary config (`configs/config.yaml`) selects one option per group
(`training`, `model`, `backend`, `deploy_paths`), an experiment file (`# @package
_global_`) overrides group choices and keys, and command-line overrides win over both.
Extra config directories (`--config-dir`) are searched before the packaged ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = Path(__file__).parent / "configs"
PRIMARY = "config"
GROUPS = ("training", "model", "backend", "deploy_paths")


class RunConfigError(ValueError):
    """A config that does not compose, or holds a key or value `ttt train` refuses."""


@dataclass(frozen=True)
class ComposedConfig:
    """The composed config (interpolations unresolved), what it was built from, and the
    files it read, so errors can name the file that set a key."""

    cfg: DictConfig
    overrides: tuple[str, ...]
    choices: dict[str, str]
    search_dirs: tuple[Path, ...]

    def resolved(self) -> dict[str, Any]:
        try:
            return OmegaConf.to_container(self.cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as e:
            raise RunConfigError(f"config does not resolve: {e}") from e

    def unresolved(self) -> dict[str, Any]:
        return OmegaConf.to_container(self.cfg, resolve=False)

    def files(self) -> list[tuple[Path, str]]:
        """(file, package) of every config file selected by the group choices."""
        out = [(self._find(PRIMARY), "")]
        for group, option in self.choices.items():
            if group.startswith("hydra") or option is None:
                continue
            path = self._find(f"{group}/{option}")
            if path is not None:
                out.append((path, "" if group == "experiment" else group.split("/")[0]))
        return [(p, pkg) for p, pkg in out if p is not None]

    def _find(self, name: str) -> Path | None:
        for d in (*self.search_dirs, CONFIG_DIR):
            path = d / f"{name}.yaml"
            if path.is_file():
                return path
        return None

    def where_set(self, dotted_key: str) -> str:
        """Which config file sets `dotted_key` (or the command line), for error messages."""
        for path, package in reversed(self.files()):
            text = path.read_text()
            if "@package _global_" in text.split("\n", 1)[0] or "# @package _global_" in text:
                package = ""
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError:
                continue
            prefix = f"{package}." if package else ""
            if _has_key(data, dotted_key, prefix):
                return str(path)
        for o in self.overrides:
            if o.lstrip("+~").split("=", 1)[0] == dotted_key:
                return f"the command-line override {o!r}"
        return "the composed config"


def _has_key(data: Any, dotted: str, prefix: str) -> bool:
    if prefix and not dotted.startswith(prefix):
        return False
    node = data
    for part in dotted[len(prefix):].split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def compose_config(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()
                   ) -> ComposedConfig:
    """Compose the primary config with `overrides` (Hydra syntax), searching `config_dirs`
    before the packaged configs."""
    dirs = tuple(Path(d).resolve() for d in config_dirs)
    for d in dirs:
        if not d.is_dir():
            raise RunConfigError(f"config directory {d} does not exist")
    extra = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in dirs)}]"] if dirs else []
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(PRIMARY, overrides=[*extra, *overrides], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise RunConfigError(f"config does not compose with overrides {list(overrides)}: "
                             f"{e}") from e
    choices = {k: v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
               if not k.startswith("hydra")}
    with _unlocked(cfg):
        del cfg["hydra"]
    return ComposedConfig(cfg, tuple(overrides), choices, dirs)


class _unlocked:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def __enter__(self) -> DictConfig:
        OmegaConf.set_struct(self.cfg, False)
        return self.cfg

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, True)


def write_configs(composed: ComposedConfig, run_dir: str | Path) -> tuple[Path, Path]:
    """Write `config_unresolved.yaml` (interpolations kept, overrides listed) and
    `config_resolved.yaml` (every value final) into the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    unresolved = {"overrides": list(composed.overrides), "choices": composed.choices,
                  **composed.unresolved()}
    paths = (run_dir / "config_unresolved.yaml", run_dir / "config_resolved.yaml")
    for path, data in zip(paths, (unresolved, composed.resolved()), strict=True):
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        tmp.replace(path)
    return paths
