"""PNG plots of an evaluation bundle: loss against context, per-position NLL curves, a
RULER heatmap per task and latency against context, one line (or panel) per model.

matplotlib's object API on the Agg canvas (no pyplot): importing this never changes a
caller's backend, and it works headless.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _context(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=120)
    return path


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "plot"


def _log_x(ax, contexts: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(contexts), [_context(c) for c in contexts])
    ax.minorticks_off()


def _label(m: dict[str, Any]) -> str:
    return f"{m['name']} ({m.get('kind', '?').upper()})"


def _legend(fig: Figure, ax, n: int) -> None:
    """Beside the axes once there are more lines than fit over the data."""
    if n <= 6:
        ax.legend(fontsize=7)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_loss_vs_context(models: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Mean NLL per context (solid), and over the targets beyond the first window (dashed,
    same colour)."""
    fig = Figure(figsize=(8.0, 4.4))
    ax = fig.add_subplot()
    contexts: set[int] = set()
    drawn = 0
    for m in models:
        rows = [r for r in m.get("sweep", {}).get("contexts", []) if r.get("mean_nll") is not None]
        if not rows:
            continue
        xs = [r["context"] for r in rows]
        contexts.update(xs)
        line, = ax.plot(xs, [r["mean_nll"] for r in rows], marker="o", label=_label(m))
        drawn += 1
        beyond = [(r["context"], r["beyond_window"]["mean_nll"]) for r in rows
                  if (r.get("beyond_window") or {}).get("count")]
        if beyond:
            ax.plot(*zip(*beyond, strict=True), ls="--", marker=".", color=line.get_color())
    if not contexts:
        return None
    _log_x(ax, sorted(contexts))
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("mean NLL (nats/token)")
    ax.set_title("Loss against context (dashed: targets beyond the first window)", fontsize=10)
    ax.grid(alpha=0.3)
    _legend(fig, ax, drawn)
    fig.tight_layout()
    return _save(fig, path)


def plot_position_nll(models: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-position NLL (log-binned) at the longest context each model reached, with the
    attention window marked."""
    fig = Figure(figsize=(8.0, 4.4))
    ax = fig.add_subplot()
    drawn = False
    windows: set[int] = set()
    for m in models:
        rows = [r for r in m.get("sweep", {}).get("contexts", []) if r.get("bins")]
        if not rows:
            continue
        r = max(rows, key=lambda row: row["context"])
        bins = [b for b in r["bins"] if b["count"]]
        xs = [math.sqrt(b["lo"] * b["hi"]) for b in bins]
        ax.plot(xs, [b["mean_nll"] for b in bins], marker="o",
                label=f"{_label(m)} @ {_context(r['context'])}")
        drawn = True
        if m.get("sweep", {}).get("window"):
            windows.add(int(m["sweep"]["window"]))
    if not drawn:
        return None
    for w in sorted(windows):
        ax.axvline(w, color="grey", ls=":", lw=1)
        ax.text(w, ax.get_ylim()[1], f" window {_context(w)}", fontsize=7, va="top")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token position (log-binned)")
    ax.set_ylabel("mean NLL (nats/token)")
    ax.set_title("Per-position NLL")
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(ax.get_lines()) - len(windows))
    fig.tight_layout()
    return _save(fig, path)


def plot_ruler_heatmaps(models: Sequence[dict[str, Any]], out_dir: Path,
                        way: str = "rank") -> list[Path]:
    """One figure per task: a length × depth heatmap of accuracy per model (`way`:
    rank or generation), each cell annotated with its accuracy and n."""
    tasks: list[str] = []
    for m in models:
        for t in m.get("ruler", {}).get("tasks", {}):
            if t not in tasks:
                tasks.append(t)
    paths = []
    for task in tasks:
        panels = [m for m in models if way in m.get("ruler", {}).get("tasks", {}).get(task, {})]
        if not panels:
            continue
        cols = min(len(panels), 5)
        rows_n = -(-len(panels) // cols)
        fig = Figure(figsize=(3.0 * cols + 1.0, 3.0 * rows_n + 0.4), layout="constrained")
        grid_axes = fig.subplots(rows_n, cols, squeeze=False)
        axes = list(grid_axes.ravel())
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        axes = axes[: len(panels)]
        image = None
        for k, (ax, m) in enumerate(zip(axes, panels, strict=True)):
            cells = m["ruler"]["tasks"][task][way]["cells"]
            lengths = sorted({c["length"] for c in cells})
            depths = sorted({c["depth"] for c in cells}, key=lambda d: -1 if d is None else d)
            grid = [[math.nan] * len(lengths) for _ in depths]
            for c in cells:
                i, j = depths.index(c["depth"]), lengths.index(c["length"])
                grid[i][j] = c["accuracy"]
                ax.text(j, i, f"{c['accuracy']:.2f}\nn={c['n']}", ha="center", va="center",
                        fontsize=7, color="black" if c["accuracy"] > 0.6 else "white")
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto",
                              origin="lower")
            ax.set_xticks(range(len(lengths)), [_context(n) for n in lengths], fontsize=7)
            ax.set_yticks(range(len(depths)),
                          ["-" if d is None else f"{d:.0%}" for d in depths], fontsize=7)
            if k >= len(panels) - cols:
                ax.set_xlabel("context")
            if k % cols == 0:
                ax.set_ylabel("needle depth")
            ax.set_title(_label(m), fontsize=8)
        if image is not None:
            fig.colorbar(image, ax=list(axes), shrink=0.8, label="accuracy")
        fig.suptitle(f"RULER {task} ({way})", fontsize=9)
        paths.append(_save(fig, out_dir / f"ruler_{_safe(task)}_{way}.png"))
    return paths


def plot_latency(models: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Measured prefill and decode ms/token against context (medians), two panels."""
    fig = Figure(figsize=(11.0, 4.2))
    left, right = fig.subplots(1, 2)
    contexts: set[int] = set()
    for m in models:
        rows = m.get("efficiency", {}).get("contexts", [])
        for ax, key in ((left, "prefill_ms_per_token"), (right, "decode_ms_per_token")):
            pts = [(r["context"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                contexts.update(c for c, _ in pts)
                ax.plot(*zip(*pts, strict=True), marker="o", label=_label(m))
    if not contexts:
        return None
    for ax, title in ((left, "prefill"), (right, "decode after a prompt of that length")):
        _log_x(ax, sorted(contexts))
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("ms / token (median)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    _legend(fig, right, len(models))
    fig.tight_layout()
    return _save(fig, path)


def write_bundle_plots(models: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    out = [plot_loss_vs_context(models, out_dir / "loss_vs_context.png"),
           plot_position_nll(models, out_dir / "position_nll.png"),
           plot_latency(models, out_dir / "latency_vs_context.png")]
    paths = [p for p in out if p is not None]
    for way in ("rank", "generation"):
        paths += plot_ruler_heatmaps(models, out_dir, way)
    return paths
