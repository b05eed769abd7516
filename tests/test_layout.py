"""The dependency arrows between the workspace's packages hold in the code and in the
declared dependencies: library packages import only the library packages they may, the
runner (ttt-train) any library package, the app anything; nothing under packages/ imports
the app, and nothing but the app imports the runner."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = {"ttt-model", "ttt-data", "ttt-ledger", "ttt-import", "ttt-eval"}
MAY_IMPORT = {
    "ttt-model": set(),
    "ttt-data": set(),
    "ttt-ledger": set(),
    "ttt-import": {"ttt-model"},
    "ttt-eval": {"ttt-model", "ttt-data"},
    "ttt-train": LIBRARIES,
    "ttt": LIBRARIES | {"ttt-train"},
}
PACKAGE_OF_MODULE = {name.replace("-", "_"): name for name in MAY_IMPORT} | {"ttt_cli": "ttt"}


def _projects() -> dict[str, Path]:
    found = {}
    for base in ("packages", "apps"):
        for pyproject in sorted((ROOT / base).glob("*/pyproject.toml")):
            found[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return found


def imported_packages(source_dir: Path, root: Path = ROOT) -> dict[str, set[str]]:
    """Workspace packages imported by the modules under `source_dir`, with the files
    (relative to `root`)."""
    out: dict[str, set[str]] = {}
    for path in source_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for name in names:
                if (package := PACKAGE_OF_MODULE.get(name.split(".")[0])) is not None:
                    out.setdefault(package, set()).add(str(path.relative_to(root)))
    return out


def test_every_workspace_project_has_its_arrows():
    assert set(_projects()) == set(MAY_IMPORT)


@pytest.mark.parametrize("project", sorted(MAY_IMPORT))
def test_imports_follow_the_arrows(project):
    folder = _projects()[project]
    imported = imported_packages(folder / "src")
    imported.pop(project, None)
    wrong = {p: sorted(files) for p, files in imported.items() if p not in MAY_IMPORT[project]}
    assert not wrong, f"{project} may import only {sorted(MAY_IMPORT[project])}: {wrong}"
    deps = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in deps}
    undeclared = set(imported) - declared
    assert not undeclared, f"{project} imports {sorted(undeclared)} without declaring them"


def test_the_rule_sees_a_forbidden_import(tmp_path):
    """The checker is not blind: a library module importing the app or the runner shows."""
    (tmp_path / "m.py").write_text("import ttt_cli.main\nfrom ttt_train.stage import x\n"
                                   "from . import sibling\n")
    assert set(imported_packages(tmp_path, tmp_path)) == {"ttt", "ttt-train"}


APP_MODULE_MAX_LINES = 80  # parse, call, print: anything longer holds logic a library should


def test_the_app_is_thin():
    app = ROOT / "apps" / "ttt" / "src"
    long = {str(p.relative_to(ROOT)): n for p in sorted(app.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > APP_MODULE_MAX_LINES}
    assert not long, f"app modules over {APP_MODULE_MAX_LINES} lines: {long}"


def test_top_level_matches_the_design_card():
    """The user's layout: these at the top, and no second home for configs or docs."""
    for name in ("pyproject.toml", "packages", "apps", "noxfile.py", "configs", "tests",
                 "docs", "README.md"):
        assert (ROOT / name).exists(), name
    assert not list((ROOT / "apps").rglob("configs/config.yaml"))
    assert not list((ROOT / "packages").rglob("src/**/configs/config.yaml"))


@pytest.mark.parametrize("project", sorted(LIBRARIES | {"ttt-train"}))
def test_package_inits_are_of_one_kind(project: str):
    """Each package's `__init__` holds its version and a map of its public names (loaded
    on first use, so importing a package is cheap), and names that moved say where."""
    import importlib

    directory = _projects()[project]
    module = importlib.import_module(project.replace("-", "_"))
    version = tomllib.loads((directory / "pyproject.toml").read_text())["project"]["version"]
    assert module.__version__ == version
    assert isinstance(module._EXPORTS, dict) and isinstance(module._MOVED, dict)
    assert module.__all__ == sorted(module._EXPORTS)
    for name, where in module._EXPORTS.items():
        assert getattr(module, name) is getattr(
            importlib.import_module(f"{module.__name__}.{where}"), name), name
    for name in module._MOVED:
        with pytest.raises(ImportError, match="moved"):
            getattr(module, name)
    init = ast.parse((directory / "src" / module.__name__ / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in init.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign", "AnnAssign", "FunctionDef"}
