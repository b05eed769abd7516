"""Measure compiled XLA programs without running them (FLOPs, memory, compile time).

Why this exists: ``compiled.cost_analysis()`` counts the body of every ``while`` loop
(each ``lax.scan`` / ``fori_loop``) once, whatever its trip count, so for a scanned model
it under-reports FLOPs by the trip count. This module walks the optimized HLO text,
counts the FLOPs of ``dot`` instructions (and matmul custom-calls) exactly, and multiplies
each loop body by the ``known_trip_count`` that XLA records in the while's
backend config. A loop without a known trip count is never guessed: its FLOPs are
reported as unknown (``None``) or raise :class:`UnknownTripCountError`.

Only matrix products are counted (elementwise ops, reductions and
transcendentals are not): that is the figure that scales with model size and the one
to compare between programs. Everything here runs on abstract inputs; nothing is
allocated on a device or executed.

Standalone on purpose: imports only JAX and the standard library.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax

__all__ = [
    "CompiledCosts",
    "HloFlops",
    "UnknownTripCountError",
    "WhileLoop",
    "analyze_hlo",
    "compiled_costs",
    "hlo_dot_flops",
]


class UnknownTripCountError(ValueError):
    """A while loop has no ``known_trip_count``, so a trip-corrected count is impossible."""


@dataclass(frozen=True)
class WhileLoop:
    """One ``while`` instruction of the optimized HLO.

    ``executions`` is how many times the loop is entered per run of the program (the
    product of the trip counts of enclosing loops; a loop inside a conditional branch
    is counted as if the branch were taken); ``None`` when an enclosing loop's trip
    count is unknown.
    """

    name: str
    computation: str
    trip_count: int | None
    executions: int | None


@dataclass(frozen=True)
class HloFlops:
    """Result of :func:`analyze_hlo`.

    ``flops`` is trip-count corrected and ``None`` when any loop lacks a known trip
    count; ``flops_once`` counts every loop body (and condition) once, like
    ``cost_analysis`` does, and is always defined.
    """

    flops: int | None
    flops_once: int
    while_loops: tuple[WhileLoop, ...]
    unknown_custom_calls: tuple[str, ...]

    @property
    def unknown_trip_loops(self) -> tuple[str, ...]:
        """Names of loops whose trip count XLA could not determine."""
        return tuple(w.name for w in self.while_loops if w.trip_count is None)


# --------------------------------------------------------------------------------------
# HLO text parsing
# --------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^(ENTRY\s+)?%?([^\s(]+)\s*\(.*->.*\{\s*$")
_INSTR_START_RE = re.compile(r"^\s*(?:ROOT\s+)?%?([^\s=]+)\s*=\s*")
_ARRAY_SHAPE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\[([^\]]*)\]")
_COMMENT_RE = re.compile(r"/\*.*?\*/")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_TRIP_RE = re.compile(r'known_trip_count\\?"?\s*:\s*\{\s*\\?"n\\?"\s*:\s*\\?"?(\d+)')
_SINGLE_CALL_ATTRS = ("calls", "to_apply", "body", "condition", "true_computation",
                      "false_computation")
_LIST_CALL_ATTRS = ("branch_computations", "called_computations")


@dataclass(frozen=True)
class _Instr:
    name: str
    shape: str  # the printed type: "f32[8,32]{1,0}" or a tuple "(s32[], f32[8]{0})"
    opcode: str
    operands: tuple[tuple[str, str | None], ...]  # (name, inline shape or None)
    attrs: str  # everything after the operand list, strings included


@dataclass
class _Computation:
    name: str
    instrs: list[_Instr]
    shapes: dict[str, str]


def _match_close(text: str, start: int) -> int:
    """Index of the bracket closing ``text[start]``; quoted strings are skipped."""
    depth = 0
    i = start
    in_str = False
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced brackets in HLO line: {text[:200]!r}")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not nested in brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_instr(line: str) -> _Instr | None:
    m = _INSTR_START_RE.match(line)
    if m is None:
        return None
    name = m.group(1).lstrip("%")
    rest = line[m.end():]
    if rest.startswith("("):  # tuple-shaped result
        end = _match_close(rest, 0)
        shape, rest = rest[: end + 1], rest[end + 1:].lstrip()
    else:
        shape, _, rest = rest.partition(" ")
        rest = rest.lstrip()
    p = rest.find("(")
    if p <= 0:
        return None
    opcode = rest[:p].strip()
    end = _match_close(rest, p)
    operand_text = _COMMENT_RE.sub("", rest[p + 1: end])
    attrs = rest[end + 1:]
    operands: list[tuple[str, str | None]] = []
    if opcode not in ("constant", "parameter", "iota"):
        for piece in _split_top(operand_text):
            tokens = piece.split()
            op_name = tokens[-1].lstrip("%")
            inline = tokens[0] if len(tokens) > 1 else None
            operands.append((op_name, inline))
    return _Instr(name, shape, opcode, tuple(operands), attrs)


def _parse_module(hlo_text: str) -> tuple[dict[str, _Computation], str]:
    comps: dict[str, _Computation] = {}
    entry: str | None = None
    cur: _Computation | None = None
    for line in hlo_text.splitlines():
        if cur is None:
            if line.startswith("HloModule"):
                continue
            m = _HEADER_RE.match(line)
            if m:
                cur = _Computation(m.group(2).lstrip("%"), [], {})
                if m.group(1):
                    entry = cur.name
            continue
        if line.startswith("}"):
            comps[cur.name] = cur
            cur = None
            continue
        ins = _parse_instr(line)
        if ins is not None:
            cur.instrs.append(ins)
            cur.shapes[ins.name] = ins.shape
    if entry is None:
        if len(comps) == 1:
            entry = next(iter(comps))
        else:
            raise ValueError("no ENTRY computation found in HLO text")
    return comps, entry


def _dims(shape: str) -> list[int]:
    """Dimensions of an array shape string; the first element of a tuple shape."""
    s = shape.strip()
    if s.startswith("("):
        s = _split_top(s[1: _match_close(s, 0)])[0]
    m = _ARRAY_SHAPE_RE.match(s)
    if m is None:
        raise ValueError(f"cannot parse HLO shape {shape!r}")
    body = m.group(2).strip()
    if not body:
        return []
    return [int(d.strip().lstrip("<=")) for d in body.split(",")]


def _int_list(attrs: str, key: str) -> list[int]:
    m = re.search(rf"\b{key}=\{{([^}}]*)\}}", attrs)
    if m is None or not m.group(1).strip():
        return []
    return [int(x) for x in m.group(1).split(",")]


def _operand_dims(comp: _Computation, ins: _Instr, i: int) -> list[int]:
    name, inline = ins.operands[i]
    shape = inline or comp.shapes.get(name)
    if shape is None:
        raise ValueError(f"shape of operand %{name} of %{ins.name} not found in %{comp.name}")
    return _dims(shape)


def _dot_flops(comp: _Computation, ins: _Instr) -> int:
    lhs = _operand_dims(comp, ins, 0)
    k = math.prod(lhs[d] for d in _int_list(ins.attrs, "lhs_contracting_dims"))
    return 2 * math.prod(_dims(ins.shape)) * k


def _custom_call_flops(comp: _Computation, ins: _Instr) -> int | None:
    """FLOPs of a matmul custom-call (oneDNN, cuBLAS, ...) from operand shapes; else None."""
    target = re.search(r'custom_call_target="([^"]*)"', ins.attrs)
    tname = target.group(1) if target else ""
    if not any(t in tname.lower() for t in ("matmul", "gemm")):
        return None
    out = _dims(ins.shape)
    lhs = _operand_dims(comp, ins, 0)
    raw = ins.attrs.replace('\\"', '"')
    cm = re.search(r'"lhs_contracting_dimensions"\s*:\s*\[([^\]]*)\]', raw)
    if cm:  # cuBLAS-style backend config carries the dot dimension numbers
        k = math.prod(lhs[int(x.strip().strip('"'))] for x in cm.group(1).split(",") if x.strip())
    else:  # oneDNN-style: [..., M, K] x [..., K, N], optionally transposed
        trans_a = re.search(r'"transpose_a"\s*:\s*true', raw) is not None
        k = lhs[-2] if trans_a else lhs[-1]
    return 2 * math.prod(out) * k


def _called(attrs: str) -> list[tuple[str, str]]:
    """(attribute, computation name) pairs of the computations an instruction calls."""
    text = _STRING_RE.sub('""', attrs)
    found: list[tuple[str, str]] = []
    for key in _SINGLE_CALL_ATTRS:
        for m in re.finditer(rf"\b{key}=%?([^\s,{{}}]+)", text):
            found.append((key, m.group(1)))
    for key in _LIST_CALL_ATTRS:
        for m in re.finditer(rf"\b{key}=\{{([^}}]*)\}}", text):
            for name in m.group(1).split(","):
                if name.strip():
                    found.append((key, name.strip().lstrip("%")))
    return found


@dataclass(frozen=True)
class _Totals:
    once: int
    full: int  # lower bound when not exact (unknown-trip loops counted once)
    exact: bool
    whiles: tuple[tuple[str, str, int | None, int | None], ...]  # name, comp, trip, rel. execs
    unknown_calls: tuple[str, ...]


def analyze_hlo(hlo_text: str) -> HloFlops:
    """Count dot FLOPs of optimized HLO text, with and without trip counts.

    Pure function of the text (as printed by ``compiled.as_text()``), so it can be
    tested on hand-written HLO. Conditionals count their most expensive branch.
    """
    comps, entry = _parse_module(hlo_text)
    memo: dict[str, _Totals] = {}

    def scale(whiles: Iterable[tuple[str, str, int | None, int | None]], n: int | None):
        return tuple((a, b, t, None if (e is None or n is None) else e * n)
                     for a, b, t, e in whiles)

    def visit(name: str, stack: tuple[str, ...]) -> _Totals:
        if name in memo:
            return memo[name]
        if name in stack:
            raise ValueError(f"recursive HLO computation %{name}")
        if name not in comps:
            raise ValueError(f"called computation %{name} not found in HLO text")
        comp = comps[name]
        once = full = 0
        exact = True
        whiles: list[tuple[str, str, int | None, int | None]] = []
        unknown: list[str] = []
        for ins in comp.instrs:
            if ins.opcode == "dot":
                f = _dot_flops(comp, ins)
                once += f
                full += f
            elif ins.opcode == "convolution":  # refused: skipping it would count it as 0
                raise ValueError(f"convolution %{ins.name}: this counter counts matrix "
                                 "products only (the model has no convolutions)")
            elif ins.opcode == "custom-call":
                f = _custom_call_flops(comp, ins)
                if f is None:
                    tm = re.search(r'custom_call_target="([^"]*)"', ins.attrs)
                    unknown.append(tm.group(1) if tm else ins.name)
                else:
                    once += f
                    full += f
            calls = _called(ins.attrs)
            if ins.opcode == "while":
                tm = _TRIP_RE.search(ins.attrs)
                trip = int(tm.group(1)) if tm else None
                whiles.append((ins.name, comp.name, trip, 1))
                if trip is None:
                    exact = False
                for key, sub in calls:
                    t = visit(sub, (*stack, name))
                    if key == "body":
                        n = trip
                    elif key == "condition":
                        n = None if trip is None else trip + 1
                    else:
                        n = 1
                    once += t.once
                    full += t.full * (1 if n is None else n)
                    exact = exact and t.exact
                    whiles.extend(scale(t.whiles, n))
                    unknown.extend(t.unknown_calls)
            elif ins.opcode == "conditional":
                branches = [visit(sub, (*stack, name)) for _, sub in calls]
                if branches:
                    once += max(t.once for t in branches)
                    full += max(t.full for t in branches)
                    exact = exact and all(t.exact for t in branches)
                    for t in branches:
                        whiles.extend(t.whiles)
                        unknown.extend(t.unknown_calls)
            else:
                for _, sub in calls:
                    t = visit(sub, (*stack, name))
                    once += t.once
                    full += t.full
                    exact = exact and t.exact
                    whiles.extend(t.whiles)
                    unknown.extend(t.unknown_calls)
        res = _Totals(once, full, exact, tuple(whiles), tuple(unknown))
        memo[name] = res
        return res

    t = visit(entry, ())
    loops = tuple(WhileLoop(n, c, trip, e) for n, c, trip, e in t.whiles)
    return HloFlops(
        flops=t.full if t.exact else None,
        flops_once=t.once,
        while_loops=loops,
        unknown_custom_calls=tuple(sorted(set(t.unknown_calls))),
    )


def hlo_dot_flops(hlo_text: str, *, trip_counts: bool = True) -> int:
    """Dot FLOPs of optimized HLO text, loop bodies times their trip count.

    With ``trip_counts=False`` every loop body counts once (XLA's own convention).
    Raises :class:`UnknownTripCountError` rather than guess a missing trip count.
    """
    res = analyze_hlo(hlo_text)
    if not trip_counts:
        return res.flops_once
    if res.flops is None:
        raise UnknownTripCountError(
            "while loop(s) without known_trip_count: "
            + ", ".join(res.unknown_trip_loops)
            + "; use trip_counts=False for the count with each body once"
        )
    return res.flops


# --------------------------------------------------------------------------------------
# Compiling and measuring
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledCosts:
    """Costs of one compiled program, measured without running it.

    ``flops``: dot FLOPs with each loop body multiplied by its trip count
    (``None`` if some loop's trip count is unknown, see ``unknown_trip_loops``).
    ``dot_flops_once``: the same count with every loop body once.
    ``xla_flops``: XLA's ``cost_analysis()['flops']`` (all ops, loop bodies once).
    ``peak_bytes``: argument + output - alias + temp, XLA's static buffer assignment.
    """

    flops: int | None
    dot_flops_once: int
    xla_flops: float
    xla_transcendentals: float
    xla_bytes_accessed: float
    argument_bytes: int
    output_bytes: int
    alias_bytes: int
    temp_bytes: int
    generated_code_bytes: int
    peak_bytes: int
    num_while_loops: int
    while_loops: tuple[WhileLoop, ...]
    unknown_trip_loops: tuple[str, ...]
    unknown_custom_calls: tuple[str, ...]
    lower_seconds: float
    compile_seconds: float
    platform: str

    @property
    def trip_counts(self) -> tuple[int | None, ...]:
        """Trip count of each while loop, in HLO order."""
        return tuple(w.trip_count for w in self.while_loops)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (loops as a list of dicts)."""
        d = dataclasses.asdict(self)
        d["while_loops"] = [dataclasses.asdict(w) for w in self.while_loops]
        d["unknown_trip_loops"] = list(self.unknown_trip_loops)
        d["unknown_custom_calls"] = list(self.unknown_custom_calls)
        d["trip_counts"] = list(self.trip_counts)
        return d


def _cost_entry(cost: Any, key: str) -> float:
    """``cost_analysis()`` is a dict in new JAX, a list of per-program dicts in old JAX."""
    if cost is None:
        return 0.0
    entries: Sequence[Mapping[str, float]] = [cost] if isinstance(cost, Mapping) else cost
    return float(sum(e.get(key, 0.0) for e in entries))


def compiled_costs(
    fn: Callable[..., Any],
    *args: Any,
    static_argnums: int | Sequence[int] = (),
    **kwargs: Any,
) -> CompiledCosts:
    """Lower and compile ``jax.jit(fn)`` on abstract inputs and measure it; nothing runs.

    ``args``/``kwargs`` may be ``jax.ShapeDtypeStruct`` (or pytrees of them) or concrete
    arrays; only shapes and dtypes matter. Static arguments (``static_argnums``) are
    passed as their Python values.
    """
    jitted = jax.jit(fn, static_argnums=static_argnums)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args, **kwargs)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()

    hlo = analyze_hlo(compiled.as_text())
    cost = compiled.cost_analysis()
    mem = compiled.memory_analysis()

    def mem_field(name: str) -> int:
        return int(getattr(mem, name, 0) or 0) if mem is not None else 0

    arg_b = mem_field("argument_size_in_bytes")
    out_b = mem_field("output_size_in_bytes")
    alias_b = mem_field("alias_size_in_bytes")
    temp_b = mem_field("temp_size_in_bytes")
    return CompiledCosts(
        flops=hlo.flops,
        dot_flops_once=hlo.flops_once,
        xla_flops=_cost_entry(cost, "flops"),
        xla_transcendentals=_cost_entry(cost, "transcendentals"),
        xla_bytes_accessed=_cost_entry(cost, "bytes accessed"),
        argument_bytes=arg_b,
        output_bytes=out_b,
        alias_bytes=alias_b,
        temp_bytes=temp_b,
        generated_code_bytes=mem_field("generated_code_size_in_bytes"),
        peak_bytes=arg_b + out_b - alias_b + temp_b,
        num_while_loops=len(hlo.while_loops),
        while_loops=hlo.while_loops,
        unknown_trip_loops=hlo.unknown_trip_loops,
        unknown_custom_calls=hlo.unknown_custom_calls,
        lower_seconds=t1 - t0,
        compile_seconds=t2 - t1,
        platform=jax.default_backend(),
    )
