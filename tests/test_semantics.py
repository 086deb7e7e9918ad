"""Regression tests for the numeric semantics of docs/semantics.md (issue 7), both backends.

One test (or parametrised case) per defect: the issue's examples and the further cases of
each class found while fixing them.  The expected values are NumPy's for the graph as
written, computed here with NumPy, never SymPy.  Class 6's keyword calls and
``inputs=`` are in tests/test_call_keywords.py, class 7's look-alike names in
tests/test_ops.py (``test_nfkc_lookalike_names_stay_apart``) and
tests/test_numba_backend.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import symgrad as sg

X = sg.symbols("x")


def run(f, backend, **inputs):
    return sg.compile(f, backend=backend)(**inputs)


def same(got, want):
    """Equal as NumPy compares, NaN equal to NaN, and the same dtype for arrays."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(got, want)
    if want.ndim:
        assert got.dtype == want.dtype, (got.dtype, want.dtype)


# --- 1. domain-unsafe and exact-real algebra ------------------------------------------

with np.errstate(all="ignore"):
    DOMAIN = {
        "exp_log_negative": (lambda x: sg.exp(sg.log(x)), -1.0, np.exp(np.log(-1.0))),
        "x_over_x_zero": (lambda x: x / x, 0.0, np.nan),
        "x_over_x_inf": (lambda x: x / x, np.inf, np.nan),
        "x_over_x_subnormal": (lambda x: x / x, 5e-324, 1.0),  # not x * (1/x) = inf
        "sqrt_squared_negative": (lambda x: sg.sqrt(x) ** 2, -4.0, np.nan),
        "half_power_squared": (lambda x: (x**0.5) ** 2, -4.0, np.nan),
        "exp_times_exp_minus": (lambda x: sg.exp(x) * sg.exp(-x), 800.0, np.inf * 0.0),
        "log_exp_overflow": (lambda x: sg.log(sg.exp(x)), 1000.0, np.inf),
        "xy_over_y_zero": (lambda x: (x * 0.0 + 3.0) * x / x, 0.0, np.nan),
        "reciprocal_of_reciprocal": (lambda x: 1 / (1 / x), 0.0, 0.0),
        "power_minus_one_times_x": (lambda x: x**-1 * x, 0.0, np.nan),
        "power_of_negative_base": (lambda x: x**2.5, -1.0, np.nan),
    }


@pytest.mark.parametrize("case", sorted(DOMAIN))
def test_no_domain_shortcuts(case, backend):
    f, x, want = DOMAIN[case]
    same(run(f(X), backend, x=x), want)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_half_power_is_pow_whatever_form_the_exponent_has(dtype, backend):
    # pow(-inf, 0.5) is inf and pow(-0.0, 0.5) is +0.0; np.power gives sqrt's NaN and -0.0
    # when the exponent is one number and pow's values when it is an array: one meaning
    v = sg.tensor("v", (4,), dtype)
    e, es = sg.tensor("e", (), dtype), sg.tensor("es", (4,), dtype)
    x = np.array([-np.inf, -0.0, -1.0, 4.0], dtype)
    half = np.array(0.5, dtype)
    want = np.array([np.inf, 0.0, np.nan, 2.0], dtype)
    for f, inputs in [
        (v**0.5, dict(v=x)),
        (v**e, dict(v=x, e=half)),
        (v**es, dict(v=x, es=np.full(4, half))),
        (v[2:] + sg.power(-np.inf, 0.5), dict(v=x)),
    ]:
        got = run(f, backend, **inputs)
        if got.shape == (2,):  # the constant folded, a float64 as NumPy's power of floats
            same(got, np.array([np.inf, np.inf]))
        else:
            same(got, want)
            assert not np.signbit(got[1]), got


def test_compile_and_value_and_grad_agree_on_exp_log(backend):
    f = sg.exp(sg.log(X))
    value, _ = sg.value_and_grad(f, X, backend=backend)(x=-1.0)
    assert np.isnan(value) and np.isnan(run(f, backend, x=-1.0))


@pytest.mark.parametrize(
    "name, at, want",
    [
        ("equal", np.nan, False),
        ("greater_equal", np.nan, False),
        ("less_equal", np.nan, False),
        ("not_equal", np.nan, True),
        ("equal", 1.0, True),
    ],
)
def test_reflexive_comparisons_with_nan(name, at, want, backend):
    cond = getattr(sg, name)(X, X)
    assert run(sg.where(cond, 1.0, 0.0), backend, x=at) == float(want)


# --- 2. constants folded in the node's arithmetic -------------------------------------


def test_constants_fold_in_ieee_arithmetic(backend):
    # the example: SymPy's exact product 1e-400 underflowed to 0
    assert run((X * 1e-200) * 1e-200, backend, x=1e200) == 1e-200
    # the overflowing case crashed with a NameError (inf printed as a name)
    assert run((X * 1e200) * 1e200, backend, x=1e200) == np.inf
    assert run((X + 1e16) - 1e16, backend, x=1.0) == (1.0 + 1e16) - 1e16


def test_constant_only_formulas_fold_like_numpy(backend):
    with np.errstate(all="ignore"):
        assert run(X + sg.multiply(1e200, 1e200), backend, x=0.0) == np.inf
        assert run(X + sg.multiply(1e-200, 1e-200), backend, x=0.0) == 0.0
        assert run(X + sg.log(sg.multiply(0.0, 1.0)), backend, x=0.0) == -np.inf
        assert run(X * sg.divide(1.0, 0.0), backend, x=-2.0) == -np.inf


def test_subnormal_intermediates_as_numpy(backend):
    x = np.array([1e-10, 3.0, -7e-5])
    v = sg.tensor("v", (3,))
    same(run((v * 1e-300) * 1e300, backend, v=x), (x * 1e-300) * 1e300)


def test_float32_constants_round_in_float32(backend):
    v = sg.tensor("v", (3,), "float32")
    x = np.array([1.0, 3.0, 1e-3], dtype=np.float32)
    with np.errstate(all="ignore"):
        same(run((v * 0.1) * 3.0, backend, v=x), (x * 0.1) * 3.0)
        same(run(v + 1e200, backend, v=x), x + np.float32(np.inf))  # 1e200 is inf in float32


# --- 3. NaN propagates ----------------------------------------------------------------

NAN_CASES = {
    "relu": (sg.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (sg.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "elu": (sg.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "softplus": (sg.softplus, lambda x: np.logaddexp(x, 0)),
    "abs": (sg.abs, np.abs),
    "log_sigmoid": (sg.log_sigmoid, lambda x: -np.logaddexp(-x, 0)),
    "clip": (lambda x: sg.clip(x, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0)),
    "maximum_left": (lambda x: sg.maximum(x, 1.0), lambda x: np.maximum(x, 1.0)),
    "maximum_right": (lambda x: sg.maximum(1.0, x), lambda x: np.maximum(1.0, x)),
    "minimum_left": (lambda x: sg.minimum(x, 1.0), lambda x: np.minimum(x, 1.0)),
    "minimum_right": (lambda x: sg.minimum(1.0, x), lambda x: np.minimum(1.0, x)),
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
def test_nan_propagates(case, backend):
    f, numpy_f = NAN_CASES[case]
    v = sg.tensor("v", (4,))
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    with np.errstate(invalid="ignore"):
        want = numpy_f(x)
    same(run(f(v), backend, v=x), want)


def test_nan_propagates_through_maximum_of_two_tensors(backend):
    a, b = sg.tensor("a", (3,)), sg.tensor("b", (3,))
    x, y = np.array([np.nan, 1.0, np.nan]), np.array([1.0, np.nan, np.nan])
    same(run(sg.maximum(a, b), backend, a=x, b=y), np.maximum(x, y))
    same(run(sg.minimum(a, b), backend, a=x, b=y), np.minimum(x, y))


def test_nan_through_fused_piecewise_conditions(backend):
    # fusing a piecewise value into a comparison made SymPy fold it into ITE conditions
    # and negate comparisons (not a <= b as a > b), which is false for NaN
    v, w = sg.tensor("v", (4,)), sg.tensor("w", (4,))
    x, y = np.array([np.nan, -1.0, 0.0, 2.0]), np.array([1.0, np.nan, 0.0, -3.0])
    f = sg.minimum(sg.maximum(sg.maximum(v, w), 0.5), sg.where(sg.greater_equal(v, w), w, v))
    g = sg.where(sg.greater(sg.relu(v), w), sg.maximum(v, w), sg.minimum(w, v))
    with np.errstate(invalid="ignore"):
        want_f = np.minimum(np.maximum(np.maximum(x, y), 0.5), np.where(x >= y, y, x))
        want_g = np.where(np.maximum(x, 0) > y, np.maximum(x, y), np.minimum(y, x))
    same(run(f, backend, v=x, w=y), want_f)
    same(run(g, backend, v=x, w=y), want_g)


def test_nan_tests_in_nested_conditions(backend):
    # IsNaN inside SymPy's logic (to_nnf rejected an unknown boolean function: found by the
    # differential tester)
    v = sg.tensor("v", (3,))
    x = np.array([np.nan, -1.0, 2.0])
    inner = sg.where(sg.equal(v, v), sg.minimum(v, 1.0), 5.0)
    f = sg.where(sg.not_equal(v, v), sg.maximum(v, 0.0), inner)
    with np.errstate(invalid="ignore"):
        want = np.where(x != x, np.maximum(x, 0.0), np.where(x == x, np.minimum(x, 1.0), 5.0))
    same(run(f, backend, v=x), want)


def test_reductions_propagate_nan_and_inf(backend):
    v = sg.tensor("v", (3,))
    x = np.array([1.0, np.nan, 2.0])
    assert np.isnan(run(sg.sum(v), backend, v=x)) and np.isnan(run(sg.max(v), backend, v=x))
    # logsumexp: a fully masked row is -inf, a row with +inf nan (the documented max shift)
    assert np.isnan(run(sg.logsumexp(v), backend, v=np.array([np.inf, 1.0, 0.0])))
    assert run(sg.logsumexp(v), backend, v=np.full(3, -np.inf)) == -np.inf


def test_kink_conventions_hold(backend):
    # the branches were reordered so NaN takes the propagating one: the derivative at the
    # kink is still owned by the documented branch (relu'(0) = 0, leaky_relu'(0) = alpha)
    v = sg.tensor("v", (3,))
    x = np.array([-1.0, 0.0, 2.0])
    _, g = sg.value_and_grad(sg.sum(sg.relu(v)), v, backend=backend)(v=x)
    same(g, np.array([0.0, 0.0, 1.0]))
    _, g = sg.value_and_grad(sg.sum(sg.leaky_relu(v, 0.1)), v, backend=backend)(v=x)
    same(g, np.array([0.1, 0.1, 1.0]))


# --- 4. dtypes as declared ------------------------------------------------------------


def test_float32_sum_is_accurate(backend):
    v = sg.tensor("v", ("N",), "float32")
    assert run(sg.sum(v), backend, v=np.ones(20_000_000, np.float32)) == 2e7
    m = sg.tensor("m", ("N", 2), "float32")  # along a non-contiguous axis too
    got = run(sg.sum(m, axis=0), backend, m=np.ones((10_000_000, 2), np.float32))
    same(got, np.full(2, 1e7, np.float32))


def test_comparisons_in_the_operands_dtype(backend):
    v = sg.tensor("v", (1,), "float32")
    x = np.array([0.1], dtype=np.float32)  # 0.1 in float32 is above 0.1 in float64
    same(run(sg.where(v > 0.1, 1.0, 0.0), backend, v=x), np.where(x > 0.1, 1.0, 0.0))


def test_int64_arithmetic_stays_int64(backend):
    n = sg.tensor("n", (3,), "int64")
    x = np.array([np.iinfo(np.int64).max, -3, 7])
    with np.errstate(all="ignore"):
        same(run(n + 1, backend, n=x), x + 1)  # wraps, as NumPy
        same(run(n * 3 - n, backend, n=x), x * 3 - x)
        same(run(sg.maximum(n, 0), backend, n=x), np.maximum(x, 0))
        same(run(n**2, backend, n=x), x**2)
    same(run(n / 2, backend, n=x), x / 2)  # true division: float64


def test_float32_formulas_with_fractions_stay_float32():
    # gelu's x/2 and gelu_tanh's 0.044715 are SymPy Rationals: the interpreter printed them
    # as numpy.divide(p, q), a float64 scalar, strong under NEP 50, so a float32 formula
    # computed in float64 (the Numba kernel in float32)
    import sympy as sp

    from symgrad.ops import numeric
    from symgrad.ops.elementwise import sym

    x = np.array([0.3, -1.7, 2.5], dtype=np.float32)
    got = numeric.function(sym(0) * sp.Rational(1, 3), 1)(x)
    assert got.dtype == np.float32
    same(got, x * np.float32(1 / 3))


def test_nep50_promotion():
    x32 = sg.tensor("x32", (), "float32")
    n = sg.tensor("n", (), "int64")
    assert (x32 * 0.5).dtype == "float32"  # a Python float is weak
    assert (x32 * 2).dtype == "float32"
    assert (x32 * np.float64(2.0)).dtype == "float64"  # a NumPy scalar is not
    assert (x32 + n).dtype == "float64"
    assert (n + 1).dtype == "int64" and (n + 1.5).dtype == "float64"
    assert (n / n).dtype == "float64" and sg.exp(n).dtype == "float64"
    assert (n > 1).dtype == "bool"


def test_a_comparison_with_a_numpy_float64_compares_in_float64(backend):
    # NEP 50: a NumPy float64 scalar is strong, so v32 > np.float64(0.1) compares in float64
    # (True at 0.1f, which is above 0.1) while v32 > 0.1 compares in float32; the constant
    # was folded into the formula as a literal of a float32 comparison.  (NumPy 2 computes
    # the wants below as written; NumPy 1's value-based casting compared in float32.)
    v = sg.tensor("v", (3,), "float32")
    c = np.float64(0.1)
    values = np.array([0.1, 0.2, 0.0], "float32")
    wide, above = values.astype(np.float64), values.astype(np.float64) > c
    outputs = [v > c, sg.less_equal(v, c), sg.equal(v, c), v > 0.1,
               sg.sum(sg.where(v > c, v * v, 0.0))]
    want = [above, wide <= c, wide == c, values > np.float32(0.1),
            np.sum(np.where(above, values * values, np.float32(0)))]
    assert want[0].tolist() == [True, True, False] and want[3].tolist() == [False, True, False]
    got = sg.compile(outputs, backend=backend)(v=values)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    _, (grad,) = sg.value_and_grad(outputs[-1], [v], backend=backend)(v=values)
    np.testing.assert_array_equal(grad, np.where(above, 2 * values, np.float32(0)))


# --- 5. every valid graph compiles ----------------------------------------------------


def test_second_derivative_of_abs_is_dirac_zero(backend):
    v = sg.tensor("v", (3,))
    d2 = sg.grad(sg.sum(sg.grad(sg.sum(sg.abs(v) * v), v)), v)
    x = np.array([1.0, -2.0, 0.0])
    same(run(d2, backend, v=x), 2 * np.sign(x))  # 2 sign(x) + 2 x DiracDelta(x)


def test_huge_power_gradient_is_fast(backend):
    v = sg.tensor("v", (3,))
    started = time.perf_counter()
    g = sg.grad(sg.sum(v**1e6), v)
    got = run(g, backend, v=np.array([1.0, 0.5, -1.0]))
    assert time.perf_counter() - started < 60
    same(got, 1e6 * np.array([1.0, 0.5, -1.0]) ** 999999)


def test_where_with_scalar_branch_under_piecewise_ops(backend):
    # NumPy's printer wrote And/Or as logical_and.reduce((a, b)): "inhomogeneous shape"
    v = sg.tensor("v", (3,))
    f = sg.relu(sg.maximum(sg.where(v > 0, 1.0, v), v - 1))
    x = np.array([-1.0, 0.5, 3.0])
    same(run(f, backend, v=x), np.maximum(np.maximum(np.where(x > 0, 1.0, x), x - 1), 0))
    g = sg.where(sg.greater_equal(v, v), sg.minimum(v, 2.0), 0.0)
    same(run(g, backend, v=x), np.where(x >= x, np.minimum(x, 2.0), 0.0))


def test_long_chains_fuse_in_bounded_pieces_and_keep_the_order(backend):
    # a 300-op chain: fusion splits it above MAX_OPS operations (SymPy work stays bounded)
    # and keeps every op's rounding (no regrouping across ops), so the result is exact
    v = sg.tensor("v", (3,))
    f, want = v, np.array([0.1, -2.0, 7.0])
    x = want.copy()
    for _ in range(150):
        f = f * 1.0001 + 0.5
        want = want * 1.0001 + 0.5
    same(run(f, backend, v=x), want)


def test_repeated_input_merged_away_is_dropped(backend):
    # where(c, v, v) is v: the condition's node became unused after merging (found by the
    # differential tester); the input v stays an input
    v = sg.tensor("v", (3,))
    x = np.array([np.nan, -1.0, 2.0])
    f = sg.compile(sg.where(v > 0, v, v) * 2.0, backend=backend)
    assert f.input_names == ["v"]
    same(f(v=x), x * 2.0)


# --- 6. inputs as written -------------------------------------------------------------


def test_one_hot_sum_keeps_and_checks_its_labels(backend):
    r = sg.tensor("r", ("N", 1))
    y = sg.tensor("y", ("N",), dtype="int64")
    f = sg.compile(sg.sum(sg.one_hot(y, 3) * r, axis=-1), backend=backend)
    assert f.input_names == ["r", "y"]
    same(f(r=np.array([[2.0], [5.0]]), y=np.array([0, 2])), np.array([2.0, 5.0]))
    with pytest.raises(sg.SymgradError, match="labels 'y'"):
        f(r=np.ones((2, 1)), y=np.array([0, 3]))
    # its gradient with respect to r (which the gradient graph does not read) too
    g = sg.compile(sg.grad(sg.sum(sg.one_hot(y, 3) * r), r), backend=backend)
    assert g.input_names == ["y"]
    with pytest.raises(sg.SymgradError, match="labels 'y'"):
        g(y=np.array([-1, 0]))
