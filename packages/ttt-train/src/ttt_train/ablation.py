"""The ablation runner: one experiment trained under several settings, each in its own
process (so its peak memory is its own), compared by tokens/s, peak memory and loss.

    python -m ttt_train.ablation --out DIR [--variants fp32,bf16,untied] -- OVERRIDES...

writes DIR/ablation.csv and DIR/ablation.md. Tokens/s is the median over the steps after
`--ignore-first` (compilation and warm-up excluded); peak memory is the process's peak
resident set on CPU, and the device's peak bytes in use on a GPU; loss is the last step's.
The attention implementation is ttt-model's reference (the only one ttt-model has yet).
`remat` is fp32 with each block rematerialised (`model.remat_block=nothing_saveable`): the
same numbers for less activation memory and more compute.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ttt_model.atomic import write_atomic

# Each variant's overrides on top of the experiment's own settings.
VARIANTS: dict[str, dict[str, str]] = {
    "fp32": {"model.compute_dtype": "fp32"},
    "bf16": {"model.compute_dtype": "bf16"},
    "untied": {"model.compute_dtype": "fp32", "model.tie_word_embeddings": "false"},
    "remat": {"model.compute_dtype": "fp32", "model.remat_block": "nothing_saveable"},
}
COLUMNS = ("variant", "compute_dtype", "attention", "tied", "remat", "steps", "tokens_per_s",
           "peak_memory_mib", "memory_kind", "final_loss", "wall_s")


class AblationError(RuntimeError):
    """A variant that did not train, or left no step to time."""


@dataclass(frozen=True)
class AblationRow:
    variant: str
    compute_dtype: str
    attention: str
    tied: bool
    remat: str  # the model's remat_block policy (the remat variant's), or "off"
    steps: int
    tokens_per_s: float
    peak_memory_mib: float
    memory_kind: str  # host_rss | device
    final_loss: float
    wall_s: float


def measure_variant(name: str, overrides: list[str], out: Path, ignore_first: int
                    ) -> AblationRow:
    """Train one variant in a child process and read its run's metrics."""
    settings = [*overrides, *(f"{k}={v}" for k, v in VARIANTS[name].items()),
                f"training.exp_name=ablate-{name}", "training.progress=false"]
    child = subprocess.Popen([sys.executable, "-m", "ttt_train.ablation", "--one",
                              "--result", str(out / f".{name}.json"), "--", *settings])
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its rusage
    if child.returncode != 0:
        raise AblationError(f"variant {name}: training exited with {child.returncode} "
                            "(its error is above)")
    result = json.loads((out / f".{name}.json").read_text())
    rows = [json.loads(line) for line in Path(result["metrics"]).read_text().splitlines()]
    timed = [r["tokens_per_s"] for r in rows if r["step"] > ignore_first]
    if not timed:
        raise AblationError(f"variant {name}: no step after --ignore-first={ignore_first}")
    device_peak = result.get("device_peak_bytes")
    return AblationRow(
        variant=name, compute_dtype=result["compute_dtype"], attention="reference",
        tied=result["tied"], remat=result["remat_block"] or "off",
        steps=len(rows), tokens_per_s=statistics.median(timed),
        peak_memory_mib=(device_peak if device_peak else usage.ru_maxrss * 1024) / 2**20,
        memory_kind="device" if device_peak else "host_rss",
        final_loss=rows[-1]["loss"], wall_s=result["wall_s"])


def write_tables(rows: list[AblationRow], out: Path) -> tuple[Path, Path]:
    """ablation.csv and ablation.md (a Markdown table of the same rows)."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r.variant, r.compute_dtype, r.attention, "yes" if r.tied else "no",
                 r.remat, str(r.steps), f"{r.tokens_per_s:,.0f}", f"{r.peak_memory_mib:,.0f}",
                 r.memory_kind, f"{r.final_loss:.4f}", f"{r.wall_s:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return (write_atomic(out / "ablation.csv", table.getvalue()),
            write_atomic(out / "ablation.md", "\n".join(lines) + "\n"))


def _one(result: Path, overrides: list[str]) -> int:
    """The child: one stage, then what the parent needs to read its run."""
    import jax

    from ttt_train.config import compose_config
    from ttt_train.stage import run_stage
    from ttt_train.translate import translate

    composed = compose_config(overrides)
    spec = translate(composed)
    done = run_stage(composed)
    stats = jax.devices()[0].memory_stats() or {}
    write_atomic(result, json.dumps({
        "metrics": str(done.run_dir / "metrics.jsonl"), "wall_s": done.wall_clock_s,
        "compute_dtype": spec.model.compute_dtype, "tied": spec.model.tie_embeddings,
        "remat_block": spec.model.remat_block,
        "device_peak_bytes": stats.get("peak_bytes_in_use")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--ignore-first", type=int, default=2,
                        help="steps left out of tokens/s (compilation, warm-up)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.one:
        return _one(args.result, args.overrides)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or args.out is None:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}" if unknown
                     else "--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        print(f"[ablation] {name}: training", flush=True)
        try:
            rows.append(measure_variant(name, args.overrides, args.out, args.ignore_first))
        except AblationError as e:
            print(f"ablation: {e}", file=sys.stderr)
            return 2
        print(f"[ablation] {name}: {rows[-1].tokens_per_s:,.0f} tokens/s, peak "
              f"{rows[-1].peak_memory_mib:,.0f} MiB, loss {rows[-1].final_loss:.4f}",
              flush=True)
    csv_path, md_path = write_tables(rows, args.out)
    print(f"[ablation] wrote {csv_path} and {md_path}")
    print(md_path.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
