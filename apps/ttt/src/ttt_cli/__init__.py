"""The `ttt` command line.

The runner that used to live here (`ttt_cli.config`, `.stage`, `.pipeline`, ...) is the
`ttt_train` package now; importing it by its old name still works, with a warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED_TO_TTT_TRAIN = frozenset({
    "config", "data_feed", "errors", "external_eval", "interrupts",
    "pipeline", "run_lock", "run_log", "runtime", "stage", "summary", "translate",
    "warmstart"})


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `ttt_cli.<name>` of a moved module to `ttt_train.<name>` (the same module
    object, so state and isinstance checks are shared)."""

    def find_spec(self, fullname: str, path: object, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in MOVED_TO_TTT_TRAIN:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"ttt_train.{spec.name.partition('.')[2]}"
        warnings.warn(f"{spec.name} moved to {new}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed as its ttt_train self


if not any(isinstance(f, _MovedModule) for f in sys.meta_path):
    sys.meta_path.append(_MovedModule())
