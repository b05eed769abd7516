"""Tests of ttt_model.costs: exact, trip-corrected FLOPs and static memory on CPU.

Shapes avoid degenerate dots (a contracting or free dim of size 1, vector dots):
XLA's algebraic simplifier rewrites those into multiply/reduce, which are not dots.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from ttt_model.costs import (
    CompiledCosts,
    UnknownTripCountError,
    analyze_hlo,
    compiled_costs,
    hlo_dot_flops,
)

F32 = jnp.float32


def sds(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, F32)


def mm(m: int, k: int, n: int) -> int:
    """Hand count of one [m, k] x [k, n] matmul."""
    return 2 * m * k * n


# ---- 1. single matmul, batched einsum ---------------------------------------------------


def test_single_matmul_exact() -> None:
    m, k, n = 8, 24, 40
    c = compiled_costs(jnp.matmul, sds(m, k), sds(k, n))
    assert isinstance(c, CompiledCosts)
    assert c.flops == mm(m, k, n) == 15360
    assert c.dot_flops_once == c.flops
    assert c.num_while_loops == 0


def test_batched_einsum_exact() -> None:
    b, h, q, d, s = 3, 2, 8, 16, 12

    def attn_scores(x, y):
        return jnp.einsum("bhqd,bhsd->bhqs", x, y)

    c = compiled_costs(attn_scores, sds(b, h, q, d), sds(b, h, s, d))
    assert c.flops == 2 * b * h * q * s * d == 18432


def test_two_matmuls_and_static_arg() -> None:
    def f(x, w1, w2, twice):
        y = (x @ w1) @ w2
        return y @ w2.T if twice else y

    x, w1, w2 = sds(8, 16), sds(16, 32), sds(32, 24)
    once = compiled_costs(f, x, w1, w2, False, static_argnums=(3,))
    twice = compiled_costs(f, x, w1, w2, True, static_argnums=(3,))
    assert once.flops == mm(8, 16, 32) + mm(8, 32, 24)
    assert twice.flops == once.flops + mm(8, 24, 32)


def test_a_convolution_is_refused_not_counted_as_zero() -> None:
    def conv(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    with pytest.raises(ValueError, match="counts matrix products only"):
        compiled_costs(conv, sds(2, 9, 8, 4), sds(3, 3, 4, 6))


# ---- 2. loops: scan, nested scans, fori_loop --------------------------------------------

B, D = 8, 32
STEP = mm(B, D, D)  # one [B, D] x [D, D] matmul


def scan_chain(w, x, n: int):
    def body(h, _):
        return jnp.tanh(h @ w), None

    h, _ = lax.scan(body, x, None, length=n)
    return h.sum()


def test_scan_multiplies_by_trip_count() -> None:
    n = 8
    c = compiled_costs(scan_chain, sds(D, D), sds(B, D), n, static_argnums=(2,))
    assert c.dot_flops_once == STEP
    assert c.flops == n * STEP
    assert c.trip_counts == (n,)
    # XLA's own figure counts the body once (plus a few elementwise flops).
    assert STEP <= c.xla_flops < 2 * STEP
    assert c.xla_flops < c.flops / 4


def test_nested_scans_multiply() -> None:
    n1, n2 = 3, 5

    def f(w, x):
        def inner(h, _):
            return jnp.tanh(h @ w), None

        def outer(h, _):
            h, _ = lax.scan(inner, h, None, length=n2)
            return h, None

        h, _ = lax.scan(outer, x, None, length=n1)
        return h

    c = compiled_costs(f, sds(D, D), sds(B, D))
    assert c.flops == n1 * n2 * STEP
    assert c.dot_flops_once == STEP
    assert sorted(c.trip_counts) == [n1, n2]
    inner_loop = next(w for w in c.while_loops if w.trip_count == n2)
    outer_loop = next(w for w in c.while_loops if w.trip_count == n1)
    assert (outer_loop.executions, inner_loop.executions) == (1, n1)


def test_fori_loop_static_bounds() -> None:
    n = 6

    def f(w, x):
        return lax.fori_loop(0, n, lambda i, h: jnp.tanh(h @ w), x)

    c = compiled_costs(f, sds(D, D), sds(B, D))
    assert c.flops == n * STEP
    assert c.trip_counts == (n,)


def test_unknown_trip_count_is_not_guessed() -> None:
    def f(w, x, n):
        return lax.fori_loop(0, n, lambda i, h: jnp.tanh(h @ w), x)

    c = compiled_costs(f, sds(D, D), sds(B, D), jax.ShapeDtypeStruct((), jnp.int32))
    assert c.flops is None
    assert c.dot_flops_once == STEP
    assert len(c.unknown_trip_loops) == 1
    assert c.trip_counts == (None,)


def test_conditional_takes_max_branch() -> None:
    def f(x):
        return lax.cond(x.sum() > 0, lambda: x @ x, lambda: (x @ x) @ x)

    c = compiled_costs(f, sds(16, 16))
    assert c.flops == 2 * mm(16, 16, 16)


# ---- 3. cross-check against the unrolled program ----------------------------------------


def test_unrolled_scan_agrees_with_rolled() -> None:
    n = 5

    def f(w, x, unroll):
        def body(h, _):
            return jnp.tanh(h @ w), None

        h, _ = lax.scan(body, x, None, length=n, unroll=unroll)
        return h

    rolled = compiled_costs(f, sds(D, D), sds(B, D), 1, static_argnums=(2,))
    unrolled = compiled_costs(f, sds(D, D), sds(B, D), True, static_argnums=(2,))
    assert rolled.num_while_loops == 1
    assert unrolled.num_while_loops == 0
    assert unrolled.flops == rolled.flops == n * STEP
    # Without a loop, XLA's own count and ours see the same dots.
    assert unrolled.xla_flops >= unrolled.flops


# ---- 4. gradient of a scanned matmul chain ----------------------------------------------


def test_grad_of_scanned_chain() -> None:
    n = 7
    grad = jax.grad(scan_chain)  # d/dw
    c = compiled_costs(grad, sds(D, D), sds(B, D), n, static_argnums=(2,))
    # Per step: forward h @ w, backward dh @ w.T and h.T @ dh, each 2*B*D*D.
    assert c.flops == n * 3 * STEP
    assert c.dot_flops_once == 3 * STEP
    assert c.trip_counts == (n, n)  # forward scan, then the transposed one


# ---- 5. memory analysis -----------------------------------------------------------------


def outer_square(a, b, c):
    return (a @ b) @ c  # the [N, N] product a @ b is a temporary


def test_temp_bytes_scale_with_square_intermediate() -> None:
    r = 8
    temps = {}
    for n in (256, 512):
        c = compiled_costs(outer_square, sds(n, r), sds(r, n), sds(n, r))
        assert c.temp_bytes >= n * n * 4
        assert c.argument_bytes == 3 * n * r * 4
        assert c.output_bytes == n * r * 4
        assert c.peak_bytes == c.argument_bytes + c.output_bytes - c.alias_bytes + c.temp_bytes
        temps[n] = c.temp_bytes
    assert 3.5 <= temps[512] / temps[256] <= 4.5


def test_to_dict_is_json() -> None:
    c = compiled_costs(scan_chain, sds(D, D), sds(B, D), 4, static_argnums=(2,))
    d = json.loads(json.dumps(c.to_dict()))
    assert d["flops"] == 4 * STEP
    assert d["while_loops"][0]["trip_count"] == 4
    assert d["compile_seconds"] > 0
    assert d["platform"] == jax.default_backend()


# ---- hlo_dot_flops on hand-written HLO text ---------------------------------------------

HAND_HLO = """\
HloModule m, entry_computation_layout={(f32[4,6]{1,0}, f32[6,10]{1,0})->f32[4,10]{1,0}}

%body (p: (s32[], f32[4,6], f32[6,6])) -> (s32[], f32[4,6], f32[6,6]) {
  %p = (s32[], f32[4,6]{1,0}, f32[6,6]{1,0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %h = f32[4,6]{1,0} get-tuple-element(%p), index=1
  %w = f32[6,6]{1,0} get-tuple-element(%p), index=2
  %mm = f32[4,6]{1,0} custom-call(%h, %w), custom_call_target="__onednn$matmul", \
backend_config={"onednn_matmul_config":{"transpose_a":false}}
  ROOT %t = (s32[], f32[4,6]{1,0}, f32[6,6]{1,0}) tuple(%i, %mm, %w)
}

%cond (q: (s32[], f32[4,6], f32[6,6])) -> pred[] {
  %q = (s32[], f32[4,6]{1,0}, f32[6,6]{1,0}) parameter(0)
  ROOT %c = pred[] constant(true)
}

ENTRY %main (a: f32[4,6], b: f32[6,10]) -> f32[4,10] {
  %a = f32[4,6]{1,0} parameter(0)
  %b = f32[6,10]{1,0} parameter(1)
  %w0 = f32[6,6]{1,0} constant({...})
  %z = s32[] constant(0)
  %init = (s32[], f32[4,6]{1,0}, f32[6,6]{1,0}) tuple(%z, %a, %w0)
  %loop = (s32[], f32[4,6]{1,0}, f32[6,6]{1,0}) while(%init), condition=%cond, body=%body, \
backend_config={"known_trip_count":{"n":"TRIP"}}
  %h = f32[4,6]{1,0} get-tuple-element(%loop), index=1
  ROOT %out = f32[4,10]{1,0} dot(f32[4,6]{1,0} %h, f32[6,10]{1,0} %b), \
lhs_contracting_dims={1}, rhs_contracting_dims={0}, metadata={op_name="calls=%nowhere"}
}
"""  # backslash-newlines join the long lines


def test_hlo_dot_flops_hand_written() -> None:
    text = HAND_HLO.replace("TRIP", "9")
    # Custom-call oneDNN matmul in a 9-trip loop, then an inline-shaped dot.
    assert hlo_dot_flops(text) == 9 * mm(4, 6, 6) + mm(4, 6, 10)
    assert hlo_dot_flops(text, trip_counts=False) == mm(4, 6, 6) + mm(4, 6, 10)
    res = analyze_hlo(text)
    assert res.unknown_custom_calls == ()
    assert [w.trip_count for w in res.while_loops] == [9]


def test_hlo_dot_flops_raises_without_trip_count() -> None:
    text = HAND_HLO.replace(', backend_config={"known_trip_count":{"n":"TRIP"}}', "")
    assert "known_trip_count" not in text
    with pytest.raises(UnknownTripCountError, match="loop"):
        hlo_dot_flops(text)
    assert hlo_dot_flops(text, trip_counts=False) == mm(4, 6, 6) + mm(4, 6, 10)
