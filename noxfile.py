"""Sessions: tests (per package, each in its own locked venv), slow (the long checks the tests
leave out, marked `slow`), faults (the fault-injection suite), lint, bench, parity, pilot,
ablate (the SmolLM2-135M recipe's ablation table), study (the small-scale study behind
docs/results/study.md)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]


def _packages() -> list[str]:
    dirs = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
    if (ROOT / "apps").exists():
        dirs += sorted(p for p in (ROOT / "apps").iterdir() if (p / "pyproject.toml").exists())
    return [p.name for p in dirs]


def _package_dir(name: str) -> Path:
    for base in ("packages", "apps"):
        if (ROOT / base / name / "pyproject.toml").exists():
            return ROOT / base / name
    raise ValueError(f"no package {name!r} under packages/ or apps/")


# pytest-xdist workers: XLA compiles on one thread, so two processes nearly halve the wall
# time on two cores; more than four buys little and costs a JAX runtime's memory each.
WORKERS = str(min(4, os.cpu_count() or 1))
NO_TESTS_COLLECTED = 5  # pytest's exit code when a package has no test of the selection


def _install_locked(session: nox.Session, package: str) -> None:
    """Install `package` with its test extra, pinned by uv.lock, and nothing else."""
    extras = tomllib.loads((_package_dir(package) / "pyproject.toml").read_text()).get(
        "project", {}).get("optional-dependencies", {})
    req = Path(session.create_tmp()) / "requirements.txt"
    args = ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--package", package,
            "-o", str(req)]
    if "test" in extras:
        args += ["--extra", "test"]
    session.run(*args, silent=True, external=True)
    session.install("-r", str(req), "pytest", "pytest-xdist")


WORKSPACE = "workspace"  # the cross-package tests under tests/ (the faults have a session)


def _test_target(session: nox.Session, package: str) -> list[str]:
    """Install what `package`'s tests need; the pytest arguments that select them."""
    if package == WORKSPACE:
        _install_locked(session, "ttt")
        return [str(ROOT / "tests"), "--ignore", str(ROOT / "tests" / "faults")]
    _install_locked(session, package)
    return [str(_package_dir(package) / "tests")]


@nox.session(python="3.11")
@nox.parametrize("package", [*_packages(), WORKSPACE])
def tests(session: nox.Session, package: str) -> None:
    """A package's tests in a venv holding only that package and its locked dependencies
    (`workspace`: the cross-package tests, with the `ttt` app); the checks marked `slow`
    run in `nox -s slow`."""
    target = _test_target(session, package)
    session.run("pytest", "-q", "-n", WORKERS, "-m", "not slow", *target, *session.posargs,
                env={"JAX_PLATFORMS": "cpu"})


@nox.session(python="3.11")
@nox.parametrize("package", [*_packages(), WORKSPACE])
def slow(session: nox.Session, package: str) -> None:
    """A package's checks marked `slow`: sharded steps, compiled memory at several lengths,
    the costlier variants of gradient-accumulation and remat checks."""
    target = _test_target(session, package)
    session.run("pytest", "-q", "-n", WORKERS, "-m", "slow", *target, *session.posargs,
                env={"JAX_PLATFORMS": "cpu"}, success_codes=[0, NO_TESTS_COLLECTED])


@nox.session(python="3.11")
def faults(session: nox.Session) -> None:
    """The fault-injection suite (tests/faults): damaged checkpoints and stores, signals
    mid-step and mid-save, two writers, bad corpora, config traps, through the `ttt` command,
    in a venv holding the `ttt` app and its locked dependencies."""
    _install_locked(session, "ttt")
    env = {"JAX_PLATFORMS": "cpu"}
    session.run("pytest", "-q", "-n", WORKERS, str(ROOT / "tests" / "faults"), *session.posargs,
                env=env)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".", external=True)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks; each writes bench/results/<name>.json. Then bench/tables.py (not a
    benchmark) regenerates docs/benchmarks.md from those files."""
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    tables = ROOT / "bench" / "tables.py"
    # gpu.py measures a GPU (run it there); tables.py is not a benchmark
    for script in sorted((ROOT / "bench").glob("*.py")):
        if script.name not in ("tables.py", "gpu.py"):
            session.run("python", str(script), *session.posargs, env={"JAX_PLATFORMS": "cpu"})
    session.run("python", str(tables))


@nox.session(python="3.11")
def parity(session: nox.Session) -> None:
    """Logits parity at true sizes (SmolLM2-135M/360M, Qwen2.5-0.5B; random weights) of
    ttt-import against transformers: the slow tests in packages/ttt-import/tests_slow."""
    _install_locked(session, "ttt-import")
    env = {"JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"}
    session.run("pytest", "-q", "-s", str(_package_dir("ttt-import") / "tests_slow"),
                *session.posargs, env=env)


@nox.session(python="3.11")
def ablate(session: nox.Session) -> None:
    """The SmolLM2-135M recipe's ablation on this machine (fp32 vs bf16 compute, tied vs
    untied embeddings, block remat on/off), at a CPU-sized context: tokens/s, peak memory
    and loss per variant in artifacts/ablation/ablation.{csv,md}. Extra arguments are
    training overrides."""
    import shutil

    _install_locked(session, "ttt")
    work = ROOT / "artifacts" / "ablation"
    shutil.rmtree(work / "runs", ignore_errors=True)
    env = {"JAX_PLATFORMS": "cpu"}
    corpus, tok, store = work / "corpus.jsonl", work / "tokenizer", work / "store"
    if not (store / "manifest.json").is_file():
        session.run("ttt", "data", "synth", "--out", str(corpus), "--docs", "120", env=env)
        session.run("ttt", "data", "train-tokenizer", "--input", str(corpus), "--out",
                    str(tok), "--vocab-size", "512", env=env)
        session.run("ttt", "data", "tokenize", "--tokenizer", str(tok), "--input",
                    str(corpus), "--out", str(store), env=env)
    session.run("python", "-m", "ttt_train.ablation", "--out", str(work), "--ignore-first",
                "5", "--", "+experiment=smollm2_135m/scratch",
                f"training.dataset_path={store}", f"training.tokenizer_name={tok}",
                f"training.exp_dir={work / 'runs'}", f"training.checkpoint_path={work / 'runs'}",
                "training.seq_length=64", "model.seq_len=64", "training.total_steps=25",
                "training.log_freq=5", "training.sample_every=0",
                "training.save_checkpoint_freq=0", "training.eval_batches=0",
                *session.posargs, env=env)


@nox.session(python="3.11")
def study(session: nox.Session) -> None:
    """The small-scale study (FA vs SWA vs TTT-E2E on a synthetic long-range corpus and on
    this Python's standard library, 3 seeds each; the warm-start ladder): trains, measures
    and writes docs/results/study.md with its plots. Extra arguments go to
    `python -m ttt_train.study` (e.g. --compare docs/results/study.json)."""
    _install_locked(session, "ttt")
    session.run("python", "-m", "ttt_train.study", "--out", str(ROOT / "docs" / "results"),
                "--work", str(ROOT / "artifacts" / "study"), *session.posargs,
                env={"JAX_PLATFORMS": "cpu"})


@nox.session(python="3.11")
def pilot(session: nox.Session) -> None:
    """The staged pipeline end to end, offline, on CPU: tiny Qwen2- and Llama-family HF
    stand-ins with locally trained tokenizers, synthetic long-range corpora, the 20-stage
    matrix at pilot budget (8/4/4 steps), held-out losses, and the ledger report."""
    import shutil
    import tempfile

    _install_locked(session, "ttt")
    work = ROOT / "artifacts" / "pilot"
    for stale in ("experiments", "checkpoints"):  # assets are reused, runs are not
        shutil.rmtree(work / stale, ignore_errors=True)
    assets = work / "assets"
    cache = Path(tempfile.gettempdir()) / "ttt_jax_cache"
    env = {"JAX_PLATFORMS": "cpu"}
    session.run("python", "-m", "ttt_train.pilot_assets", "--out", str(assets), env=env)
    session.run("ttt", "pipeline", "--model", "all", "--path", "all", "--budget", "pilot",
                "--exp-folder", "pilot", "--exp-dir", str(work / "experiments"),
                "--checkpoint-path", str(work / "checkpoints"),
                "--dclm-root", str(assets / "corpora" / "dclm.jsonl"),
                "--books-root", str(assets / "corpora" / "books.jsonl"),
                "--hf-root", str(assets / "hf"), f"backend.compilation_cache_dir={cache}",
                *session.posargs, env=env)
