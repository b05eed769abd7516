"""The study's page: `study.md` with its tables, `study.json` with every figure, and the
plots under `study/`. Every figure is a mean over seeds with its spread; the headline is
computed from the same numbers as the tables, whichever way it comes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ttt_data.atomic import atomic_file
from ttt_train.study.arms import ARMS, LABELS
from ttt_train.study.corpora import CORPORA
from ttt_train.study.ladder import RUNGS
from ttt_train.study.stats import paired, spread

COLORS = {"fa": "#1f77b4", "swa": "#d62728", "e2e": "#2ca02c"}
PLOTS = "study"


def _seeds(study: dict[str, Any], corpus: str, arm: str) -> list[dict[str, Any]]:
    return [study["runs"][corpus][arm][k] for k in sorted(study["runs"][corpus][arm], key=int)]


def _context(entry: dict[str, Any], context: int) -> dict[str, Any]:
    return next(c for c in entry["sweep"]["contexts"] if c["context"] == context)


def window_split(study: dict[str, Any], corpus: str) -> dict[str, dict[str, list[float]]]:
    """Per arm, per-seed NLL inside and beyond the window at the training context."""
    T = study["plan"]["context"]
    return {arm: {where: [_context(e, T)[f"{where}_window"]["mean_nll"]
                          for e in _seeds(study, corpus, arm)]
                  for where in ("inside", "beyond")} for arm in ARMS}


def headline(study: dict[str, Any], corpus: str) -> dict[str, Any]:
    split = window_split(study, corpus)
    beyond = {arm: split[arm]["beyond"] for arm in ARMS}
    vs_swa, wins = paired(beyond["e2e"], beyond["swa"])
    vs_fa, below_fa = paired(beyond["e2e"], beyond["fa"])
    gap = spread(beyond["swa"]).mean - spread(beyond["fa"]).mean
    return {"beyond": {arm: spread(v).to_dict() for arm, v in beyond.items()},
            "e2e_minus_swa": vs_swa.to_dict(), "seeds_e2e_below_swa": wins,
            "e2e_minus_fa": vs_fa.to_dict(), "seeds_e2e_below_fa": below_fa,
            "fa_gain_over_swa": gap,
            "share_of_fa_gain_recovered": ((spread(beyond["swa"]).mean
                                            - spread(beyond["e2e"]).mean) / gap
                                           if gap > 0 else None)}


def headline_text(study: dict[str, Any], corpus: str) -> str:
    split, n = window_split(study, corpus), len(study["plan"]["seeds"])
    b = {arm: spread(split[arm]["beyond"]) for arm in ARMS}
    h = headline(study, corpus)
    d = h["e2e_minus_swa"]
    fa_gain, _ = paired(split["swa"]["beyond"], split["fa"]["beyond"])
    if fa_gain.mean > fa_gain.std:  # FA's use of the far context stands out of the noise
        fa = f"that is {h['share_of_fa_gain_recovered']:.0%} of FA's gain over SWA"
    else:
        fa = (f"FA itself gains nothing measurable over SWA beyond the window here (SWA − FA "
              f"= {fa_gain.mean:+.3f} ± {fa_gain.std:.3f}), so TTT-E2E is "
              f"{'below' if h['e2e_minus_fa']['mean'] < 0 else 'not below'} FA too "
              f"({h['e2e_minus_fa']['mean']:+.3f} ± {h['e2e_minus_fa']['std']:.3f})")
    return (f"Beyond the {study['plan']['window']}-token window (context "
            f"{study['plan']['context']}), TTT-E2E's NLL is {b['e2e'].text()} against SWA's "
            f"{b['swa'].text()} and FA's {b['fa'].text()} (mean ± sd over {n} seeds): "
            f"{'below' if d['mean'] < 0 else 'not below'} SWA's by {abs(d['mean']):.3f} ± "
            f"{d['std']:.3f} nats, lower in {h['seeds_e2e_below_swa']} of {n} seeds; {fa}.")


# -- tables -------------------------------------------------------------------------------

def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *map(_row, rows)])


def window_table(study: dict[str, Any], corpus: str) -> str:
    split = window_split(study, corpus)
    rows = []
    for arm in ARMS:
        inside, beyond = spread(split[arm]["inside"]), spread(split[arm]["beyond"])
        d, wins = paired(split[arm]["beyond"], split["swa"]["beyond"])
        rows.append([LABELS[arm], f"{study['params'][arm]:,}", inside.text(), beyond.text(),
                     "—" if arm == "swa" else f"{d.mean:+.3f} ± {d.std:.3f} ({wins}/{d.n})"])
    return _table(["arm", "parameters", "NLL inside window", "NLL beyond window",
                   "beyond: arm − SWA (seeds below)"], rows)


def context_table(study: dict[str, Any], corpus: str) -> str:
    contexts = study["plan"]["eval_contexts"]
    rows = [[LABELS[arm], *(spread([_context(e, c)["mean_nll"] for e in _seeds(study, corpus, arm)]
                                   ).text() for c in contexts)] for arm in ARMS]
    return _table(["arm", *(f"context {c}" for c in contexts)], rows)


def retrieval_table(study: dict[str, Any], corpus: str) -> str:
    plan = study["plan"]
    rows = []
    for task in plan["ruler_tasks"]:
        for arm in ARMS:
            cells = []
            for length in plan["ruler_lengths"]:
                per_seed = [_length_accuracy(e["retrieval"]["tasks"][task]["rank"], length)
                            for e in _seeds(study, corpus, arm)]
                cells.append(spread(per_seed).text(2))
            overall = spread([e["retrieval"]["tasks"][task]["rank"]["accuracy"]
                              for e in _seeds(study, corpus, arm)]).text(2)
            rows.append([task, LABELS[arm], *cells, overall])
    distractors = _seeds(study, corpus, ARMS[0])[0]["retrieval"]["num_distractors"]
    return _table(["task", "arm", *(f"length {n}" for n in plan["ruler_lengths"]),
                   "all cells"], rows) + (f"\n\nChance is {1 / (1 + distractors):.2f} (the true "
                                          f"answer ranked first among itself and {distractors} "
                                          "distractors of the same kind).")


def _length_accuracy(rank: dict[str, Any], length: int) -> float:
    cells = [c for c in rank["cells"] if c["length"] == length]
    n = sum(c["n"] for c in cells)
    return sum(c["accuracy"] * c["n"] for c in cells) / n


def _cost_rows(study: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    """The arm's cost rows by increasing context (JSON keys are strings)."""
    return sorted(study["costs"]["models"][arm]["contexts"].values(), key=lambda c: c["context"])


def cost_table(study: dict[str, Any]) -> str:
    rows = []
    for arm in ARMS:
        for c in _cost_rows(study, arm):
            comp, state = c["compiled"], c["state_bytes"]
            pre = c["prefill"]
            measured = f"{pre['ms_per_token']:.3f}" if pre.get("source") == "measured" else "—"
            rows.append([LABELS[arm], str(c["context"]),
                         f"{comp['prefill']['flops_per_token'] / 1e6:.2f}",
                         f"{comp['decode_step']['flops_per_token'] / 1e6:.2f}",
                         f"{state['total'] / 2**10:,.0f}", measured])
    return _table(["arm", "context", "prefill MFLOP/token", "decode MFLOP/token",
                   "decode state KiB", "prefill ms/token (this CPU)"], rows)


def ladder_table(study: dict[str, Any]) -> str:
    lad = study["ladder"]
    s3 = lad["rungs"]["S3"]["heldout_nll"]
    rows = [[rung, r["description"], " + ".join(f"{s['name']} ({s['steps']})"
                                                 for s in r["stages"]),
             f"{r['tokens']:,}", f"{r['charged_train_s']:.1f}", f"{r['train_s']:.1f}",
             f"{r['heldout_nll']:.4f}", f"{r['heldout_beyond_window']:.4f}",
             f"{r['heldout_nll'] - s3:+.4f}"]
            for rung, r in ((rung, lad["rungs"][rung]) for rung in RUNGS)]
    return _table(["rung", "path", "stages (steps)", "tokens", "charged train s",
                   "total train s", f"held-out NLL @ {lad['ext_context']}", "beyond window",
                   "Δ vs S3"], rows)


def gate_text(study: dict[str, Any]) -> str:
    g = study["ladder"]["gate"]
    verdict = "PASSED" if g["passed"] else "NOT PASSED"
    return (f"Gate {verdict}: S2 saves {g['wall_clock_saving']:.0%} of S3's charged "
            f"wall-clock (needs ≥ {g['needs_saving']:.0%}) at a held-out loss delta of "
            f"{g['loss_delta']:+.4f} (needs ≤ {g['needs_delta']:+.2f}).")


# -- plots --------------------------------------------------------------------------------

def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=110)
    return path


def _band(ax, x, per_seed: list[list[float]], arm: str) -> None:
    import numpy as np

    ys = np.asarray(per_seed, dtype=float)
    mean, sd = ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1])
    ax.plot(x, mean, marker="o", ms=3, color=COLORS[arm], label=LABELS[arm])
    ax.fill_between(x, mean - sd, mean + sd, color=COLORS[arm], alpha=0.2)


def plot_positions(study: dict[str, Any], corpus: str, path: Path) -> Path:
    T, k = study["plan"]["context"], study["plan"]["window"]
    fig = Figure(figsize=(6.4, 4))
    ax = fig.add_subplot()
    for arm in ARMS:
        entries = _seeds(study, corpus, arm)
        bins = _context(entries[0], T)["bins"]
        x = [(b["lo"] * max(b["hi"] - 1, b["lo"])) ** 0.5 for b in bins]
        _band(ax, x, [[b["mean_nll"] for b in _context(e, T)["bins"]] for e in entries], arm)
    ax.axvline(k, color="grey", ls="--", lw=1)
    ax.text(k, ax.get_ylim()[1], f" window {k}", va="top", fontsize=8, color="grey")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="position in the sequence (log2 bins)", ylabel="NLL (nats/token)",
           title=f"{corpus}: NLL by position at context {T} (mean ± sd over seeds)")
    ax.legend()
    return _save(fig, path)


def plot_contexts(study: dict[str, Any], corpus: str, path: Path) -> Path:
    contexts = study["plan"]["eval_contexts"]
    fig = Figure(figsize=(6.4, 4))
    ax = fig.add_subplot()
    for arm in ARMS:
        _band(ax, contexts, [[_context(e, c)["mean_nll"] for c in contexts]
                             for e in _seeds(study, corpus, arm)], arm)
    ax.axvline(study["plan"]["context"], color="grey", ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="context (tokens; dashed: training context)", ylabel="mean NLL",
           title=f"{corpus}: loss against context (mean ± sd over seeds)")
    ax.legend()
    return _save(fig, path)


def plot_retrieval(study: dict[str, Any], corpus: str, path: Path) -> Path:
    plan = study["plan"]
    tasks = plan["ruler_tasks"]
    chance = 1 / (1 + _seeds(study, corpus, ARMS[0])[0]["retrieval"]["num_distractors"])
    fig = Figure(figsize=(4.2 * len(tasks), 3.8))
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for arm in ARMS:
            _band(ax, plan["ruler_lengths"], [[_length_accuracy(
                e["retrieval"]["tasks"][task]["rank"], n) for n in plan["ruler_lengths"]]
                for e in _seeds(study, corpus, arm)], arm)
        ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="prompt length", ylabel="rank accuracy", title=task, ylim=(0, 1.02))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_costs(study: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(11, 3.6))
    panels = [("prefill MFLOP/token", lambda c: c["compiled"]["prefill"]["flops_per_token"] / 1e6),
              ("decode MFLOP/token", lambda c: c["compiled"]["decode_step"]["flops_per_token"]
               / 1e6),
              ("decode state (KiB)", lambda c: c["state_bytes"]["total"] / 2**10)]
    for i, (label, get) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for arm in ARMS:
            rows = _cost_rows(study, arm)
            ax.plot([r["context"] for r in rows], [get(r) for r in rows], marker="o",
                    color=COLORS[arm], label=LABELS[arm])
        ax.set_xscale("log", base=2)
        ax.set(xlabel="context", title=label)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_ladder(study: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4))
    ax = fig.add_subplot()
    for rung in RUNGS:
        r = study["ladder"]["rungs"][rung]
        ax.scatter(r["charged_train_s"], r["heldout_nll"], s=40)
        ax.annotate(rung, (r["charged_train_s"], r["heldout_nll"]), textcoords="offset points",
                    xytext=(6, 6 if rung != "S1" else -12), fontsize=9)
    ax.set(xlabel="charged training wall-clock (s; stage A = the public checkpoint)",
           ylabel=f"held-out NLL @ {study['ladder']['ext_context']}",
           title="warm-start ladder: loss against charged wall-clock")
    return _save(fig, path)


def plot_curves(study: dict[str, Any], corpus: str, path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4))
    ax = fig.add_subplot()
    for arm in ARMS:
        entries = _seeds(study, corpus, arm)
        steps = [s for s, _ in entries[0]["train"]["curve"]]
        _band(ax, steps, [[loss for _, loss in e["train"]["curve"]] for e in entries], arm)
    ax.set(xlabel="step", ylabel="training loss (TTT-E2E: after its inner steps)",
           title=f"{corpus}: training loss (mean ± sd over seeds)")
    ax.legend()
    return _save(fig, path)


# -- the page -----------------------------------------------------------------------------

def write_report(study: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    corpora = [c for c in CORPORA if c in study["runs"]]  # the study's order, not the JSON's
    plots: dict[str, Path] = {}
    for corpus in corpora:
        plots[f"positions_{corpus}"] = plot_positions(study, corpus, out / PLOTS /
                                                      f"positions_{corpus}.png")
        plots[f"contexts_{corpus}"] = plot_contexts(study, corpus, out / PLOTS /
                                                    f"contexts_{corpus}.png")
        plots[f"curves_{corpus}"] = plot_curves(study, corpus, out / PLOTS / f"curves_{corpus}.png")
    retrieval_corpus = next(c for c in corpora if "retrieval" in
                            _seeds(study, c, ARMS[0])[0])
    plots["retrieval"] = plot_retrieval(study, retrieval_corpus, out / PLOTS / "retrieval.png")
    plots["costs"] = plot_costs(study, out / PLOTS / "costs.png")
    plots["ladder"] = plot_ladder(study, out / PLOTS / "ladder.png")
    study = {**study, "headline": {c: headline(study, c) for c in corpora}}
    with atomic_file(out / "study.json", overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
    text = render(study, corpora, {k: p.relative_to(out).as_posix() for k, p in plots.items()},
                  retrieval_corpus)
    with atomic_file(out / "study.md", overwrite=True) as tmp:
        Path(tmp).write_text(text)
    return out / "study.md"


def render(study: dict[str, Any], corpora: list[str], plots: dict[str, str],
           retrieval_corpus: str) -> str:
    from ttt_train.study.page import page

    return page(study, corpora, plots, retrieval_corpus)
