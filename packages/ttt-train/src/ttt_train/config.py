"""Hydra composition of a run's config, offline, with the compose API, and its schema.

`+experiment=<path>` and `key=value` overrides mean what they mean in the official
TTT-E2E repo: the primary config (`configs/config.yaml`) selects one option per group
(`training`, `model`, `backend`, `deploy_paths`), an experiment file (`# @package
_global_`) overrides group choices and keys, and command-line overrides win over both.
Extra config directories (`--config-dir`) add config files; Hydra reads a packaged file
before an extra one of the same name, so such a shadowing file is refused, not ignored.
The families' configs (`model/<family>`, `experiment/external/<family>/...`) are not
files: `ttt_train.family_configs` builds them from the family registry.

The composition is kept as its layers (each file in merge order, then the command line)
so that errors name the file or override that set a key, and so that a value can be
judged by how recent its layer is. The schema is `ttt_train.schema`: every key a run may
set, typed, stored in Hydra's ConfigStore as `<group>/base_<group>` and checked strictly.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from ttt_model.atomic import write_atomic
from ttt_model.config import PAPER_SIZES
from ttt_train.family_configs import PROVIDER, store_family_configs
from ttt_train.schema import GROUPS, defaults, key_types

PRIMARY = "config"


def _config_tree() -> Path:
    """The packaged config tree: inside an installed wheel, `ttt_train/configs`; in a
    checkout (an editable install), the repository's top-level `configs/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parents[3] / "configs"):
        if (candidate / f"{PRIMARY}.yaml").is_file():
            return candidate
    raise RuntimeError(f"no config tree: neither {here / 'configs'} (an installed wheel) nor "
                       f"{here.parents[3] / 'configs'} (a checkout) holds {PRIMARY}.yaml")


CONFIG_DIR = _config_tree()
REFERENCE = "docs/config-reference.md (generated from ttt_train.schema)"
SCHEMA_PROVIDER = "ttt-train schema"


def store_schema() -> None:
    """The schema's defaults as `<group>/base_<group>`, where the primary config and the
    official files' defaults lists look for them."""
    store = ConfigStore.instance()
    for group in GROUPS:
        store.store(name=f"base_{group}", node=defaults(group), group=group,
                    provider=SCHEMA_PROVIDER)

class RunConfigError(ValueError):
    """A config that does not compose, or holds a key or value `ttt train` refuses."""


@dataclass(frozen=True)
class ConfigLayer:
    """What one merge step of the composition sets: a config file (its keys placed at its
    package) or the command line (every key=value override of the run, together)."""

    source: str
    values: dict[str, Any]  # dotted key -> value as written (interpolations unresolved)
    lines: dict[str, str] = field(default_factory=dict)  # command line: key -> its override

    def sets(self, dotted_key: str) -> bool:
        return any(_overlap(k, dotted_key) for k in self.values)

    def where(self, dotted_key: str) -> str:
        for key, line in self.lines.items():
            if _overlap(key, dotted_key):
                return f"the command-line override {line!r}"
        return self.source


def _overlap(set_key: str, dotted_key: str) -> bool:
    """Setting `set_key` sets `dotted_key`: the same key, one inside it, or its parent."""
    return (set_key == dotted_key or set_key.startswith(f"{dotted_key}.")
            or dotted_key.startswith(f"{set_key}."))


@dataclass(frozen=True)
class ComposedConfig:
    """The composed config (interpolations unresolved), what it was built from, and its
    layers, oldest first, so errors can name the file that set a key."""

    cfg: DictConfig
    overrides: tuple[str, ...]
    choices: dict[str, str]
    layers: tuple[ConfigLayer, ...]

    def resolved(self, group: str | None = None) -> dict[str, Any]:
        """Every value final (of one group only, when given: nothing else must resolve)."""
        try:
            return OmegaConf.to_container(self.cfg if group is None else self.cfg[group],
                                          resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as e:
            raise self._resolve_error(e) from e

    def unresolved(self) -> dict[str, Any]:
        return OmegaConf.to_container(self.cfg, resolve=False)

    def checked(self, group: str | None = None) -> dict[str, Any]:
        """The resolved config (or only `group`), every key known and every value of the
        schema's type (an int where a float is expected becomes that float)."""
        unresolved = self.unresolved()
        tree = unresolved if group is None else {group: unresolved[group]}
        _refuse_unknown_keys(_unknown_keys(tree), self)
        return _typed(self.resolved() if group is None else {group: self.resolved(group)},
                      self)

    def layer_index(self, dotted_key: str) -> int | None:
        """Index in `layers` of the newest layer that sets `dotted_key` (None: none does)."""
        hits = [i for i, layer in enumerate(self.layers) if layer.sets(dotted_key)]
        return hits[-1] if hits else None

    def where_set(self, dotted_key: str) -> str:
        """Which config file sets `dotted_key` (or the command line), for error messages."""
        index = self.layer_index(dotted_key)
        return "the composed config" if index is None else self.layers[index].where(dotted_key)

    def _resolve_error(self, e: OmegaConfBaseException) -> RunConfigError:
        key = getattr(e, "full_key", None)
        if not key:
            return RunConfigError(f"config does not resolve: {_one_line(str(e))}")
        if isinstance(e, MissingMandatoryValue):
            return RunConfigError(f"{key} (set in {self.where_set(key)}) has no value: give "
                                  f"one, e.g. on the command line {key}=...")
        return RunConfigError(f"{key} (set in {self.where_set(key)}) does not resolve: "
                              f"{str(e).splitlines()[0]}")


def compose_config(overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()
                   ) -> ComposedConfig:
    """Compose the primary config with `overrides` (Hydra syntax), also searching
    `config_dirs` for config files."""
    dirs = tuple(Path(d).resolve() for d in config_dirs)
    for d in dirs:
        if not d.is_dir():
            raise RunConfigError(f"config directory {d} does not exist")
    extra = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in dirs)}]"] if dirs else []
    store_schema()
    store_family_configs()
    _refuse_registry_names(dirs)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(PRIMARY, overrides=[*extra, *overrides], return_hydra_config=True)
            defaults = GlobalHydra.instance().config_loader().compute_defaults_list(
                PRIMARY, [*extra, *overrides], RunMode.RUN)
    except (HydraException, OmegaConfBaseException) as e:
        _refuse_unknown_override(overrides)
        detail = str(e).split("\nConfig search path:")[0]  # the paths add nothing here
        raise RunConfigError(f"config does not compose with overrides {list(overrides)}: "
                             f"{_one_line(detail)}") from e
    choices = {k: v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
               if not k.startswith("hydra")}
    with _unlocked(cfg):
        del cfg["hydra"]
    return ComposedConfig(cfg, tuple(overrides), choices, _layers(defaults, dirs))


def _layers(defaults: Any, dirs: tuple[Path, ...]) -> tuple[ConfigLayer, ...]:
    """The configs of Hydra's defaults list in merge order, then the command line."""
    layers = []
    for default in defaults.defaults:
        package = default.package or ""
        if default.config_path is None or package == "hydra" or package.startswith("hydra."):
            continue
        source, node = _find(default.config_path, dirs)
        data = OmegaConf.to_container(node, resolve=False)
        data.pop("defaults", None)
        prefix = package.removeprefix("_global_").lstrip(".")
        layers.append(ConfigLayer(source, _flatten(data, f"{prefix}." if prefix else "")))
    values, lines = {}, {}
    for override in defaults.overrides.config_overrides:
        key = override.key_or_group
        if key.startswith("hydra."):
            continue
        value = None if override.is_delete() else override.value()
        flat = _flatten(value, f"{key}.") if isinstance(value, dict) and value else {key: value}
        values.update(flat)
        lines.update(dict.fromkeys(flat, override.input_line))
    if values:
        layers.append(ConfigLayer("the command line", values, lines))
    return tuple(layers)


def _find(config_path: str, dirs: tuple[Path, ...]) -> tuple[str, DictConfig]:
    """Where Hydra reads `config_path` from, and its contents: a packaged file, a file of
    an extra directory, or a family config of the registry. A name found in two places is
    refused (Hydra would silently read one and ignore the other)."""
    search = dict.fromkeys((CONFIG_DIR.resolve(), *dirs))
    found: list[tuple[str, Any]] = [(_display(p), p) for d in search
                                     if (p := d / f"{config_path}.yaml").is_file()]
    stored = _stored(config_path)
    if stored is not None:
        found.append((_stored_source(config_path), stored))
    if not found:
        raise RunConfigError(f"config {config_path} not found in {list(search)}")
    if len(found) > 1:
        raise RunConfigError(f"{found[1][0]} has the name of {found[0][0]}: give it another "
                             "name")
    source, where = found[0]
    return source, where if isinstance(where, DictConfig) else OmegaConf.load(where)


def _stored(config_path: str) -> DictConfig | None:
    """A family config of the registry, if `config_path` names one."""
    try:
        node = ConfigStore.instance().load(f"{config_path}.yaml")
    except Exception:  # noqa: BLE001 - Hydra raises several kinds for "not stored"
        return None
    return node.node if node.provider in (PROVIDER, SCHEMA_PROVIDER) else None


def _refuse_registry_names(dirs: tuple[Path, ...]) -> None:
    """A file of an extra directory named like a family config of the registry would be
    read in its place or clash with it: refused before Hydra says something obscure."""
    for d in dirs:
        for path in sorted(d.rglob("*.yaml")):
            name = str(path.relative_to(d).with_suffix(""))
            if _stored(name) is not None:
                raise RunConfigError(f"{path} has the name of {_stored_source(name)}: give "
                                     "it another name")


def _stored_source(config_path: str) -> str:
    """How errors name a config that is not a file."""
    if config_path.rsplit("/", 1)[-1].startswith("base_"):
        return f"the schema's defaults ({config_path}, ttt_train.schema)"
    if config_path.removeprefix("model/") in PAPER_SIZES:
        return f"{config_path} (built from the paper's sizes, ttt_model.config)"
    return f"{config_path} (built from the family registry)"


def experiment_names(config_dirs: Sequence[str | Path] = ()) -> list[str]:
    """Every experiment `+experiment=` accepts: files (packaged and in `config_dirs`) and
    the families' configs."""
    names = {str(p.relative_to(root).with_suffix(""))
             for d in (CONFIG_DIR, *map(Path, config_dirs))
             if (root := Path(d) / "experiment").is_dir() for p in root.rglob("*.yaml")}
    store_family_configs()
    repo = ConfigStore.instance().repo

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, child in node.items():
            if isinstance(child, dict):
                walk(child, f"{prefix}{name}/")
            elif child.provider == PROVIDER:
                names.add(f"{prefix}{name.removesuffix('.yaml')}")

    walk(repo.get("experiment", {}), "")
    return sorted(names)


def _display(path: Path) -> str:
    packaged = CONFIG_DIR.resolve()
    return (f"configs/{path.relative_to(packaged)}" if path.is_relative_to(packaged)
            else str(path))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _unlocked:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg

    def __enter__(self) -> DictConfig:
        OmegaConf.set_struct(self.cfg, False)
        return self.cfg

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, True)


# -- schema ---------------------------------------------------------------------------

@functools.cache
def config_schema() -> dict[str, Any]:
    """Dotted key -> type, for every key of the schema (`ttt_train.schema`)."""
    return key_types()


@functools.cache
def _schema_nodes() -> frozenset[str]:
    """Dotted keys of the mappings that hold schema keys (`training`, `training.ledger`)."""
    return frozenset(".".join(k.split(".")[:i]) for k in config_schema()
                     for i in range(1, k.count(".") + 1))


def _is_known(dotted: str) -> bool:
    """A schema key, a mapping of them, or a name inside a free-form mapping."""
    if dotted in config_schema() or dotted in _schema_nodes():
        return True
    parent = dotted.rsplit(".", 1)[0]
    return "." in dotted and get_origin(config_schema().get(parent)) is dict


def _unknown_keys(cfg: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of `cfg` that the schema does not declare."""
    out = []
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if not _is_known(dotted):
            out.append(dotted)
        elif isinstance(value, dict) and dotted in _schema_nodes():
            out += _unknown_keys(value, f"{dotted}.")
    return out


def _refuse_unknown_keys(keys: Sequence[str], composed: ComposedConfig) -> None:
    """One line naming each unknown key, where it was set, and the nearest known key."""
    if keys:
        raise RunConfigError("; ".join(_unknown(k, composed.where_set(k)) for k in keys))


def _unknown(key: str, where: str) -> str:
    near = difflib.get_close_matches(key, sorted(config_schema()), n=1, cutoff=0.8)
    hint = (f"did you mean {near[0]}?" if near else
            f"every key, with its default, is in {REFERENCE}")
    return f"unknown config key {key} (set in {where}); {hint}"


def _refuse_unknown_override(overrides: Sequence[str]) -> None:
    """Hydra refuses `a.b=v` for a key no file declares, in a message of several lines;
    say which key, and the nearest known one."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return  # a syntax error: Hydra's own message says where
    for o in parsed:
        key = o.key_or_group
        if "." in key and not key.startswith("hydra.") and not _is_known(key):
            raise RunConfigError(_unknown(key, f"the command-line override {o.input_line!r}"))


def _typed(resolved: dict[str, Any], composed: ComposedConfig) -> dict[str, Any]:
    """A copy of `resolved` holding every schema key of its groups, each value checked
    against (and normalised to) the schema's type."""
    out: dict[str, Any] = {}
    for key, tp in config_schema().items():
        if key.split(".", 1)[0] not in resolved:
            continue
        node, target, parts = resolved, out, key.split(".")
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[:depth + 1])
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise RunConfigError(f"{where} (set in {composed.where_set(where)}): expected a "
                                     f"mapping of its schema keys, got {_show(node)}")
            target = target.setdefault(part, {})
        if parts[-1] not in node:
            raise RunConfigError(f"{key} (set in {composed.where_set(key)}) is missing; its "
                                 f"default is in {REFERENCE}")
        ok, value = _conform(node[parts[-1]], tp)
        if not ok:
            raise RunConfigError(f"{key} (set in {composed.where_set(key)}): expected "
                                 f"{_describe(tp)}, got {_show(node[parts[-1]])}")
        target[parts[-1]] = value
    return out


def _is_union(tp: Any) -> bool:
    return isinstance(tp, UnionType) or get_origin(tp) is Union


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    """(True, the value as `tp` holds it) when `value` is a `tp`, else (False, None). Ints
    are numbers; an integral float is an int; a number is a string (a name like 2024); a
    Literal is exactly one of its values."""
    if get_origin(tp) is Literal:
        return (value in get_args(tp) and not isinstance(value, bool)), value
    if _is_union(tp):
        for member in get_args(tp):
            ok, conformed = _conform(value, member)
            if ok:
                return ok, conformed
        return False, None
    origin = get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            return False, None
        items = [_conform(v, get_args(tp)[0]) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, None
        items = {k: _conform(v, get_args(tp)[1]) for k, v in value.items()}
        return all(ok for ok, _ in items.values()), {k: v for k, (_, v) in items.items()}
    if tp is bool or tp is NoneType:
        return isinstance(value, tp), value
    if isinstance(value, bool | NoneType):
        return False, None
    if tp is int:
        ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return ok, int(value) if ok else None
    if tp is float:
        ok = isinstance(value, int | float)
        return ok, float(value) if ok else None
    if isinstance(value, str):
        return True, value
    ok = isinstance(value, int | float)
    return ok, str(value) if ok else None


_WORDS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string", "strings"),
          NoneType: ("null", "nulls")}


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(tp))
    if _is_union(tp):
        return " or ".join(_describe(member) for member in get_args(tp))
    if get_origin(tp) is list:
        return f"a list of {_WORDS[get_args(tp)[0]][1]}"
    if get_origin(tp) is dict:
        return f"a mapping of names to {_describe(get_args(tp)[1])}"
    return _WORDS[tp][0]


def _show(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def write_configs(composed: ComposedConfig, run_dir: str | Path,
                  resolved: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write `config_unresolved.yaml` (interpolations kept, overrides listed) and
    `config_resolved.yaml` (every value final: `resolved`, the values the run uses, when
    given) into the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    unresolved = {"overrides": list(composed.overrides), "choices": composed.choices,
                  **composed.unresolved()}
    final = composed.resolved() if resolved is None else resolved
    paths = (run_dir / "config_unresolved.yaml", run_dir / "config_resolved.yaml")
    for path, data in zip(paths, (unresolved, final), strict=True):
        write_atomic(path, yaml.safe_dump(data, sort_keys=False))
    return paths
