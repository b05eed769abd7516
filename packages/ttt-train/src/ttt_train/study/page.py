"""The Markdown of the study's page, from the study's figures (report.py draws and saves)."""

from __future__ import annotations

from typing import Any

from ttt_train.study.arms import ARMS, LABELS
from ttt_train.study.ladder import RUNGS
from ttt_train.study.report import (
    context_table,
    cost_table,
    gate_text,
    headline_text,
    ladder_table,
    retrieval_table,
    window_table,
)


def _setup(study: dict[str, Any], order: list[str]) -> str:
    plan, env = study["plan"], study["environment"]
    shape = plan["shape"]
    corpora = "\n".join(
        f"| {name} | {c['source']} | {c['train_tokens']:,} | {c['val_tokens']:,} |"
        for name, c in sorted(study["corpora"].items(), key=lambda kv: order.index(kv[0])))
    prime = max(1, shape["layers"] // 4)
    attention = {"fa": "full", "swa": f"sliding, window {plan['window']}",
                 "e2e": f"sliding, window {plan['window']}"}
    inner = {"fa": "—", "swa": "—",
             "e2e": f"prime MLPs in the last {prime} of {shape['layers']} layers, "
                    f"b = {plan['chunk']}"}
    models = "\n".join(
        f"| {LABELS[a]} | {attention[a]} | {inner[a]} | {study['intermediate'][a]} | "
        f"{study['params'][a]:,} |" for a in ARMS)
    tokens = plan["steps"] * plan["batch"] * plan["context"]
    return f"""| corpus | text | train tokens | validation tokens |
| --- | --- | --- | --- |
{corpora}

Each corpus has its own byte-level BPE tokenizer of {shape['vocab']} tokens, trained on it.

| arm | attention | inner weights | MLP width | parameters |
| --- | --- | --- | --- | --- |
{models}

All arms: hidden {shape['hidden']}, {shape['layers']} layers, {shape['heads']} query and
{shape['kv_heads']} key-value heads, QK-norm, pre and post norms, tied embeddings, fp32;
trained from scratch on the same tokens in the same order (`training.data_seed` = the seed)
for {plan['steps']} steps of {plan['batch']} × {plan['context']} tokens ({tokens:,} tokens),
AdamW lr {plan['lr']} after {plan['lr_warmup_steps']} warm-up steps, cosine decay.
TTT-E2E trains with the meta loss; its inner lr warms up from {plan['ilr_init']} to 1 over
{plan['ilr_warmup_steps']} steps, inner clip 1, SGD on the prime MLPs, and it is evaluated
with the inner loop its run ended with. Seeds: {', '.join(map(str, plan['seeds']))} (model
initialisation and data order). Machine: {env['cpu_count']} CPU cores, {env['platform']},
Python {env['python']}, JAX {env['jax']}; the study took {study['elapsed_s'] / 60:.1f} min."""


def page(study: dict[str, Any], corpora: list[str], plots: dict[str, str],
         retrieval_corpus: str) -> str:
    plan = study["plan"]
    heads = "\n".join(f"- **{c}**: {headline_text(study, c)}" for c in corpora)
    sections = []
    for c in corpora:
        sections.append(f"""### {c}

{window_table(study, c)}

![per-position NLL, {c}]({plots[f'positions_{c}']})

Loss against context, from the training context to {max(plan['eval_contexts']) //
plan['context']}× it (contiguous windows of the validation split, the same for every arm):

{context_table(study, c)}

![loss against context, {c}]({plots[f'contexts_{c}']})
![training loss, {c}]({plots[f'curves_{c}']})""")
    lad = plan["ladder"]
    rungs = "\n".join(f"- **{r}**: {study['ladder']['rungs'][r]['description']}" for r in RUNGS)
    return f"""# TTT-E2E against SWA and FA at small scale, on two CPU cores

This page is written by `uv run nox -s study` (`python -m ttt_train.study --out
docs/results`); every number and plot on it is recomputed by that command, offline. The
runs are trained afresh each time, and `--compare docs/results/study.json` checks that a
rerun reproduces every figure that does not depend on the clock.

## Headline

{heads}

## Setup

{_setup(study, corpora)}

## Loss inside and beyond the window

NLL of every target at context {plan['context']} on the validation split, by its position
p (predicted from the p tokens before it). Inside the window (p ≤ {plan['window']}) every
layer sees the whole context; beyond it, SWA sees only the last {plan['window']} tokens,
TTT-E2E has in addition what its inner loop wrote into the prime MLPs, and FA sees
everything. "Seeds below" counts the seeds in which the arm's NLL is below SWA's (each
seed pairs runs on the same data order).

{chr(10).join(sections)}

## Retrieval (RULER, log-likelihood)

RULER's needle-in-a-haystack prompts built with each model's own tokenizer to the exact
length, the needle at depths {', '.join(map(str, plan['ruler_depths']))}; scored by whether
the true answer has the highest log-likelihood among itself and 4 distractors of its kind
({plan['ruler_samples']} samples per length and depth, models of the `{retrieval_corpus}`
corpus). Accuracy, mean ± sd over seeds:

{retrieval_table(study, retrieval_corpus)}

![RULER rank accuracy]({plots['retrieval']})

## Prefill and decode cost against context

Compiled costs (XLA's cost analysis, loop bodies times their trip counts) are exact and the
same on every machine; prefill milliseconds are this CPU's, for shape only. FA's decode
cost and state grow with the context; SWA's and TTT-E2E's stay constant (TTT-E2E's decode
FLOPs include one inner step per b = {plan['chunk']} tokens, amortised).

{cost_table(study)}

![costs]({plots['costs']})

## The warm-start ladder

On the `{study['ladder']['corpus']}` corpus, seed {study['ladder']['seed']}: stage A is the
"8K" stage ({lad['steps_a']} steps at context {plan['context']}; the study's own FA run),
the bridge takes {lad['bridge_fraction']:.0%} of stage A's steps, the extension is the
"32K" stage ({lad['ext_steps']} steps of {lad['ext_batch']} × {lad['ext_context']} tokens).

{rungs}

Charged wall-clock counts what a warm start pays: stage A stands for the public FA
checkpoint, so S0-S2 are charged their later stages only. Times are steady-state training
times (median step time × steps) on this machine. Held-out NLL is at context
{lad['ext_context']} on the validation split.

{ladder_table(study)}

{gate_text(study)}

![ladder]({plots['ladder']})
"""
