"""The audit of one conversion: every way the converted checkpoint differs from the snapshot.

Categories: missing tensors (the model needs them, the snapshot lacks them), unexpected
tensors (the snapshot has them, the model has no place for them), resized tensors (shape
differs from what the config implies), dtype changes, config changes, and new parameters.
Each entry carries a justification or none; any entry without one makes the audit unclean
and the import fails. Parity figures are added when the reference check runs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ttt_import.errors import AuditError


@dataclass
class Audit:
    source: dict[str, Any]
    recipe: dict[str, Any]
    model_config: dict[str, Any]
    tensors_loaded: int = 0
    param_count: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    resized: list[dict[str, Any]] = field(default_factory=list)
    dtype_changed: list[dict[str, Any]] = field(default_factory=list)
    config_changes: list[dict[str, Any]] = field(default_factory=list)
    new_parameters: list[dict[str, Any]] = field(default_factory=list)
    parity: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every unjustified difference, as one line naming the file, tensor and shapes."""
        out = []
        for m in self.missing:
            if not m.get("justification"):
                out.append(f"missing tensor {m['name']!r} (expected shape {m['expected_shape']})"
                           f" in {self.source.get('hf_dir')}")
        for u in self.unexpected:
            if not u.get("justification"):
                out.append(f"unexpected tensor {u['name']!r} {u['dtype']}{u['shape']} in "
                           f"{u['file']}: no parameter of the model maps to it")
        for r in self.resized:
            if not r.get("justification"):
                out.append(f"tensor {r['name']!r} in {r['file']} has shape {r['shape']}, "
                           f"expected {r['expected_shape']} from config.json")
        for group in (self.dtype_changed, self.config_changes, self.new_parameters):
            for e in group:
                if not e.get("justification"):
                    out.append(f"unjustified change: {e}")
        if self.parity is not None and not self.parity.get("passed", False):
            out.append(f"parity failed: {self.parity}")
        return out

    @property
    def clean(self) -> bool:
        return not self.problems()

    def raise_if_unjustified(self) -> None:
        problems = self.problems()
        if problems:
            head = "; ".join(problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise AuditError(f"import refused, nothing written: {head}{more}")

    # ----- rendering -----
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clean"] = self.clean
        d["problems"] = self.problems()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str) + "\n"

    def to_markdown(self) -> str:
        s, r, c = self.source, self.recipe, self.model_config
        lines = [
            f"# Import audit: {s.get('model_type')} from `{s.get('hf_dir')}`",
            "",
            f"- verdict: **{'clean' if self.clean else 'FAILED'}**",
            f"- profile: {s.get('profile') or 'none (auto)'}; revision: {s.get('revision')}; "
            f"config sha256: `{s.get('config_sha256')}`",
            f"- recipe: {r.get('kind')} (window {c.get('sliding_window')} for sliding layers, "
            f"suffix_len {c.get('suffix_len')}, prime {c.get('prime')}, prime init "
            f"{r.get('prime_init') if c.get('prime') else 'n/a'})",
            f"- tensors loaded: {self.tensors_loaded}; parameters of the converted model: "
            f"{self.param_count:,}",
            "",
            "## Tensor differences",
            "",
            "| kind | count | unjustified |",
            "|---|---|---|",
        ]
        for name, group in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("resized", self.resized), ("dtype changed", self.dtype_changed)):
            bad = sum(1 for e in group if not e.get("justification"))
            lines.append(f"| {name} | {len(group)} | {bad} |")
        if self.dtype_changed:
            lines += ["", "Dtype changes:", ""]
            pairs = Counter((e["from"], e["to"], e["justification"]) for e in self.dtype_changed)
            lines += [f"- {n} tensors {a} -> {b}: {j}" for (a, b, j), n in sorted(pairs.items())]
        for title, group in (("Missing", self.missing), ("Unexpected", self.unexpected),
                             ("Resized", self.resized)):
            if group:
                lines += ["", f"{title}:", ""]
                lines += [f"- `{e['name']}` {e.get('shape', e.get('expected_shape'))}: "
                          f"{e.get('justification') or '**UNJUSTIFIED**'}" for e in group]
        lines += ["", "## Config changes", ""]
        lines += [f"- `{e['field']}`: {e['before']!r} -> {e['after']!r} ({e['justification']})"
                  for e in self.config_changes] or ["- none"]
        lines += ["", "## New parameters", ""]
        lines += [f"- `{e['path']}` {list(e['shape'])} init {e['init']}: {e['justification']}"
                  for e in self.new_parameters] or ["- none"]
        lines += ["", "## Parity against transformers", ""]
        p = self.parity
        if p is None:
            lines.append("- not run (--no-parity)")
        else:
            lines += [f"- reference: {p.get('reference')}",
                      f"- tokens: {p.get('tokens_shape')} (seed {p.get('seed')})",
                      f"- max |Δlogit|: {p.get('max_abs_logit_diff'):.3g} "
                      f"(tolerance {p.get('tolerance'):.3g})",
                      f"- max |ΔNLL|: {p.get('max_abs_nll_diff'):.3g}",
                      f"- passed: {p.get('passed')}"]
            if "recipe_max_abs_logit_diff" in p:
                lines.append(f"- converted ({r.get('kind')}) vs pretrained, same tokens: max "
                             f"|Δlogit| {p['recipe_max_abs_logit_diff']:.3g} "
                             f"({p.get('recipe_note')})")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        problems = self.problems()
        if problems:
            lines += ["", "## Problems", ""] + [f"- {x}" for x in problems]
        return "\n".join(lines) + "\n"
