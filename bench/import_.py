"""Benchmark of ttt-import; writes bench/results/import.json and prints the figures.

Import of a true-size Qwen2.5-0.5B snapshot (494,032,768 parameters, random weights saved
as one bf16 model.safetensors like the real checkpoint, written here with numpy; nothing
is downloaded) into a ttt-model checkpoint, recipe fa, checked against the qwen2_5_0_5b
profile. Default parameter dtype (auto): the snapshot's own, bf16, stored bit for bit.

Each import runs in a fresh child process, so its figures are its own:
* wall-clock of the whole child (interpreter and library start-up included) and of the
  `import_snapshot` call alone;
* peak resident memory (`getrusage(RUSAGE_SELF).ru_maxrss` of the child: RSS, so numpy,
  JAX, memory-mapped file pages and torch are all counted), against the checkpoint's size.

Targets (issue 3, must-show 6): under 60 s and below 3x the checkpoint's size, for the
default import without the parity check (`--no-parity`). Measured too, for information:
widening to float32 at import (`--param-dtype float32`), and the default import with the
parity check (which also loads the transformers reference model in float32).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "import.json"
KEY = "qwen2_5_0_5b"
MAX_WALL_S = 60.0
MAX_RSS_RATIO = 3.0

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from ttt_import import import_snapshot
t1 = time.perf_counter()
result = import_snapshot(sys.argv[1], sys.argv[2], model=sys.argv[3],
                         parity=sys.argv[4] == "parity", param_dtype=sys.argv[5])
t2 = time.perf_counter()
print(json.dumps({
    "library_import_s": t1 - t0, "import_snapshot_s": t2 - t1,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "parity": result.audit.parity, "clean": result.audit.clean,
    "param_count": result.audit.param_count}))
"""


def make_snapshot(directory: Path) -> tuple[Path, float]:
    from ttt_import.standins import true_size_hf_config, write_random_snapshot

    t0 = time.perf_counter()
    write_random_snapshot(directory, true_size_hf_config(KEY), dtype="bfloat16", seed=0)
    return directory, time.perf_counter() - t0


def run_import(hf: Path, out: Path, parity: bool, param_dtype: str = "auto") -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(hf), str(out), KEY,
                           "parity" if parity else "no-parity", param_dtype],
                          capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"import child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    ckpt_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"param_dtype": param_dtype, "parity_check": parity, "wall_s": round(wall, 2),
            "import_snapshot_s": round(child["import_snapshot_s"], 2),
            "library_import_s": round(child["library_import_s"], 2),
            "peak_rss_bytes": child["peak_rss_bytes"], "audit_clean": child["clean"],
            "param_count": child["param_count"], "output_bytes": ckpt_bytes,
            "parity": child["parity"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-target", action="store_true",
                        help="measure only the default --no-parity import (the target)")
    args, _ = parser.parse_known_args(argv)  # nox passes its posargs to every bench script
    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        hf, make_s = make_snapshot(work / "hf")
        snapshot_bytes = (hf / "model.safetensors").stat().st_size
        runs = {"no_parity": run_import(hf, work / "ckpt", parity=False)}
        if not args.only_target:
            runs["float32_no_parity"] = run_import(hf, work / "ckpt32", parity=False,
                                                   param_dtype="float32")
            try:
                runs["with_parity"] = run_import(hf, work / "ckpt_parity", parity=True)
            except RuntimeError as e:  # e.g. torch/transformers not installed
                runs["with_parity"] = {"error": str(e)[-500:]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in runs.values():
        if "peak_rss_bytes" in r:
            r["peak_rss_over_checkpoint"] = round(r["peak_rss_bytes"] / snapshot_bytes, 3)
    main_run = runs["no_parity"]
    result = {
        "benchmark": "import of a true-size qwen2_5_0_5b snapshot (bf16 safetensors, random "
                     "weights) to a ttt-model checkpoint, recipe fa, profile-checked",
        "model": KEY, "checkpoint_bytes": snapshot_bytes, "checkpoint_dtype": "bfloat16",
        "make_snapshot_s": round(make_s, 2),
        "targets": {"wall_s_max": MAX_WALL_S, "peak_rss_over_checkpoint_max": MAX_RSS_RATIO,
                    "measured_on": "no_parity (default param dtype, no parity check)"},
        "passed": bool(main_run["wall_s"] < MAX_WALL_S
                       and main_run["peak_rss_over_checkpoint"] < MAX_RSS_RATIO
                       and main_run["audit_clean"]),
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "jax": version("jax"), "numpy": version("numpy"),
                    "platform": platform.platform()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in runs.items():
        if "wall_s" in r:
            print(f"import {name}: {r['wall_s']:.1f} s wall ({r['import_snapshot_s']:.1f} s in "
                  f"import_snapshot), peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB = "
                  f"{r['peak_rss_over_checkpoint']:.2f}x the {snapshot_bytes / 2**30:.2f} GiB "
                  "checkpoint")
        else:
            print(f"import {name}: {r['error']}")
    print(f"targets (< {MAX_WALL_S:.0f} s, < {MAX_RSS_RATIO:.0f}x): "
          f"{'passed' if result['passed'] else 'FAILED'} -> {RESULTS}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
