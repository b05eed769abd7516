"""Writes docs/benchmarks.md from bench/results/*.json, so the page's tables are the figures
the benchmarks recorded and nothing typed by hand.

Every number is rounded to 3 significant figures and carries its unit; a field the JSON lacks
shows as "—". The output depends only on the JSON files (sorted; no clock), so `--check` can
tell a stale page from a fresh one. Not a benchmark: `nox -s bench` runs it once, last.

    uv run python bench/tables.py           # rewrite docs/benchmarks.md
    uv run python bench/tables.py --check   # exit 1 if docs/benchmarks.md is stale
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
MISSING = "—"

INTRO = """\
# Benchmarks

`uv run nox -s bench` runs every `bench/*.py` benchmark, each writing
`bench/results/<name>.json`, then `bench/tables.py`, which writes this page from those files
(`uv run python bench/tables.py`; `--check` fails when the page is stale). Do not edit the
page by hand.

- `bench/data.py` (`data.json`): tokenization throughput with 1 and 2 workers, Grain
  pipeline throughput at 8K and 32K, and the cost of chunk checksum verification.
- `bench/eval.py` (`eval.json`): prefill and decode of FA, SWA and TTT-E2E from 2K to 128K
  for a small model (hidden 256, 8 layers, window 1024, b 256): measured ms/token where
  affordable on the machine, compiled FLOPs and memory everywhere, the crossover context
  where TTT prefill beats FA's, and decode/prefill ratios (`--quick` for a smoke run).
- `bench/forward.py` (`forward.json`): the forward of a true-size Qwen2.5-0.5B (random
  weights) at T = 2048, float32 on CPU, side by side with Hugging Face transformers
  (alternating calls): all logits, and the next-token NLL.
- `bench/import_.py` (`import.json`): wall-clock and peak memory of importing a true-size
  Qwen2.5-0.5B snapshot (random weights), with and without the parity check.
- `bench/model.py` (`model.json`): compiled FLOPs and temp memory of the paper's 125m
  FA/SWA/E2E train steps at 8K and 32K and of one attention layer's forward + backward
  (compiled on CPU, not run), the memory targets of the E2E step, and wall-clock per step of
  the tiny config (vocab 512, hidden 64, 4 layers, seq 2048, batch 2).
- `bench/train.py` (`train.json`): tokens/s of whole `ttt train` stages (data pipeline,
  compiled step, checkpoints) of the tiny FA, SWA and E2E configs.

Figures are rounded to 3 significant figures; "—" marks a field the JSON does not have.
*measured*: wall-clock of programs run on the machine named in the section; *compiled*:
XLA's cost and memory analysis of a compiled program that was never run; n: timed samples.
"met": the JSON's own verdict where it records one, otherwise the figure checked here
against the JSON's target (marked "checked here").
"""


# --- numbers -------------------------------------------------------------------------------

def sig3(x: float) -> str:
    """`x` to 3 significant figures, plain notation (scientific below 0.001)."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    rounded = round(x, 2 - math.floor(math.log10(abs(x))))
    exponent = math.floor(math.log10(abs(rounded)))  # 999.6 rounds up to 1000
    if exponent < -3:
        return f"{x:.2e}"
    return f"{rounded:.{max(0, 2 - exponent)}f}"


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _scaled(x: float, base: float, prefixes: str) -> tuple[str, str]:
    """(3-figure mantissa, prefix) with the mantissa below `base`."""
    power = 0
    while power < len(prefixes) - 1 and abs(x) >= base ** (power + 1):
        power += 1
    mantissa = sig3(x / base**power)
    if power < len(prefixes) - 1 and abs(float(mantissa)) >= base:  # 999.9 k -> 1.00 M
        power += 1
        mantissa = sig3(x / base**power)
    return mantissa, prefixes[power].strip()


def amount(x: object, unit: str) -> str:
    """A quantity with an SI prefix from 10 000 up ("28.6 M tokens/s"), or "—"."""
    if not _is_number(x):
        return MISSING
    if abs(x) < 1e4:
        return f"{sig3(x)} {unit}".rstrip()
    mantissa, prefix = _scaled(x, 1000.0, " kMGTPE")
    return f"{mantissa} {prefix} {unit}".rstrip()


def flops(x: object, per: str = "") -> str:
    """FLOPs with an SI prefix joined to the unit ("19.3 TFLOP", "65.7 MFLOP/token")."""
    if not _is_number(x):
        return MISSING
    mantissa, prefix = _scaled(x, 1000.0, " kMGTPE")
    return f"{mantissa} {prefix}FLOP{per}"


def nbytes(x: object) -> str:
    """Bytes with a binary prefix ("10.7 GiB"), as the benchmarks print them."""
    if not _is_number(x):
        return MISSING
    mantissa, prefix = _scaled(x, 1024.0, " KMGTPE")
    return f"{mantissa} {prefix + 'i' if prefix else ''}B"


def count(x: object, unit: str = "") -> str:
    """An exact count below 10 000 ("2186"), 3 figures with a prefix above ("5.87 M")."""
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) < 10_000:
        return f"{x} {unit}".rstrip()
    return amount(x, unit)


def seconds(x: object) -> str:
    return amount(x, "s")


def millis(x: object) -> str:
    return amount(x, "ms")


def ratio(x: object) -> str:
    return f"{sig3(x)}×" if _is_number(x) else MISSING


def percent(x: object) -> str:
    """A fraction shown as a percentage ("-4.66 %")."""
    return f"{sig3(100 * x)} %" if _is_number(x) else MISSING


def flag(x: object) -> str:
    """A recorded yes/no setting."""
    return ("yes" if x else "no") if isinstance(x, bool) else MISSING


def verdict(x: object) -> str:
    """A target or check outcome, a miss in bold so it stands out."""
    return ("yes" if x else "**no**") if isinstance(x, bool) else MISSING


def checked(value: object, target: object) -> str:
    """Whether `value` meets a target the JSON gives without a verdict, marked as judged here."""
    outcome = meets(value, target)
    return MISSING if outcome is None else f"{verdict(outcome)} (checked here)"


def text(x: object) -> str:
    return MISSING if x is None or x == "" else str(x)


def context(x: object) -> str:
    """A context length in tokens, in K where it is a whole number of 1024s ("128K")."""
    if not _is_number(x):
        return MISSING
    if float(x).is_integer() and int(x) % 1024 == 0:
        return f"{int(x) // 1024}K"
    return amount(x, "tokens")


def spread(values: object, fmt: Callable[[object], str]) -> str:
    """A list of figures as its range ("516–519"), or the one value."""
    if not isinstance(values, list) or not values or not all(map(_is_number, values)):
        return MISSING
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)} – {fmt(hi)}"


# --- JSON access ---------------------------------------------------------------------------

def get(data: object, *path: str) -> object:
    """The value at `path` in nested dicts, or None where any step is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def numeric_keys(data: object) -> list[str]:
    """The keys of a dict keyed by numbers ("2048", "32768"), in numeric order."""
    if not isinstance(data, dict):
        return []
    return sorted((k for k in data if re.fullmatch(r"\d+", k)), key=int)


_COMPARISONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


def meets(value: object, target: object) -> bool | None:
    """Whether `value` satisfies a target written like "<= 2.0" (None if either is unusable)."""
    match = re.match(r"\s*(<=|>=|<|>)\s*(-?[\d.]+(?:e-?\d+)?)", target or "") \
        if isinstance(target, str) else None
    if not match or not _is_number(value):
        return None
    return _COMPARISONS[match.group(1)](value, float(match.group(2)))


# --- Markdown ------------------------------------------------------------------------------

def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


_FIGURE = re.compile(r"-?\d")


def _alignment(column: list[str]) -> str:
    """Right-aligned where every present cell is a figure, so digits line up; else left."""
    present = [c for c in column if c != MISSING]
    return "---:" if present and all(_FIGURE.match(c) for c in present) else ":---"


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table: figure columns right-aligned, text columns left-aligned."""
    rows = list(rows)
    columns = [[row[i] for row in rows] for i in range(len(headers))]
    lines = ["| " + " | ".join(map(_cell, headers)) + " |",
             "|" + "|".join(map(_alignment, columns)) + "|"]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def facts(pairs: list[tuple[str, str]]) -> str:
    """One line of "label: value" facts (the machine, the setup), missing ones shown as —."""
    return "; ".join(f"{label}: {value}" for label, value in pairs) + "."


def notes(groups: dict[str, list[str]]) -> str:
    """Footnotes grouped by their text: "- reason: where, where"."""
    return "\n".join(f"- {reason}: {', '.join(where)}." for reason, where in sorted(groups.items()))


# --- data.json -----------------------------------------------------------------------------

def render_data(data: dict) -> list[str]:
    """Tokenization, pipeline and verification figures of bench/data.py, with its targets."""
    machine, corpus = data.get("machine"), data.get("corpus")
    blocks = [
        "Measured on: " + facts([
            ("CPUs", text(get(machine, "cpus"))), ("platform", text(get(machine, "platform"))),
            ("Python", text(get(machine, "python"))),
            ("1-minute load average before / after",
             f"{text(get(machine, 'loadavg_1m_before'))} / "
             f"{text(get(machine, 'loadavg_1m_after'))}")]),
        "Versions: " + facts(sorted((k, text(v)) for k, v in (data.get("versions") or {}).items()))
        if data.get("versions") else "Versions: —.",
        "Corpus: " + facts([
            ("kind", text(get(corpus, "kind"))), ("files", count(get(corpus, "files"))),
            ("documents per file", count(get(corpus, "docs_per_file"))),
            ("words per document", count(get(corpus, "words_per_doc"))),
            ("tokenizer", text(get(corpus, "tokenizer")))]),
        "### Tokenization (measured)",
        _tokenize_table(data),
        f"Speed-up of 2 workers over 1: {ratio(data.get('tokenize_speedup_2_vs_1'))}.",
        "### Pipeline throughput (measured)",
        f"Store: {count(data.get('pipeline_store_tokens'), 'tokens')}.",
        _pipeline_table(data),
        "### Checksum verification (measured)",
        f"Checksum: {text(data.get('verification_checksum'))}. Epochs with and without "
        "verification alternate; n = pairs of epochs; relative cost = 1 − median(verified) / "
        "median(unverified) tokens/s (wall) or tokens per CPU second (CPU).",
        _verification_table(data),
        "### Targets",
        _data_targets_table(data),
    ]
    return blocks


def _tokenize_table(data: dict) -> str:
    runs = sorted((data.get("tokenize") or {}).values(), key=lambda r: r.get("workers", 0))
    return table(
        ["workers", "documents", "tokens", "text", "time", "tokens/s", "text/s"],
        [[count(r.get("workers")), count(r.get("documents")), count(r.get("tokens")),
          nbytes(r.get("raw_bytes")), seconds(r.get("seconds")),
          amount(r.get("tokens_per_s"), "tokens/s"), amount(r.get("mb_per_s"), "MB/s")]
         for r in runs])


def _pipeline_table(data: dict) -> str:
    pipeline = data.get("pipeline") or {}
    return table(
        ["seq len", "batch", "read threads", "batches", "time", "batches/s", "tokens/s",
         "first batch"],
        [[context(get(pipeline, k, "seq_len")), count(get(pipeline, k, "batch")),
          count(get(pipeline, k, "read_threads")), count(get(pipeline, k, "batches")),
          seconds(get(pipeline, k, "seconds")),
          amount(get(pipeline, k, "batches_per_s"), "batches/s"),
          amount(get(pipeline, k, "tokens_per_s"), "tokens/s"),
          seconds(get(pipeline, k, "first_batch_s"))]
         for k in numeric_keys(pipeline)])


def _verification_table(data: dict) -> str:
    verification = data.get("verification") or {}
    rows = []
    for k in numeric_keys(verification):
        r = verification[k]
        rows.append([
            context(r.get("seq_len")), count(r.get("pairs")),
            amount(r.get("median_verified"), "tokens/s"),
            amount(r.get("median_unverified"), "tokens/s"),
            percent(r.get("relative_cost")), percent(r.get("relative_cost_cpu")),
            seconds(r.get("verification_cpu_s")), percent(r.get("verification_share_of_epoch_cpu")),
            spread(r.get("verification_in_pipeline_cpu_s"), seconds),
            percent(r.get("verification_in_pipeline_share_of_epoch_cpu")),
            spread(r.get("chunks_verified_per_epoch"), count)])
    return table(
        ["seq len", "n", "verified (median)", "unverified (median)", "relative cost, wall",
         "relative cost, CPU", "verification CPU, alone", "share of epoch CPU, alone",
         "verification CPU, in pipeline", "share of epoch CPU, in pipeline",
         "chunks verified / epoch"], rows)


def _extreme(rows: dict, key: str, pick: Callable) -> object:
    values = [r.get(key) for r in rows.values() if isinstance(r, dict) and _is_number(r.get(key))]
    return pick(values) if values else None


def _data_targets_table(data: dict) -> str:
    target_rate = data.get("pipeline_target_tokens_per_s")
    target_cost = data.get("verification_target_relative_cost")
    pipeline, verification = data.get("pipeline") or {}, data.get("verification") or {}
    rows = [
        ["pipeline tokens/s, slowest seq len",
         f"> {amount(target_rate, 'tokens/s')}" if _is_number(target_rate) else MISSING,
         amount(_extreme(pipeline, "tokens_per_s", min), "tokens/s"),
         verdict(data.get("pipeline_meets_target"))],
        ["verification work timed alone, share of an unverified epoch's CPU (worst)",
         f"< {percent(target_cost)}" if _is_number(target_cost) else MISSING,
         percent(_extreme(verification, "verification_share_of_epoch_cpu", max)),
         verdict(data.get("verification_meets_target"))],
        ["verification work inside the pipeline, share of an unverified epoch's CPU (worst)",
         f"< {percent(target_cost)}" if _is_number(target_cost) else MISSING,
         percent(_extreme(verification, "verification_in_pipeline_share_of_epoch_cpu", max)),
         verdict(data.get("verification_in_pipeline_meets_target"))],
    ]
    return table(["target", "threshold", "figure", "met"], rows)


# --- eval.json -----------------------------------------------------------------------------

def render_eval(data: dict) -> list[str]:
    """Prefill and decode of bench/eval.py per model and context, the decode/prefill target,
    the prefill crossover and the batch-1 decode diagnostics."""
    timing, platform = data.get("timing") or {}, data.get("platform") or {}
    blocks = [
        f"Setup: {text(data.get('what'))}.",
        "Measured on: " + facts([
            ("machine", text(data.get("machine"))), ("CPUs", text(data.get("cpu_count"))),
            ("backend", text(platform.get("backend"))), ("device", text(platform.get("device"))),
            ("JAX", text(platform.get("jax"))), ("batch", count(data.get("batch"))),
            ("whole run", seconds(data.get("runtime_s")))]),
        "Timing: " + facts([
            ("prefill repeats", count(timing.get("repeats"))),
            ("prefill warm-up runs", count(timing.get("warmup"))),
            ("decode tokens", count(timing.get("decode_tokens"))),
            ("decode warm-up steps", count(timing.get("decode_warmup"))),
            ("timed contexts", ", ".join(map(context, timing.get("timed_contexts") or []))
             or MISSING),
            ("prefill measured up to", ", ".join(
                f"{k} {context(v)}" for k, v in sorted((timing.get("measure_up_to") or {})
                                                      .items())) or MISSING)]),
    ]
    sources = data.get("sources") or {}
    if sources:
        blocks.append("\n".join(f"- *{k}*: {v}." for k, v in sorted(sources.items())))
    blocks += [
        "### Prefill",
        _eval_prefill_table(data),
        "### Decode",
        _eval_decode_table(data),
    ]
    footnotes = _eval_notes(data)
    if footnotes:
        blocks.append(notes(footnotes))
    blocks += [
        "### Growth from the shortest to the longest context",
        _eval_growth_table(data),
        "### Decode over prefill",
        "Target: " + text(get(data, "headline", "decode_over_prefill_target", "target"))
        + "; met at every context: "
        + verdict(get(data, "headline", "decode_over_prefill_target", "met_everywhere")) + ".",
        _eval_ratio_table(data),
        "### Prefill crossover (TTT faster per token than FA from this context on)",
        _eval_crossover_table(data),
        "### Decode diagnostics (why batch-1 decode costs what it does)",
        _eval_diagnostics_table(data),
    ]
    return blocks


def _eval_cells(data: dict) -> list[tuple[str, str, dict]]:
    """(model, context key, per-context record) for every model and context, in order."""
    models = data.get("models") or {}
    return [(m, k, models[m]["contexts"][k]) for m in models
            for k in numeric_keys(get(models, m, "contexts"))]


def _eval_prefill_table(data: dict) -> str:
    rows = [[m, context(int(k)), millis(get(r, "prefill", "ms_per_token")),
             count(get(r, "prefill", "n")),
             amount(get(r, "prefill", "tokens_per_s"), "tokens/s"),
             flops(get(r, "compiled", "prefill", "flops_per_token"), "/token"),
             nbytes(get(r, "compiled", "prefill", "temp_bytes")),
             nbytes(get(r, "compiled", "prefill", "peak_bytes"))]
            for m, k, r in _eval_cells(data)]
    return table(["model", "context", "ms/token (measured, median)", "n", "tokens/s (measured)",
                  "FLOPs/token (compiled)", "temp (compiled)", "peak (compiled)"], rows)


def _eval_decode_table(data: dict) -> str:
    rows = [[m, context(int(k)), millis(get(r, "decode", "ms_per_token")),
             millis(get(r, "decode", "ms_per_token_mean")), count(get(r, "decode", "n")),
             text(get(r, "decode", "state")),
             flops(get(r, "compiled", "decode_step", "flops_per_token"), "/token"),
             nbytes(get(r, "compiled", "decode_step", "temp_bytes")),
             nbytes(get(r, "state_bytes", "total"))]
            for m, k, r in _eval_cells(data)]
    return table(["model", "context", "ms/token (measured, median)", "ms/token (mean)", "n",
                  "decoding from", "FLOPs/token (compiled)", "step temp (compiled)",
                  "state (from shapes)"], rows)


def _eval_notes(data: dict) -> dict[str, list[str]]:
    """Why figures are missing or special, gathered from the JSON's own notes."""
    groups: dict[str, list[str]] = {}
    for m, k, r in _eval_cells(data):
        where = f"{m} {context(int(k))}"
        for label, reason in (("prefill not measured", get(r, "prefill", "not_measured")),
                              ("decode not measured", get(r, "decode", "not_measured")),
                              ("decoding from a synthetic state", get(r, "decode", "state_note")),
                              ("decode FLOPs/token",
                               get(r, "compiled", "decode_step", "flops_per_token_note"))):
            if isinstance(reason, str):
                groups.setdefault(f"{label} ({reason})", []).append(where)
    return groups


def _headline_models(headline: dict) -> list[str]:
    return [m for m, v in headline.items() if isinstance(v, dict) and numeric_keys(v)]


def _eval_growth_table(data: dict) -> str:
    headline = data.get("headline") or {}
    contexts = headline.get("contexts") or []
    span = f"{context(contexts[0])} → {context(contexts[-1])}" if contexts else MISSING
    rows = [[m, span, ratio(get(headline, m, "flops_per_token_growth")),
             ratio(get(headline, m, "temp_bytes_growth")),
             ratio(get(headline, m, "ms_per_token_growth"))]
            for m in _headline_models(headline)]
    return table(["model", "contexts", "prefill FLOPs/token (compiled)",
                  "prefill temp (compiled)", "prefill ms/token (measured)"], rows)


def _eval_ratio_table(data: dict) -> str:
    ratios = get(data, "headline", "decode_over_prefill") or {}
    met = get(data, "headline", "decode_over_prefill_target", "met") or {}
    rows = [[m, context(int(k)), ratio(get(ratios, m, k, "median")),
             ratio(get(ratios, m, k, "mean")), count(get(ratios, m, k, "n_prefill")),
             count(get(ratios, m, k, "n_decode")), verdict(get(met, m, k))]
            for m in ratios for k in numeric_keys(ratios[m])]
    return table(["model", "context", "median", "mean", "n prefill", "n decode", "met"], rows)


def _samples(samples: object) -> str:
    """{context: [n fast, n slow]} as "2K 3/3, 4K 3/3"."""
    if not isinstance(samples, dict):
        return MISSING
    return ", ".join(f"{context(int(k))} " + "/".join(map(str, samples[k]))
                     for k in numeric_keys(samples)) or MISSING


def _eval_crossover_table(data: dict) -> str:
    rows = []
    for key in ("prefill_crossover", "prefill_crossover_from_flops"):
        x = data.get(key)
        if not isinstance(x, dict):
            rows.append([key, *[MISSING] * 6])
            continue
        between = x.get("between") or []
        rows.append([
            text(x.get("source")), amount(x.get("context"), "tokens"),
            " – ".join(map(context, between)) or MISSING,
            f"{text(x.get('fast'))} vs {text(x.get('slow'))}", text(x.get("quantity")),
            _samples(x.get("samples")), text(x.get("method"))])
    return table(["source", "crossover", "between", "models", "quantity",
                  "n per context (fast/slow)", "method"], rows)


def _eval_diagnostics_table(data: dict) -> str:
    diagnostics = data.get("decode_diagnostics") or {}
    rows = [[m, text(d.get("source")), context(d.get("context")),
             f"{millis(d.get('step_ms'))} (n {count(d.get('step_n'))})",
             f"{millis(d.get('read_once_ms'))} (n {count(d.get('read_once_n'))})",
             nbytes(d.get("read_once_bytes")), ratio(d.get("step_over_read_once")),
             f"{millis(d.get('batch4_ms_per_token'))} (n {count(d.get('batch4_n'))})"]
            for m, d in diagnostics.items() if isinstance(d, dict)]
    note = sorted({d["note"] for d in diagnostics.values()
                   if isinstance(d, dict) and isinstance(d.get("note"), str)})
    rendered = table(["model", "source", "context", "decode step (median)",
                      "reading its arrays once (median)", "arrays read", "step / read once",
                      "batch 4, per token (median)"], rows)
    return rendered + ("".join(f"\n\n{n}." for n in note))


# --- import.json ---------------------------------------------------------------------------

def render_import(data: dict) -> list[str]:
    """Wall-clock and peak memory of each bench/import_.py run against the import targets."""
    machine = data.get("machine")
    blocks = [
        f"Setup: {text(data.get('benchmark'))}.",
        "Measured on: " + facts([
            ("CPUs", text(get(machine, "cpus"))), ("platform", text(get(machine, "platform"))),
            ("Python", text(get(machine, "python"))), ("JAX", text(get(machine, "jax"))),
            ("NumPy", text(get(machine, "numpy")))]),
        "Checkpoint: " + facts([
            ("model", text(data.get("model"))), ("size", nbytes(data.get("checkpoint_bytes"))),
            ("dtype", text(data.get("checkpoint_dtype"))),
            ("making the snapshot took", seconds(data.get("make_snapshot_s")))]),
        "### Runs (measured, one each)",
        _import_runs_table(data),
    ]
    parity = [(name, r["parity"]) for name, r in (data.get("runs") or {}).items()
              if isinstance(r, dict) and isinstance(r.get("parity"), dict)]
    if parity:
        blocks += ["### Parity check", _import_parity_table(parity)]
    blocks += ["### Targets", _import_targets_table(data)]
    return blocks


def _import_runs_table(data: dict) -> str:
    rows = [[name, text(r.get("param_dtype")), flag(r.get("parity_check")),
             seconds(r.get("wall_s")), seconds(r.get("import_snapshot_s")),
             seconds(r.get("library_import_s")), nbytes(r.get("peak_rss_bytes")),
             ratio(r.get("peak_rss_over_checkpoint")), verdict(r.get("audit_clean")),
             count(r.get("param_count")), nbytes(r.get("output_bytes")),
             text(r.get("error"))]
            for name, r in (data.get("runs") or {}).items() if isinstance(r, dict)]
    return table(["run", "param dtype", "parity check", "wall clock", "in import_snapshot",
                  "library import", "peak RSS", "peak RSS / checkpoint", "audit clean",
                  "parameters", "output", "error"], rows)


def _import_parity_table(parity: list[tuple[str, dict]]) -> str:
    rows = [[name, text(p.get("reference")),
             "×".join(map(str, p.get("tokens_shape") or [])) or MISSING,
             sig3(p["tolerance"]) if _is_number(p.get("tolerance")) else MISSING,
             sig3(p["max_abs_logit_diff"]) if _is_number(p.get("max_abs_logit_diff")) else MISSING,
             sig3(p["max_abs_nll_diff"]) if _is_number(p.get("max_abs_nll_diff")) else MISSING,
             sig3(p["max_abs_logit"]) if _is_number(p.get("max_abs_logit")) else MISSING,
             verdict(p.get("passed"))]
            for name, p in parity]
    return table(["run", "reference", "tokens", "tolerance", "max |Δ logit|", "max |Δ NLL|",
                  "max |logit|", "passed"], rows)


def _import_targets_table(data: dict) -> str:
    """The targets, judged on the run named first in `targets.measured_on`."""
    targets = data.get("targets") or {}
    measured_on = text(targets.get("measured_on"))
    run_name = measured_on.split(" ")[0]
    run = get(data, "runs", run_name) or {}
    wall_max, rss_max = targets.get("wall_s_max"), targets.get("peak_rss_over_checkpoint_max")
    rows = [
        ["wall clock", f"< {seconds(wall_max)}" if _is_number(wall_max) else MISSING,
         seconds(run.get("wall_s")),
         checked(run.get("wall_s"), f"< {wall_max}")],
        ["peak RSS / checkpoint", f"< {ratio(rss_max)}" if _is_number(rss_max) else MISSING,
         ratio(run.get("peak_rss_over_checkpoint")),
         checked(run.get("peak_rss_over_checkpoint"), f"< {rss_max}")],
        ["all of the above and audit clean", MISSING, verdict(run.get("audit_clean")),
         verdict(data.get("passed"))],
    ]
    return f"Measured on run: {measured_on}.\n\n" + table(
        ["target", "threshold", "figure", "met"], rows)


# --- model.json ----------------------------------------------------------------------------

def render_model(data: dict) -> list[str]:
    """Compiled cost of the paper's 125m train steps, their ratios against the targets, the
    125m E2E prefill memory and the tiny config's wall-clock, from bench/model.py."""
    blocks = [
        f"Setup: {text(data.get('what'))}.",
        "Compiled and run on: " + facts([
            ("machine", text(data.get("machine"))), ("CPUs", text(data.get("cpu_count"))),
            ("backend", text(data.get("backend"))), ("JAX", text(data.get("jax")))]),
        "### Paper 125m train step (compiled, not run)",
        _model_steps_table(data),
        "### Ratios and targets (compiled)",
        _model_ratios_table(data),
        "### Memory targets of the E2E step (compiled)",
        _model_memory_table(data),
        "### One attention layer, forward + backward (compiled, not run)",
        _model_attention_table(data),
        "### Paper 125m E2E prefill (compiled, not run)",
        _model_prefill_table(data),
        "### Tiny config train step (measured)",
        _model_tiny_table(data),
    ]
    return blocks


def _model_steps_table(data: dict) -> str:
    rows = [[name, text(r.get("train_mode")), flops(r.get("flops")),
             flops(r.get("xla_flops_loop_bodies_once")), nbytes(r.get("temp_bytes")),
             nbytes(r.get("peak_bytes")), count(r.get("while_loops")),
             seconds(r.get("compile_seconds"))]
            for name, r in (data.get("paper_125m") or {}).items() if isinstance(r, dict)]
    return table(["variant@seq len", "train mode", "FLOPs (loops × trip counts)",
                  "XLA FLOPs (loop bodies once)", "temp", "peak", "while loops", "compile time"],
                 rows)


def _model_ratios_table(data: dict) -> str:
    targets = data.get("targets") or {}
    ratios = data.get("ratios") or {}
    names = list(ratios) + [t for t in targets if t not in ratios]
    rows = []
    for name in names:
        target = targets.get(name)
        rows.append([name, ratio(ratios.get(name)), text(target),
                     checked(ratios.get(name), target)])
    return table(["ratio", "value", "target", "met"], rows)


def _model_memory_table(data: dict) -> str:
    targets = data.get("memory_targets")
    if not isinstance(targets, dict):
        return "— (model.json has no `memory_targets`)."
    rows = [[name, ratio(t.get("value")), text(t.get("target")), verdict(t.get("met"))]
            for name, t in targets.items() if isinstance(t, dict)]
    return table(["ratio", "value", "target", "met"], rows)


def _model_attention_table(data: dict) -> str:
    att = data.get("attention_125m")
    if not isinstance(att, dict):
        return "— (model.json has no `attention_125m`)."
    rows = [[name, count(r.get("block")), flops(r.get("flops")),
             flops(r.get("every_block_flops")), ratio(r.get("flops_over_every_block")),
             nbytes(r.get("temp_bytes")),
             nbytes(r.get("every_block_temp_bytes"))]
            for name, r in att.items() if isinstance(r, dict)]
    return ("Paper 125m heads (12 × 64), batch 1, float32. *Skipping*: the reference path "
            "(only key blocks a query can see); *every block*: each query block over all keys "
            "up to the sequence's end (the reference before block skipping).\n\n"
            + table(["kind@seq len", "block", "FLOPs (skipping)", "FLOPs (every block)",
                     "skipping / every block", "temp (skipping)",
                     "temp (every block)"], rows))


def _model_prefill_table(data: dict) -> str:
    prefill = data.get("prefill_125m_e2e")
    if not isinstance(prefill, dict):
        return "— (model.json has no `prefill_125m_e2e`)."
    rows = [[context(int(k)), flops(get(prefill, k, "flops")),
             nbytes(get(prefill, k, "temp_bytes")), nbytes(get(prefill, k, "argument_bytes")),
             nbytes(get(prefill, k, "output_bytes"))]
            for k in numeric_keys(prefill)]
    return table(["context", "FLOPs", "temp", "arguments", "output"], rows)


def _model_tiny_table(data: dict) -> str:
    rows = [[name, seconds(r.get("seconds_per_step_median")),
             seconds(r.get("seconds_per_step_min")), seconds(r.get("first_call_seconds")),
             amount(r.get("tokens_per_second"), "tokens/s"), sig3(r["final_loss"])
             if _is_number(r.get("final_loss")) else MISSING]
            for name, r in (data.get("tiny_wall_clock") or {}).items() if isinstance(r, dict)]
    return table(["variant", "step (median)", "step (min)", "first call (compiles)",
                  "tokens/s (median step)", "final loss"], rows)


# --- forward.json --------------------------------------------------------------------------

def render_forward(data: dict) -> list[str]:
    """bench/forward.py: ttt-model's forward side by side with transformers."""
    machine = data.get("machine")
    rows = [[job, amount(get(r, "tokens_per_s", "transformers"), "tokens/s"),
             amount(get(r, "tokens_per_s", "ttt_model"), "tokens/s"),
             ratio(r.get("ratio_ttt_over_transformers")),
             sig3(r["max_abs_diff"]) if _is_number(r.get("max_abs_diff")) else MISSING,
             spread(get(r, "all_seconds", "transformers"), seconds),
             spread(get(r, "all_seconds", "ttt_model"), seconds)]
            for job, r in (data.get("jobs") or {}).items() if isinstance(r, dict)]
    target = data.get("target") or {}
    return [
        f"Setup: {text(data.get('benchmark'))}.",
        f"Reference: {text(data.get('reference'))}.",
        "Measured on: " + facts([
            ("CPUs", text(get(machine, "cpus"))), ("platform", text(get(machine, "platform"))),
            ("Python", text(get(machine, "python"))), ("JAX", text(get(machine, "jax")))]),
        "### Side by side (measured, median of alternating calls)",
        table(["job", "transformers", "ttt-model", "ttt-model / transformers",
               "max |Δ output|", "transformers calls", "ttt-model calls"], rows),
        f"Target: ttt-model / transformers ≥ {text(target.get('ratio_min'))} on "
        f"`{text(target.get('job'))}`: {verdict(target.get('met'))}.",
    ]


# --- train.json ----------------------------------------------------------------------------

def render_train(data: dict) -> list[str]:
    """Tokens/s of the tiny `ttt train` stages of bench/train.py, next to the official code."""
    rows = [[name, count(r.get("steps")), seconds(r.get("seconds_per_step_median")),
             seconds(r.get("seconds_per_step_min")),
             seconds(r.get("first_step_seconds_incl_compile")),
             amount(r.get("tokens_per_second"), "tokens/s"), seconds(r.get("stage_wall_clock_s")),
             sig3(r["final_train_loss"]) if _is_number(r.get("final_train_loss")) else MISSING,
             seconds(r.get("official_seconds_per_step")), ratio(r.get("speedup_vs_official"))]
            for name, r in (data.get("variants") or {}).items() if isinstance(r, dict)]
    return [
        f"Setup: {text(data.get('what'))}.",
        "Measured on: " + facts([
            ("machine", text(data.get("machine"))), ("CPUs", text(data.get("cpu_count"))),
            ("backend", text(data.get("backend"))), ("device", text(data.get("device"))),
            ("devices", count(data.get("device_count"))), ("JAX", text(data.get("jax"))),
            ("GPU", text(data.get("gpu")))]),
        "### Stages (measured)",
        table(["variant", "steps", "step (median)", "step (min)", "first step (compiles)",
               "tokens/s (median step)", "stage wall clock", "final train loss",
               "official code, step", "speed-up vs official"], rows),
    ]


# --- any other file ------------------------------------------------------------------------

def render_other(data: dict) -> list[str]:
    """A results file this script does not know: its top-level scalars, as recorded."""
    scalars = [[k, sig3(v) if _is_number(v) else text(v)] for k, v in sorted(data.items())
               if not isinstance(v, dict | list)]
    nested = sorted(k for k, v in data.items() if isinstance(v, dict | list))
    blocks = [table(["field", "value"], scalars)] if scalars else []
    if nested:
        blocks.append("Not tabulated here: " + ", ".join(f"`{k}`" for k in nested) + ".")
    return blocks or ["—"]


# --- the page ------------------------------------------------------------------------------

SECTIONS: dict[str, tuple[str, Callable[[dict], list[str]]]] = {
    "data": ("Data: tokenization, pipeline, checksum verification", render_data),
    "eval": ("Evaluation: prefill and decode against context", render_eval),
    "forward": ("Forward against transformers (CPU)", render_forward),
    "import": ("Import of a Qwen2.5-0.5B snapshot", render_import),
    "model": ("Model: paper 125m train-step cost, tiny wall-clock", render_model),
    "train": ("Training: `ttt train` stages", render_train),
}


def render_section(path: Path) -> str:
    """One `## ...` section for one results file."""
    title, render = SECTIONS.get(path.stem, (path.stem, render_other))
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        return f"## {title}\n\nFrom `bench/results/{path.name}`: not a JSON object."
    blocks = [f"## {title}", f"From `bench/results/{path.name}`.", *render(data)]
    return "\n\n".join(blocks)


def render_page(results_dir: Path = RESULTS_DIR) -> str:
    """The whole page: the intro, then a section per results file in name order."""
    files = sorted(results_dir.glob("*.json"))
    sections = [render_section(p) for p in files] or ["No results yet in `bench/results/`."]
    return "\n\n".join([INTRO.rstrip(), *sections]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the page differs from what the JSON files generate")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--page", type=Path, default=PAGE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    page = render_page(args.results)
    if args.check:
        current = args.page.read_text() if args.page.exists() else None
        if current != page:
            print(f"{args.page} is stale: run `uv run python bench/tables.py`", file=sys.stderr)
            return 1
        return 0
    args.page.write_text(page)
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
