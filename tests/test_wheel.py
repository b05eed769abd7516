"""An installed `ttt` stands alone: wheels built from the workspace, installed into a
fresh venv outside the checkout, compose an experiment from the config tree the
`ttt-train` wheel carries (no checkout, no configs/ beside it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH: the wheel test builds and installs with it"
    return uv


def _projects() -> list[Path]:
    return [p.parent for base in ("packages", "apps") for p in sorted((ROOT / base).glob(
        "*/pyproject.toml")) if tomllib.loads(p.read_text())["project"].get("name")]


def _install(uv: str, python: Path, wheels: list[Path]) -> None:
    """Offline from uv's cache when it has everything (CI just installed it all), else
    from the index."""
    args = [uv, "pip", "install", "--quiet", "--python", str(python), *map(str, wheels)]
    if subprocess.run([*args, "--offline"], capture_output=True).returncode != 0:
        subprocess.run(args, check=True, capture_output=True)


def test_an_installed_ttt_composes_experiments_outside_the_checkout(tmp_path):
    uv = _uv()
    dist = tmp_path / "dist"
    for project in _projects():
        subprocess.run([uv, "build", "--wheel", "--quiet", "--out-dir", str(dist),
                        str(project)], check=True, capture_output=True)
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} >= {"ttt", "ttt_train", "ttt_model"}
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True,
                   capture_output=True)
    _install(uv, venv / "bin" / "python", wheels)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run([str(venv / "bin" / "ttt"), "train",
                           "+experiment=125m/pretrain-e2e-8K",
                           "deploy_paths.data.dclm=/data/dclm", "--print-config"],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout.split("\n# ", 1)[0])
    assert config["training"]["exp_name"] == "pretrain-125m-e2e-8K"
    assert config["training"]["train_mode"] == "meta"
    assert config["model"]["hidden_size"] == 768 and config["model"]["prime"] is True
    family = subprocess.run([str(venv / "bin" / "ttt"), "train",  # built from the registry
                             "+experiment=external/qwen2_5_0_5b/pretrain-e2e-scratch-8K",
                             "deploy_paths.data.dclm=/data/dclm", "--print-config"],
                            cwd=elsewhere, env=env, capture_output=True, text=True)
    assert family.returncode == 0, family.stderr
    config = yaml.safe_load(family.stdout.split("\n# ", 1)[0])
    assert config["model"]["intermediate_size"] == 3968 and config["model"]["prime"] is True
    assert config["training"]["total_steps"] == 12000
    tree = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import ttt_train.config as c; print(c.CONFIG_DIR)"],
                          cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert Path(tree.stdout.strip()).is_relative_to(venv), tree.stdout
