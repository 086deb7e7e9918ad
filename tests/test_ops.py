"""Every op of the user API against finite differences, NumPy values and its documented kinks.

Each case builds one small graph ``f`` (not necessarily scalar); it is compiled once per
backend together with the gradient of ``sum(f * c)`` (``c`` a random cotangent input) as a
single program returning ``[f, *grads]``, so one kernel serves the value check against
NumPy, the finite-difference check and the kink checks.
"""

from __future__ import annotations

import importlib
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from gradcheck import COTANGENT_NAME, check_grads, compile_cached, scalarize, value_and_grad_cached

import symgrad as sg
from symgrad.backends.numpy_backend import EVAL
from symgrad.ir.op import FACTS, LOOP_KINDS, OPS
from symgrad.passes import optimize

erf = np.vectorize(math.erf, otypes=[float])  # SciPy is optional

# --- the case table ----------------------------------------------------------------------


@dataclass
class Case:
    build: Callable[[], tuple]  # () -> (f, [wrt tensors])
    inputs: Callable[[np.random.Generator], dict]  # rng -> keyword inputs
    ref: Callable[..., np.ndarray]  # NumPy value of f from the same keyword inputs
    grad_ref: Callable | None = None  # (cotangent, **inputs) -> [grads], when easy by hand


A = sg.tensor("a", (3, 4))
B = sg.tensor("b", (4,))  # binary ops broadcast (3, 4) with (4,): un-broadcasting is checked too


def normal(shape, scale=1.5):
    return lambda rng: scale * rng.standard_normal(shape)


def positive(shape, lo=0.3, hi=3.0):
    return lambda rng: rng.uniform(lo, hi, shape)


def away_from_zero(shape, gap=0.1, hi=2.0):
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(gap, hi, shape)


def unary(fn, ref, domain=normal((3, 4)), grad=None):
    return Case(lambda: (fn(A), [A]), lambda rng: {"a": domain(rng)},
                lambda a: ref(a), None if grad is None else lambda c, a: [c * grad(a)])


def binary(fn, ref, a_domain=normal((3, 4)), b_domain=normal((4,))):
    return Case(lambda: (fn(A, B), [A, B]),
                lambda rng: {"a": a_domain(rng), "b": b_domain(rng)}, lambda a, b: ref(a, b))


def _apart(rng):
    # a and b at least 0.1 apart everywhere (no ties for maximum/minimum)
    b = rng.standard_normal(4)
    a = b + rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.1, 1.0, (3, 4))
    return {"a": a, "b": b}


def _np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _np_gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))


ELEMENTWISE = {
    "exp": unary(sg.exp, np.exp, grad=np.exp),
    "log": unary(sg.log, np.log, positive((3, 4)), grad=lambda a: 1 / a),
    "log1p": unary(sg.log1p, np.log1p, positive((3, 4), -0.5, 3.0), grad=lambda a: 1 / (1 + a)),
    "sqrt": unary(sg.sqrt, np.sqrt, positive((3, 4)), grad=lambda a: 0.5 / np.sqrt(a)),
    "abs": unary(sg.abs, np.abs, away_from_zero((3, 4)), grad=np.sign),
    "tanh": unary(sg.tanh, np.tanh, grad=lambda a: 1 - np.tanh(a) ** 2),
    "sigmoid": unary(sg.sigmoid, _np_sigmoid, normal((3, 4), 3.0),
                     grad=lambda a: _np_sigmoid(a) * (1 - _np_sigmoid(a))),
    "relu": unary(sg.relu, lambda a: np.maximum(a, 0), away_from_zero((3, 4)),
                  grad=lambda a: (a > 0) * 1.0),
    "leaky_relu": unary(sg.leaky_relu, lambda a: np.where(a > 0, a, 0.01 * a),
                        away_from_zero((3, 4)), grad=lambda a: np.where(a > 0, 1.0, 0.01)),
    "leaky_relu_0.2": unary(lambda x: sg.leaky_relu(x, alpha=0.2),
                            lambda a: np.where(a > 0, a, 0.2 * a), away_from_zero((3, 4)),
                            grad=lambda a: np.where(a > 0, 1.0, 0.2)),
    "elu": unary(sg.elu, lambda a: np.where(a > 0, a, np.expm1(a)), away_from_zero((3, 4)),
                 grad=lambda a: np.where(a > 0, 1.0, np.exp(a))),
    "elu_0.5": unary(lambda x: sg.elu(x, alpha=0.5), lambda a: np.where(a > 0, a, 0.5 * np.expm1(a)),
                     away_from_zero((3, 4)), grad=lambda a: np.where(a > 0, 1.0, 0.5 * np.exp(a))),
    "gelu": unary(sg.gelu, lambda a: 0.5 * a * (1 + erf(a / np.sqrt(2)))),
    "gelu_tanh": unary(lambda x: sg.gelu(x, approximate=True), _np_gelu_tanh),
    "silu": unary(sg.silu, lambda a: a * _np_sigmoid(a), normal((3, 4), 3.0)),
    "softplus": unary(sg.softplus, lambda a: np.logaddexp(0, a), normal((3, 4), 3.0),
                      grad=_np_sigmoid),
    "negative": unary(lambda x: -x, np.negative, grad=lambda a: -np.ones_like(a)),
    "sin": unary(sg.sin, np.sin, grad=np.cos),
    "cos": unary(sg.cos, np.cos, grad=lambda a: -np.sin(a)),
    "square": unary(sg.square, np.square, grad=lambda a: 2 * a),
    "log_sigmoid": unary(sg.log_sigmoid, lambda a: -np.logaddexp(0, -a), normal((3, 4), 3.0),
                         grad=lambda a: _np_sigmoid(-a)),
    "builtin_abs": unary(lambda x: abs(x), np.abs, away_from_zero((3, 4)), grad=np.sign),
    # values at least 0.1 from the bounds -0.5 and 0.7 (finite differences see no kink)
    "clip": unary(lambda x: sg.clip(x, -0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7),
                  lambda rng: rng.choice([-1.5, -0.1, 0.3, 1.2], (3, 4))
                  + rng.uniform(-0.05, 0.05, (3, 4)),
                  grad=lambda a: ((a >= -0.5) & (a <= 0.7)) * 1.0),
    "clip_tensor_bounds": binary(lambda a, b: sg.clip(a, b - 0.5, b + 0.5),
                                 lambda a, b: np.clip(a, b - 0.5, b + 0.5),
                                 a_domain=lambda rng: rng.choice([-2.0, 0.0, 2.0], (3, 4))
                                 + rng.uniform(-0.2, 0.2, (3, 4)),
                                 b_domain=lambda rng: rng.uniform(-0.1, 0.1, (4,))),
    "pow_int": unary(lambda x: x**3, lambda a: a**3, grad=lambda a: 3 * a**2),
    "pow_half": unary(lambda x: x**0.5, np.sqrt, positive((3, 4))),
    "rpow": unary(lambda x: 2.0**x, lambda a: 2.0**a, grad=lambda a: np.log(2) * 2.0**a),
    "radd_number": unary(lambda x: 2.5 + x, lambda a: 2.5 + a),
    "rsub_number": unary(lambda x: 1 - x, lambda a: 1 - a),
    "rdiv_number": unary(lambda x: 3 / x, lambda a: 3 / a, away_from_zero((3, 4), 0.3),
                         grad=lambda a: -3 / a**2),
    "mul_array": unary(lambda x: x * np.arange(1.0, 5.0), lambda a: a * np.arange(1.0, 5.0)),
    "add": binary(lambda a, b: a + b, np.add),
    "subtract": binary(lambda a, b: a - b, np.subtract),
    "multiply": binary(lambda a, b: a * b, np.multiply),
    "divide": binary(lambda a, b: a / b, np.divide, b_domain=away_from_zero((4,), 0.3)),
    "power": binary(lambda a, b: a**b, np.power, a_domain=positive((3, 4))),
    "maximum": Case(lambda: (sg.maximum(A, B), [A, B]), _apart, lambda a, b: np.maximum(a, b)),
    "minimum": Case(lambda: (sg.minimum(A, B), [A, B]), _apart, lambda a, b: np.minimum(a, b)),
    "where": Case(lambda: (sg.where(A > B, A * A, sg.exp(B)), [A, B]), _apart,
                  lambda a, b: np.where(a > b, a * a, np.exp(b) + 0 * a)),
}

# The user API's comparisons, each used as the condition of a where.
COMPARISONS = {
    "less": (lambda a, b: a < b, np.less),
    "less_equal": (lambda a, b: a <= b, np.less_equal),
    "greater": (lambda a, b: a > b, np.greater),
    "greater_equal": (lambda a, b: a >= b, np.greater_equal),
    "equal": (sg.equal, np.equal),
    "not_equal": (sg.not_equal, np.not_equal),
}

_PROGRAMS: dict = {}


def program(case: Case, backend: str):
    """One compiled function returning ``[f, *grad(sum(f * c), wrt)]`` (cached)."""
    f, wrt = case.build()
    scalar, ct = scalarize(f)
    return f, wrt, compile_cached([f, *sg.grad(scalar, wrt)], backend)


def run(case: Case, backend: str, inputs: dict, ct=None):
    f, wrt, fn = program(case, backend)
    if f.shape != ():
        inputs = dict(inputs, **{COTANGENT_NAME: ct})
    out = fn(**inputs)
    return out[0], list(out[1:])


def _grad_fn(case, backend):
    f, wrt, fn = program(case, backend)

    def grad_fn(**inputs):
        out = fn(**inputs)
        ct = inputs.get(COTANGENT_NAME, 1.0)
        return float(np.sum(np.asarray(out[0]) * ct)), list(out[1:])

    return grad_fn


def check_case(case: Case, backend: str, seed: int, **tol):
    rng = np.random.default_rng(seed)
    inputs = case.inputs(rng)
    f, wrt, fn = program(case, backend)
    ct = rng.standard_normal(np.shape(case.ref(**inputs)))
    value, grads = run(case, backend, inputs, ct)
    expected = case.ref(**inputs)
    assert np.shape(value) == np.shape(expected)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)
    if case.grad_ref is not None:
        for g, r in zip(grads, case.grad_ref(ct, **inputs)):
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-14)
    check_grads(f, wrt, inputs, backend=backend, grad_fn=_grad_fn(case, backend), cotangent=ct, **tol)
    return grads


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise(backend, name):
    check_case(ELEMENTWISE[name], backend, seed=zlib.crc32(name.encode()))


def test_every_user_function_has_a_case():
    # The op table of the user API (sg.ops.elementwise.FUNCTIONS) is covered by the cases.
    from symgrad.ops.elementwise import FUNCTIONS
    covered = set(ELEMENTWISE)
    assert set(FUNCTIONS) <= covered, set(FUNCTIONS) - covered


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparison_in_where(backend, name):
    build, ref = COMPARISONS[name]
    rng = np.random.default_rng(5)
    b0 = rng.standard_normal(4)
    # exact ties in some places, so <= / >= / == / != differ from < / >
    a0 = b0 + rng.choice([-0.5, 0.0, 0.5], (3, 4))
    cond = build(A, B)
    assert cond.dtype == "bool" and cond.shape == (3, 4)
    f = sg.where(cond, A * A, 3 * B)
    ct0 = rng.standard_normal((3, 4))
    case = Case(lambda: (f, [A, B]), None, None)
    value, (ga, gb) = run(case, backend, {"a": a0, "b": b0}, ct0)
    mask = ref(a0, b0)
    assert mask.any() and not mask.all()
    np.testing.assert_allclose(value, np.where(mask, a0 * a0, 3 * b0 + 0 * a0), rtol=1e-14)
    np.testing.assert_allclose(ga, np.where(mask, 2 * a0 * ct0, 0.0), rtol=1e-14)
    np.testing.assert_allclose(gb, np.where(mask, 0.0, 3 * ct0).sum(axis=0), rtol=1e-13)
    # the bool tensor itself compiles and matches NumPy
    np.testing.assert_array_equal(compile_cached(cond, "numpy")(a=a0, b=b0), mask)


def test_float32_elementwise(backend):
    x = sg.tensor("x", (6,), dtype="float32")
    f = sg.tanh(x) * sg.exp(-x) + sg.sigmoid(x)
    x0 = np.linspace(-2, 2, 6).astype(np.float32)
    value, (g,) = check_grads(f, [x], {"x": x0}, backend=backend)
    assert np.asarray(g).dtype == np.float32


# --- values at kinks and ties ------------------------------------------------------------


KINK_A = np.array([[0.0, 1.0, -1.0, 0.0], [2.0, 0.0, -0.5, 0.0], [0.0, -3.0, 0.0, 0.25]])


@pytest.mark.parametrize("name, expected_at_zero", [
    ("relu", 0.0), ("leaky_relu", 0.01), ("leaky_relu_0.2", 0.2), ("elu", 1.0),
    ("elu_0.5", 0.5), ("abs", 0.0),
])
def test_subgradient_at_zero(backend, name, expected_at_zero):
    case = ELEMENTWISE[name]
    ct = np.ones_like(KINK_A)
    value, (g,) = run(case, backend, {"a": KINK_A}, ct)
    np.testing.assert_allclose(value, case.ref(KINK_A), rtol=1e-14)
    zero = KINK_A == 0
    assert np.all(g[zero] == expected_at_zero), g
    np.testing.assert_allclose(g[~zero], case.grad_ref(ct, KINK_A)[0][~zero], rtol=1e-14)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_go_to_first_argument(backend, name):
    b0 = np.array([1.0, -2.0, 0.0, 3.0])
    a0 = np.stack([b0, b0 + 1, b0 - 1])  # row 0 ties everywhere
    ct = np.ones((3, 4))
    value, (ga, gb) = run(ELEMENTWISE[name], backend, {"a": a0, "b": b0}, ct)
    pick_a = a0 >= b0 if name == "maximum" else a0 <= b0
    np.testing.assert_array_equal(ga, pick_a * 1.0)
    np.testing.assert_array_equal(gb, (~pick_a).sum(axis=0) * 1.0)
    assert np.all(ga[0] == 1.0)  # the ties


def test_maximum_tie_symbolic():
    x = sg.symbols("x")
    # max(x, x) is x: d/dx (max(x, x) * x) = 2x (the tie's whole gradient counted once)
    d = sg.compile(sg.grad(sg.maximum(x, x) * x, x), backend="numpy")
    assert d(x=3.0) == 6.0
    y, z = sg.symbols("y z")
    dy, dz = sg.grad(sg.maximum(y, z), [y, z])
    fn = sg.compile([dy, dz], backend="numpy")
    assert fn(y=2.0, z=2.0) == (1.0, 0.0)
    assert fn(y=1.0, z=2.0) == (0.0, 1.0)


def test_max_reduction_ties_go_to_first_maximal_element(backend):
    x = sg.tensor("x", (3, 4))
    outs = [sg.max(x), sg.max(x, axis=0), sg.max(x, axis=1), sg.max(x, axis=(0, 1), keepdims=True)]
    grads = [sg.grad(sg.sum(o), x) for o in outs]
    fn = compile_cached(outs + grads, backend)
    x0 = np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 3.0, 0.0], [0.0, 3.0, 1.0, 0.0]])
    values = fn(x=x0)
    assert values[0] == 3.0
    np.testing.assert_array_equal(values[1], [3.0, 3.0, 3.0, 0.0])
    np.testing.assert_array_equal(values[2], [3.0, 3.0, 3.0])
    g_all, g_cols, g_rows, g_keep = values[4:]
    first_all = np.zeros((3, 4))
    first_all[0, 1] = 1  # row-major first of the five 3s
    np.testing.assert_array_equal(g_all, first_all)
    np.testing.assert_array_equal(g_keep, first_all)
    cols = np.zeros((3, 4))
    cols[[1, 0, 0, 0], [0, 1, 2, 3]] = 1  # column 3 is all zeros: the first row gets it
    np.testing.assert_array_equal(g_cols, cols)
    rows = np.zeros((3, 4))
    rows[[0, 1, 2], [1, 0, 1]] = 1
    np.testing.assert_array_equal(g_rows, rows)


def test_hinge_zero_margin_contributes_nothing(backend):
    s = sg.tensor("s", ("N", 3))
    y = sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.multiclass_hinge(s, y, reduction="sum")
    fn = value_and_grad_cached(loss, s, backend)
    # row 0: class 0 has margin exactly 0 (0 - 1 + 1), class 2 has 0.5; row 1: all exactly 0
    s0 = np.array([[0.0, 1.0, 0.5], [-1.0, 0.0, -1.0]])
    value, g = fn(s=s0, y=np.array([1, 1]))
    assert value == 0.5
    np.testing.assert_array_equal(g, [[0.0, -1.0, 1.0], [0.0, 0.0, 0.0]])


def test_clip_gradient_at_its_boundaries(backend):
    # PyTorch's convention: d clip(x, lo, hi) / dx = 1 for lo <= x <= hi, bounds included
    x = sg.tensor("x", (5,))
    fn = value_and_grad_cached(sg.sum(sg.clip(x, -1.0, 2.0)), x, backend)
    x0 = np.array([-1.0, 2.0, -1.5, 0.5, 2.5])
    value, g = fn(x=x0)
    assert value == pytest.approx(np.sum(np.clip(x0, -1.0, 2.0)))
    np.testing.assert_array_equal(g, [1.0, 1.0, 0.0, 1.0, 0.0])


def test_log_sigmoid_is_finite_at_large_magnitudes(backend):
    x = sg.tensor("x", (5,))
    fn = value_and_grad_cached(sg.sum(sg.log_sigmoid(x)), x, backend)
    x0 = np.array([1e4, -1e4, 0.0, 50.0, -50.0])
    value, g = fn(x=x0)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    assert value == pytest.approx(np.sum(-np.logaddexp(0, -x0)), rel=1e-13)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(g, _np_sigmoid(-x0), rtol=1e-13, atol=1e-300)


def test_stable_at_large_magnitudes(backend):
    # sigmoid, softplus and logsumexp stay finite (with finite gradients) for |x| up to 1e4.
    x = sg.tensor("x", (4,))
    f = sg.sum(sg.sigmoid(x)) + sg.sum(sg.softplus(x)) + sg.logsumexp(x) + sg.sum(sg.log_softmax(x))
    x0 = np.array([1e4, -1e4, 0.0, 5e3])
    value, g = value_and_grad_cached(f, x, backend)(x=x0)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    p = np.array([1.0, 0.0, 0.0, 0.0])
    expected = (1 + 0 + 0.5 + 1) + (1e4 + 0 + np.log(2) + 5e3) + 1e4 + np.sum(x0 - 1e4)
    assert value == pytest.approx(expected, rel=1e-12)
    sig = np.array([1.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(g, sig * (1 - sig) + sig + p + (1 - 4 * p), atol=1e-12)


# --- structural ops ----------------------------------------------------------------------


def contracted(fn, k):
    """``(value, grads)`` of ``sum_i sum(out_i * c_i)`` from a program returning
    ``[out_0..out_{k-1}, *grads]`` (reuses the compiled program for finite differences)."""

    def grad_fn(**inputs):
        values = fn(**inputs)
        total = sum(float(np.sum(np.asarray(values[i]) * inputs[f"c{i}"])) for i in range(k))
        return total, list(values[k:])

    return grad_fn


def _first_max_mask(x, axes):
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
    mask = np.zeros(flat.shape)
    np.put_along_axis(mask, np.argmax(flat, axis=-1)[..., None], 1.0, axis=-1)
    return np.transpose(mask.reshape(moved.shape), np.argsort(rest + list(axes)))


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


REDUCTION_VARIANTS = [(None, False), (None, True), (0, False), (1, True), (-1, False),
                      ((2, 0), False), ((0, 2), True), ((-1, -2), True)]


def _reduction_graph(op):
    """One graph per reduction: variant i reads its own input x_i and cotangent c_i."""
    fn = {"sum": sg.sum, "mean": sg.mean, "max": sg.max}[op]
    xs, total, outs = [], 0, []
    for i, (axis, keep) in enumerate(REDUCTION_VARIANTS):
        x = sg.tensor(f"x{i}", ("N", 4, 5))  # a named dim: mean divides by its run-time size
        out = fn(x, axis=axis, keepdims=keep)
        c = sg.tensor(f"c{i}", out.shape)
        xs.append(x)
        outs.append(out)
        total = total + sg.sum(out * c)
    return total, xs, outs


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@pytest.mark.parametrize("n", [3, 2])
def test_reductions(backend, op, n):
    total, xs, outs = _reduction_graph(op)
    fn = compile_cached([*outs, *sg.grad(total, xs)], backend)
    rng = np.random.default_rng(17 + n)
    inputs = {}
    np_fn = {"sum": np.sum, "mean": np.mean, "max": np.max}[op]
    refs, grad_refs = [], []
    for i, (axis, keep) in enumerate(REDUCTION_VARIANTS):
        x = rng.standard_normal((n, 4, 5))
        axes = _axes(axis, 3)
        ref = np_fn(x, axis=axes, keepdims=keep)
        c = rng.standard_normal(np.shape(ref))
        inputs[f"x{i}"], inputs[f"c{i}"] = x, c
        c_keep = np.expand_dims(c, axes) if not keep else c
        local = {"sum": np.ones_like(x), "mean": np.full_like(x, 1 / np.prod([x.shape[a] for a in axes])),
                 "max": _first_max_mask(x, axes)}[op]
        refs.append(ref)
        grad_refs.append(local * c_keep)
    values = fn(**inputs)
    k = len(REDUCTION_VARIANTS)
    for i in range(k):
        assert np.shape(values[i]) == np.shape(refs[i]), REDUCTION_VARIANTS[i]
        np.testing.assert_allclose(values[i], refs[i], rtol=1e-13, err_msg=str(REDUCTION_VARIANTS[i]))
        np.testing.assert_allclose(values[k + i], grad_refs[i], rtol=1e-13, atol=1e-15,
                                   err_msg=str(REDUCTION_VARIANTS[i]))
    if n == 3:
        check_grads(total, xs, inputs, backend=backend, n_dirs=2, grad_fn=contracted(fn, k))


def _np_lse(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SOFTMAX_FAMILY = {
    # name -> [(sg builder, NumPy value, VJP by hand (x, c) -> grad)]
    "logsumexp": [
        (lambda x: sg.logsumexp(x), lambda x: _np_lse(x, None),
         lambda x, c: c * _np_softmax(x.ravel(), 0).reshape(x.shape)),
        (lambda x: sg.logsumexp(x, axis=1), lambda x: _np_lse(x, 1),
         lambda x, c: c[:, None] * _np_softmax(x, 1)),
        (lambda x: sg.logsumexp(x, axis=0, keepdims=True), lambda x: _np_lse(x, 0, True),
         lambda x, c: c * _np_softmax(x, 0)),
        (lambda x: sg.logsumexp(x, axis=(0, 1)), lambda x: _np_lse(x, (0, 1)),
         lambda x, c: c * _np_softmax(x.ravel(), 0).reshape(x.shape)),
    ],
    "softmax": [
        (lambda x: sg.softmax(x), lambda x: _np_softmax(x, -1),
         lambda x, c: _np_softmax(x, -1) * (c - np.sum(c * _np_softmax(x, -1), -1, keepdims=True))),
        (lambda x: sg.softmax(x, axis=0), lambda x: _np_softmax(x, 0),
         lambda x, c: _np_softmax(x, 0) * (c - np.sum(c * _np_softmax(x, 0), 0, keepdims=True))),
    ],
    "log_softmax": [
        (lambda x: sg.log_softmax(x), lambda x: x - _np_lse(x, -1, True),
         lambda x, c: c - _np_softmax(x, -1) * c.sum(-1, keepdims=True)),
        (lambda x: sg.log_softmax(x, axis=0), lambda x: x - _np_lse(x, 0, True),
         lambda x, c: c - _np_softmax(x, 0) * c.sum(0, keepdims=True)),
    ],
}


@pytest.mark.parametrize("name", list(SOFTMAX_FAMILY))
def test_softmax_family(backend, name):
    variants = SOFTMAX_FAMILY[name]
    xs = [sg.tensor(f"x{i}", ("N", 5)) for i in range(len(variants))]
    outs = [v[0](x) for v, x in zip(variants, xs)]
    cs = [sg.tensor(f"c{i}", o.shape) for i, o in enumerate(outs)]
    total = sum((sg.sum(o * c) for o, c in zip(outs, cs)), start=0)
    fn = compile_cached([*outs, *sg.grad(total, xs)], backend)
    rng = np.random.default_rng(3)
    inputs = {}
    for i, v in enumerate(variants):
        x = 3 * rng.standard_normal((4, 5))
        x[0, :2] += 800.0  # large scores: the stable forms must not overflow
        inputs[f"x{i}"] = x
        inputs[f"c{i}"] = rng.standard_normal(np.shape(v[1](x)))
    values = fn(**inputs)
    k = len(variants)
    for i, (_, ref, vjp) in enumerate(variants):
        x, c = inputs[f"x{i}"], inputs[f"c{i}"]
        np.testing.assert_allclose(values[i], ref(x), rtol=1e-12, atol=1e-12, err_msg=f"{name} {i}")
        np.testing.assert_allclose(values[k + i], vjp(x, c), rtol=1e-10, atol=1e-13, err_msg=f"{name} {i}")
        assert np.all(np.isfinite(values[k + i]))
    small = {k_: (v / 100 if k_.startswith("x") else v) for k_, v in inputs.items()}
    check_grads(total, xs, small, backend=backend, n_dirs=2, grad_fn=contracted(fn, k))


def test_matmul_all_ranks(backend):
    u, v = sg.tensor("u", (4,)), sg.tensor("v", (4,))
    p, M = sg.tensor("p", (4,)), sg.tensor("M", (4, 5))
    N_, q = sg.tensor("N_", (3, 4)), sg.tensor("q", (4,))
    P, Q = sg.tensor("P", ("n", 4)), sg.tensor("Q", (4, 5))
    outs = [u @ v, p @ M, N_ @ q, P @ Q]
    cs = [sg.tensor(f"c{i}", o.shape) for i, o in enumerate(outs)]
    assert [o.shape for o in outs] == [(), (5,), (3,), ("n", 5)]
    total = sum((sg.sum(o * c) for o, c in zip(outs, cs)), start=0)
    wrt = [u, v, p, M, N_, q, P, Q]
    fn = compile_cached([*outs, *sg.grad(total, wrt)], backend)
    rng = np.random.default_rng(4)
    x = {"u": rng.standard_normal(4), "v": rng.standard_normal(4), "p": rng.standard_normal(4),
         "M": rng.standard_normal((4, 5)), "N_": rng.standard_normal((3, 4)),
         "q": rng.standard_normal(4), "P": rng.standard_normal((2, 4)), "Q": rng.standard_normal((4, 5))}
    c = [rng.standard_normal(()), rng.standard_normal(5), rng.standard_normal(3), rng.standard_normal((2, 5))]
    inputs = dict(x, **{f"c{i}": ci for i, ci in enumerate(c)})
    values = fn(**inputs)
    refs = [x["u"] @ x["v"], x["p"] @ x["M"], x["N_"] @ x["q"], x["P"] @ x["Q"]]
    for got, ref in zip(values[:4], refs):
        np.testing.assert_allclose(got, ref, rtol=1e-13)
    assert isinstance(values[0], float)
    grad_refs = [c[0] * x["v"], c[0] * x["u"],
                 x["M"] @ c[1], np.outer(x["p"], c[1]),
                 np.outer(c[2], x["q"]), x["N_"].T @ c[2],
                 c[3] @ x["Q"].T, x["P"].T @ c[3]]
    for name, got, ref in zip([w.name for w in wrt], values[4:], grad_refs):
        np.testing.assert_allclose(got, ref, rtol=1e-13, err_msg=name)
    check_grads(total, wrt, inputs, backend=backend, n_dirs=2, grad_fn=contracted(fn, 4))


def _np_getitem_none(x):
    return x[:, None]


STRUCTURAL = {
    "T": Case(lambda: (sg.tensor("a", (3, 4)).T, [sg.tensor("a", (3, 4))]),
              lambda rng: {"a": rng.standard_normal((3, 4))}, lambda a: a.T,
              lambda c, a: [c.T]),
    "T_1d": Case(lambda: (sg.tensor("v", (4,)).T * 2.0, [sg.tensor("v", (4,))]),
                 lambda rng: {"v": rng.standard_normal(4)}, lambda v: 2 * v),
    "transpose_3d": Case(lambda: (sg.transpose(sg.tensor("t", (2, 3, 4)), (2, 0, 1)), [sg.tensor("t", (2, 3, 4))]),
                         lambda rng: {"t": rng.standard_normal((2, 3, 4))},
                         lambda t: np.transpose(t, (2, 0, 1)), lambda c, t: [np.transpose(c, (1, 2, 0))]),
    "transpose_default": Case(lambda: (sg.transpose(sg.tensor("t", (2, 3, 4))), [sg.tensor("t", (2, 3, 4))]),
                              lambda rng: {"t": rng.standard_normal((2, 3, 4))},
                              lambda t: np.transpose(t), lambda c, t: [np.transpose(c)]),
    "reshape": Case(lambda: (sg.reshape(sg.tensor("a", (3, 4)), (2, 6)), [sg.tensor("a", (3, 4))]),
                    lambda rng: {"a": rng.standard_normal((3, 4))}, lambda a: a.reshape(2, 6),
                    lambda c, a: [c.reshape(3, 4)]),
    "reshape_minus_one": Case(lambda: (sg.reshape(sg.tensor("a", (3, 4)), (-1,)) * 1.5, [sg.tensor("a", (3, 4))]),
                              lambda rng: {"a": rng.standard_normal((3, 4))}, lambda a: 1.5 * a.reshape(-1)),
    "reshape_named": Case(lambda: (sg.exp(sg.reshape(sg.tensor("r", ("N", 6)), ("N", 2, 3))), [sg.tensor("r", ("N", 6))]),
                          lambda rng: {"r": rng.standard_normal((5, 6))}, lambda r: np.exp(r.reshape(5, 2, 3))),
    "reshape_named_minus_one": Case(lambda: (sg.reshape(sg.tensor("r3", ("N", 2, 3)), ("N", -1)) ** 2,
                                            [sg.tensor("r3", ("N", 2, 3))]),
                                    lambda rng: {"r3": rng.standard_normal((5, 2, 3))},
                                    lambda r3: r3.reshape(5, 6) ** 2, lambda c, r3: [2 * r3 * c.reshape(5, 2, 3)]),
    "getitem_none": Case(lambda: (sg.tensor("s", ("N",))[:, None] * sg.tensor("k", (3,)),
                                  [sg.tensor("s", ("N",)), sg.tensor("k", (3,))]),
                         lambda rng: {"s": rng.standard_normal(4), "k": rng.standard_normal(3)},
                         lambda s, k: s[:, None] * k,
                         lambda c, s, k: [(c * k).sum(1), (c * s[:, None]).sum(0)]),
    "getitem_leading_none": Case(lambda: (sg.tensor("s", ("N",))[None] + sg.tensor("k", (3, 1)),
                                          [sg.tensor("s", ("N",)), sg.tensor("k", (3, 1))]),
                                 lambda rng: {"s": rng.standard_normal(4), "k": rng.standard_normal((3, 1))},
                                 lambda s, k: s[None] + k,
                                 lambda c, s, k: [c.sum(0), c.sum(1, keepdims=True)]),
    "getitem_ellipsis": Case(lambda: (sg.tensor("a", (3, 4))[..., None] * sg.tensor("k", (2,)),
                                      [sg.tensor("a", (3, 4)), sg.tensor("k", (2,))]),
                             lambda rng: {"a": rng.standard_normal((3, 4)), "k": rng.standard_normal(2)},
                             lambda a, k: a[..., None] * k),
    "broadcast_column_row": Case(lambda: (sg.tensor("a", (3, 1)) * sg.tensor("b", (4,)),
                                          [sg.tensor("a", (3, 1)), sg.tensor("b", (4,))]),
                                 lambda rng: {"a": rng.standard_normal((3, 1)), "b": rng.standard_normal(4)},
                                 lambda a, b: a * b,
                                 lambda c, a, b: [(c * b).sum(1, keepdims=True), (c * a).sum(0)]),
    "broadcast_named": Case(lambda: (sg.tensor("a", ("N", 1)) - sg.tensor("b", (1, 5)) + sg.tensor("s", ()),
                                     [sg.tensor("a", ("N", 1)), sg.tensor("b", (1, 5)), sg.tensor("s", ())]),
                            lambda rng: {"a": rng.standard_normal((3, 1)), "b": rng.standard_normal((1, 5)),
                                         "s": 0.7},
                            lambda a, b, s: a - b + s,
                            lambda c, a, b, s: [c.sum(1, keepdims=True), -c.sum(0, keepdims=True), c.sum()]),
    "broadcast_to": Case(lambda: (sg.broadcast_to(sg.tensor("b", (4,)), (3, 4)), [sg.tensor("b", (4,))]),
                         lambda rng: {"b": rng.standard_normal(4)}, lambda b: np.broadcast_to(b, (3, 4)),
                         lambda c, b: [c.sum(0)]),
    "pick": Case(lambda: (sg.pick(sg.tensor("S", ("N", 5)), sg.tensor("y", ("N",), dtype="int64")),
                          [sg.tensor("S", ("N", 5))]),
                 lambda rng: {"S": rng.standard_normal((6, 5)), "y": np.array([0, 4, 2, 2, 1, 3])},
                 lambda S, y: S[np.arange(len(y)), y],
                 lambda c, S, y: [np.eye(5)[y] * c[:, None]]),
    "one_hot": Case(lambda: (sg.one_hot(sg.tensor("y", ("N",), dtype="int64"), 5) * sg.tensor("S", ("N", 5)),
                             [sg.tensor("S", ("N", 5))]),
                    lambda rng: {"S": rng.standard_normal((6, 5)), "y": np.array([0, 4, 2, 2, 1, 3])},
                    lambda S, y: np.eye(5)[y] * S,
                    lambda c, S, y: [np.eye(5)[y] * c]),
    "one_hot_named_classes": Case(
        lambda: (sg.sum(sg.one_hot(sg.tensor("y", ("N",), dtype="int64"), "C") * sg.tensor("S", ("N", "C")), axis=1),
                 [sg.tensor("S", ("N", "C"))]),
        lambda rng: {"S": rng.standard_normal((6, 7)), "y": np.array([0, 6, 2, 2, 1, 3])},
        lambda S, y: S[np.arange(6), y],
        lambda c, S, y: [np.eye(7)[y] * c[:, None]]),
    "sum_of_broadcast": Case(lambda: (sg.sum(sg.broadcast_to(sg.tensor("b", ("N", 1)), ("N", 5)) * 2.0, axis=1),
                                      [sg.tensor("b", ("N", 1))]),
                             lambda rng: {"b": rng.standard_normal((3, 1))}, lambda b: 10 * b[:, 0],
                             lambda c, b: [10 * c[:, None]]),
}


@pytest.mark.parametrize("name", list(STRUCTURAL))
def test_structural(backend, name):
    check_case(STRUCTURAL[name], backend, seed=len(name))


def test_stop_gradient(backend):
    x = sg.tensor("x", (4,))
    e = sg.exp(x)
    cases = [sg.sum(x * sg.stop_gradient(x)), sg.sum(e * sg.stop_gradient(e))]
    grads = [sg.grad(f, x) for f in cases]
    fn = compile_cached(cases + grads, backend)
    x0 = np.array([0.5, -1.0, 2.0, 3.0])
    v1, v2, g1, g2 = fn(x=x0)
    assert v1 == pytest.approx(np.sum(x0 * x0)) and v2 == pytest.approx(np.sum(np.exp(2 * x0)))
    np.testing.assert_allclose(g2, np.exp(2 * x0), rtol=1e-14)
    np.testing.assert_allclose(g1, x0, rtol=1e-14)  # only the first factor is differentiated


def test_named_dims_take_new_sizes(backend):
    case = STRUCTURAL["reshape_named"]
    for n in (1, 5, 9):
        r0 = np.arange(n * 6, dtype=float).reshape(n, 6) / 10
        value, (g,) = run(case, backend, {"r": r0}, np.ones((n, 2, 3)))
        np.testing.assert_allclose(value, np.exp(r0.reshape(n, 2, 3)), rtol=1e-14)
        np.testing.assert_allclose(g, np.exp(r0), rtol=1e-14)


# --- the op tables -----------------------------------------------------------------------

def _numba_lower():
    try:
        return importlib.import_module("symgrad.backends.numba_lowerings")
    except ImportError:
        return None


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_every_lowering(name):
    # one lowering per op in each backend's table, no placeholders; a missing one names the op
    op = OPS[name]
    assert callable(EVAL.get(name)), f"numpy backend: no EVAL entry for op {name!r}"
    codegen = _numba_lower()
    if codegen is None:
        return
    entry = codegen.LOWER.get(name)
    assert entry is not None, f"numba backend: no LOWER entry for op {name!r}"
    expected = {None: Callable, "map": codegen.Map, "reduce": codegen.Reduce}[op.loop]
    assert isinstance(entry, expected), f"op {name!r} (loop={op.loop!r}): LOWER has {entry!r}"
    if isinstance(entry, tuple):
        assert all(callable(f) for f in entry), name


def test_backend_tables_have_no_unknown_ops():
    assert set(EVAL) == set(OPS), set(EVAL) ^ set(OPS)
    codegen = _numba_lower()
    if codegen is not None:
        assert set(codegen.LOWER) == set(OPS), set(codegen.LOWER) ^ set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("fact", FACTS)
def test_every_op_states_every_fact(name, fact):
    op = OPS[name]
    value = getattr(op, fact)
    if fact == "vjp":
        assert value is None or callable(value), name
        assert op.differentiable == (value is not None)
    elif fact in ("rebuild", "labels", "requires", "binds", "indices_below"):
        assert callable(value), f"op {name!r}: {fact} must be a rule"
    elif fact == "loop":
        assert value in LOOP_KINDS, name
    elif fact == "leaf":
        assert value in (None, "input", "const", "dim"), name
    else:
        assert isinstance(value, bool), f"op {name!r}: {fact} must be True or False"
    assert op == name and op.name == name and OPS[op] is op


def test_facts_agree_with_what_the_backends_do():
    # fresh: the backend's value shares no memory with the inputs (the finisher hands it out)
    x = sg.tensor("x", (3, 4))
    y = sg.tensor("y", (3,), dtype="int64")
    graphs = {"ew": sg.exp(x), "sum": sg.sum(x, axis=0), "max": sg.max(x, axis=0),
              "matmul": x @ x.T, "pick": sg.pick(x[:, :3], y), "one_hot": sg.one_hot(y, 4),
              "concatenate": sg.concatenate([x, x]), "argmax": sg.argmax(x, axis=1),
              "transpose": x.T, "reshape": x.reshape(4, 3), "slice": x[1:]}
    for name, node in graphs.items():
        assert node.op == name, (name, node.op)
        fn = sg.compile(node, backend="numpy")
        given = {"x": np.arange(12.0).reshape(3, 4), "y": np.array([0, 1, 2])}
        args = tuple(given[n] for n in fn.input_names)
        out = fn.program(args, {})[0]
        shares = any(np.shares_memory(out, a) for a in args)
        assert shares != OPS[name].fresh or name == "reshape", name  # a reshape may copy


def test_no_op_name_tests_outside_the_op_definitions():
    # Only the op definitions (symgrad/ops/) and the backends' lowering tables know ops by
    # name; everything else asks the op's facts.
    import pathlib
    root = pathlib.Path(sg.__file__).parent
    pattern = re.compile(r"\.op\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(]")
    offenders = []
    for path in root.rglob("*.py"):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(root)}:{no}: {line.strip()}")
    assert not offenders, offenders


def test_ir_docstring_points_at_the_op_registry():
    assert "OPS" in sg.ir.node.__doc__


def test_graphs_of_the_losses_use_only_table_ops():
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    f = (sg.losses.softmax_cross_entropy(X @ W, y) + sg.losses.multiclass_hinge(X @ W, y)
         + sg.mean(sg.max(sg.gelu(X), axis=1)) + 1e-3 * sg.losses.l2(W))
    g = sg.grad(f, [X, W])
    seen = {n.op for n in sg.ir.toposort([f, *g])}
    assert seen <= set(OPS)
    seen_opt = {n.op for n in sg.ir.toposort(optimize([f, *g]))}
    assert seen_opt <= set(EVAL)


# --- second derivatives ------------------------------------------------------------------

_x, _y = sp.symbols("x y")
SECOND = {
    "exp_times_x": (lambda x, y: sg.exp(x) * x, sp.exp(_x) * _x),
    "log_x_sq": (lambda x, y: sg.log(x) * x**2, sp.log(_x) * _x**2),
    "tanh": (lambda x, y: sg.tanh(x), sp.tanh(_x)),
    "sigmoid": (lambda x, y: sg.sigmoid(x), 1 / (1 + sp.exp(-_x))),
    "cube": (lambda x, y: x**3, _x**3),
    "product": (lambda x, y: x * y * sg.exp(x * y), _x * _y * sp.exp(_x * _y)),
    "quotient": (lambda x, y: sg.sqrt(x) / (1 + y * x), sp.sqrt(_x) / (1 + _y * _x)),
    "softplus_like": (lambda x, y: sg.log1p(sg.exp(x)), sp.log(1 + sp.exp(_x))),
}


@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivative(backend, name):
    build, expr = SECOND[name]
    x, y = sg.symbols("x y")
    f = build(x, y)
    d2 = sg.grad(sg.grad(f, x), x)
    dxy = sg.grad(sg.grad(f, x), y)
    want_xx, want_xy = sp.diff(expr, _x, 2), sp.diff(expr, _x, _y)
    got_xx = sg.to_sympy(d2)
    points = [(0.7, -0.3), (1.9, 0.4), (0.2, 1.1)]
    for px, py in points:
        a = complex(got_xx.evalf(30, subs={_x: px, _y: py}))
        b = complex(want_xx.evalf(30, subs={_x: px, _y: py}))
        assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), (name, got_xx, want_xx)
    fn = compile_cached([d2, dxy], backend)
    for px, py in points:
        gxx, gxy = fn(**{k: v for k, v in {"x": px, "y": py}.items() if k in fn.input_names})
        assert gxx == pytest.approx(float(want_xx.subs({_x: px, _y: py})), rel=1e-10, abs=1e-12)
        assert gxy == pytest.approx(float(want_xy.subs({_x: px, _y: py})), rel=1e-10, abs=1e-12)


def test_constant_second_derivative_compiles(backend):
    # d2/dx2 x**2 = 2 and d/dx (3x) = 3 are graphs without inputs: they compile to
    # callables taking no arguments.
    x = sg.symbols("x")
    d2 = sg.grad(sg.grad(x**2, x), x)
    assert sg.to_sympy(d2) == 2
    fn = compile_cached([d2, sg.grad(3 * x, x)], backend)
    assert fn.input_names == []
    assert fn() == (2.0, 3.0)


def test_second_derivative_symbolic_identity():
    x = sg.symbols("x")
    X = sp.Symbol("x")
    assert sp.simplify(sg.to_sympy(sg.grad(sg.grad(x**3, x), x)) - 6 * X) == 0
    assert sp.simplify(sg.to_sympy(sg.grad(sg.grad(sg.exp(x) * x, x), x)) - (X + 2) * sp.exp(X)) == 0
    t = sp.tanh(X)
    assert sp.simplify(sg.to_sympy(sg.grad(sg.grad(sg.tanh(x), x), x)) - sp.diff(t, X, 2)) == 0


def test_hessian_vector_product_quadratic_form(backend):
    x = sg.tensor("x", ("n",))
    A = sg.tensor("A", ("n", "n"))
    v = sg.tensor("v", ("n",))
    f = x.T @ A @ x
    g = sg.grad(f, x)
    hv = sg.grad(sg.sum(g * v), x)
    fn = compile_cached([f, g, hv], backend)
    rng = np.random.default_rng(12)
    for n in (5, 8):
        x0, A0, v0 = rng.standard_normal(n), rng.standard_normal((n, n)), rng.standard_normal(n)
        value, g0, hv0 = fn(x=x0, A=A0, v=v0)
        assert value == pytest.approx(x0 @ A0 @ x0, rel=1e-13)
        np.testing.assert_allclose(g0, (A0 + A0.T) @ x0, rtol=1e-12)
        np.testing.assert_allclose(hv0, (A0 + A0.T) @ v0, rtol=1e-12)
    # and the HVP is itself differentiable: d/dA of sum(hv * w) = v w^T + w v^T
    w = sg.tensor("w", ("n",))
    dA = sg.grad(sg.sum(hv * w), A)
    v0, w0 = rng.standard_normal(4), rng.standard_normal(4)
    fn2 = sg.compile(dA, backend="numpy")
    assert fn2.input_names == ["v", "w"]  # the HVP of a quadratic form does not read x or A
    got = fn2(v=v0, w=w0)
    np.testing.assert_allclose(got, np.outer(v0, w0) + np.outer(w0, v0), rtol=1e-13)


def test_hessian_vector_product_logsumexp(backend):
    x = sg.tensor("x", (6,))
    v = sg.tensor("v", (6,))
    hv = sg.grad(sg.sum(sg.grad(sg.logsumexp(x), x) * v), x)
    fn = compile_cached(hv, backend)
    rng = np.random.default_rng(13)
    x0, v0 = rng.standard_normal(6), rng.standard_normal(6)
    p = _np_softmax(x0, 0)
    np.testing.assert_allclose(fn(x=x0, v=v0), p * v0 - p * (p @ v0), rtol=1e-11, atol=1e-14)


# --- indexing, concatenate, stack, argmax, var and std ----------------------------------

_X34 = lambda: sg.tensor("a", (3, 4))  # noqa: E731
_XN4 = lambda: sg.tensor("r", ("N", 4))  # noqa: E731


def _index_case(index, named=False):
    make = _XN4 if named else _X34
    name = "r" if named else "a"
    rows = 5 if named else 3
    return Case(lambda: (make()[index] * 1.5, [make()]),
                lambda rng: {name: rng.standard_normal((rows, 4))},
                lambda **kw: 1.5 * kw[name][index])


INDEXING = {
    "int": _index_case(0),
    "negative_int": _index_case(-1),
    "int_int": _index_case((1, -2)),
    "columns": _index_case((slice(None), slice(1, 3))),
    "rows_from_1": _index_case(slice(1, None)),
    "negative_bounds": _index_case((slice(-2, None), slice(None, -1))),
    "step": _index_case((slice(None, None, 2), slice(1, None, 2))),
    "negative_step": _index_case((slice(None, None, -1), slice(3, 0, -2))),
    "ellipsis_int": _index_case((Ellipsis, 2)),
    "none_and_int": _index_case((None, 1, slice(None))),
    "named_rows_from_1": _index_case(slice(1, None), named=True),
    "named_negative_int": _index_case(-2, named=True),
    "named_int": _index_case((1, slice(None, None, 2)), named=True),
    "named_step": _index_case(slice(None, None, 2), named=True),
    "named_reversed": _index_case(slice(None, None, -1), named=True),
    "named_negative_bounds": _index_case(slice(-3, -1), named=True),
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing(backend, name):
    grads = check_case(INDEXING[name], backend, seed=zlib.crc32(name.encode()))
    assert grads[0].shape in ((3, 4), (5, 4))  # the gradient scatters into the full shape


def test_indexing_named_dims_are_expressions():
    r = _XN4()
    assert sg.ir.shapes.fmt(r[1:].shape) == "(N - 1, 4)"
    assert sg.ir.shapes.fmt(r[-3:-1].shape) == "(2, 4)"
    assert r[0].shape == (4,)


def test_indexing_errors():
    a = _X34()
    with pytest.raises(sg.ShapeError, match="index 3 is out of range for axis 0 of size 3"):
        a[3]
    with pytest.raises(sg.ArgumentError, match="too many indices"):
        a[0, 0, 0]
    with pytest.raises(sg.ArgumentError, match="step cannot be zero"):
        a[::0]
    with pytest.raises(sg.ArgumentError, match="indexing supports"):
        a[[0, 1]]


def test_named_slice_must_fit_at_call_time(backend):
    r = _XN4()
    fn = compile_cached(r[2:] * 1.0, backend)
    assert fn(r=np.ones((2, 4))).shape == (0, 4)
    with pytest.raises(sg.ShapeError, match=r"dim N - 2 is -1 \(for N = 1\)"):
        fn(r=np.ones((1, 4)))
    fn = compile_cached(r[3] * 1.0, backend)
    with pytest.raises(sg.ShapeError, match="must lie inside it"):
        fn(r=np.ones((3, 4)))
    np.testing.assert_array_equal(fn(r=np.arange(16.0).reshape(4, 4)), [12, 13, 14, 15])


def _concat_case():
    X, b = sg.tensor("X", ("N", "D")), sg.tensor("b", ("N", 2))
    return Case(lambda: (sg.concatenate([X, b, X], axis=1) * 2.0, [X, b]),
                lambda rng: {"X": rng.standard_normal((3, 4)), "b": rng.standard_normal((3, 2))},
                lambda X, b: 2 * np.concatenate([X, b, X], axis=1),
                lambda c, X, b: [2 * (c[:, :4] + c[:, 6:]), 2 * c[:, 4:6]])


STACKING = {
    "concatenate_named_and_fixed": _concat_case(),
    "concatenate_rows": Case(lambda: (sg.concatenate([_X34(), sg.tensor("k", (2, 4))]) ** 2,
                                      [_X34(), sg.tensor("k", (2, 4))]),
                             lambda rng: {"a": rng.standard_normal((3, 4)),
                                          "k": rng.standard_normal((2, 4))},
                             lambda a, k: np.concatenate([a, k]) ** 2),
    "concatenate_scalar_column": Case(lambda: (sg.concatenate([_X34(), 1.0], axis=-1), [_X34()]),
                                      lambda rng: {"a": rng.standard_normal((3, 4))},
                                      lambda a: np.hstack([a, np.ones((3, 1))])),
    "stack_leading": Case(lambda: (sg.stack([_X34(), sg.exp(_X34()), sg.tensor("k", (3, 4))]),
                                   [_X34(), sg.tensor("k", (3, 4))]),
                          lambda rng: {"a": rng.standard_normal((3, 4)),
                                       "k": rng.standard_normal((3, 4))},
                          lambda a, k: np.stack([a, np.exp(a), k])),
    "stack_last": Case(lambda: (sg.stack([_X34(), 2 * _X34()], axis=-1), [_X34()]),
                       lambda rng: {"a": rng.standard_normal((3, 4))},
                       lambda a: np.stack([a, 2 * a], axis=-1)),
    "var_rows": Case(lambda: (sg.var(_X34(), axis=1), [_X34()]),
                     lambda rng: {"a": rng.standard_normal((3, 4))}, lambda a: np.var(a, axis=1)),
    "var_all_ddof1": Case(lambda: (_X34().var(ddof=1), [_X34()]),
                          lambda rng: {"a": rng.standard_normal((3, 4))},
                          lambda a: np.var(a, ddof=1)),
    "std_rows_named": Case(lambda: (sg.std(_XN4(), axis=1, keepdims=True), [_XN4()]),
                           lambda rng: {"r": rng.standard_normal((5, 4))},
                           lambda r: np.std(r, axis=1, keepdims=True)),
    "std_cols_ddof1": Case(lambda: (_X34().std(axis=0, ddof=1), [_X34()]),
                           lambda rng: {"a": rng.standard_normal((3, 4))},
                           lambda a: np.std(a, axis=0, ddof=1)),
    "methods": Case(lambda: (_X34().reshape(2, 6).sum(axis=0) + _X34().mean() + _X34().max(),
                             [_X34()]),
                    lambda rng: {"a": rng.standard_normal((3, 4))},
                    lambda a: a.reshape(2, 6).sum(axis=0) + a.mean() + a.max()),
}


@pytest.mark.parametrize("name", list(STACKING))
def test_concatenate_stack_var(backend, name):
    check_case(STACKING[name], backend, seed=zlib.crc32(name.encode()))


def test_concatenate_shapes_and_errors():
    X, b = sg.tensor("X", ("N", "D")), sg.tensor("b", ("N", 1))
    assert sg.ir.shapes.fmt(sg.concatenate([X, b], axis=1).shape) == "(N, D + 1)"
    assert sg.concatenate([X, X], axis=0).shape[0] == sg.ir.shapes.dim_of("2*N" and
                                                                        2 * sg.ir.shapes.symbol("N"))
    with pytest.raises(sg.ShapeError, match="differ in another axis"):
        sg.concatenate([X, sg.tensor("k", (3, 1))], axis=1)
    with pytest.raises(sg.ArgumentError, match="list of tensors"):
        sg.concatenate(X)
    with pytest.raises(sg.ShapeError, match="one shape"):
        sg.stack([X, b])
    with pytest.raises(sg.ArgumentError, match="int axis"):
        sg.stack([X, X], axis=None)
    with pytest.raises(sg.ArgumentError, match="out of range"):
        sg.stack([X, X], axis=3)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_matches_numpy(backend, axis):
    x = sg.tensor("x", ("N", 4))
    fn = compile_cached(sg.argmax(x, axis=axis), backend)
    x0 = np.array([[1.0, 3.0, 3.0, 0.0], [-np.inf, -np.inf, -np.inf, -np.inf],
                   [0.0, np.nan, 5.0, np.nan], [2.0, 1.0, 0.0, 2.0]])
    got = fn(x=x0)
    expected = np.argmax(x0, axis=axis)
    np.testing.assert_array_equal(got, expected)
    assert np.asarray(got).dtype == np.int64


def test_argmax_accuracy_and_no_gradient(backend):
    S, y = sg.tensor("S", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    accuracy = sg.mean(sg.equal(sg.argmax(S, axis=1), y))
    fn = compile_cached(accuracy, backend)
    S0 = np.array([[0.1, 0.5, 0.2], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert fn(S=S0, y=np.array([1, 1, 2])) == pytest.approx(2 / 3)
    loss = sg.sum(S) + accuracy
    with pytest.raises(sg.GraphError, match="cannot differentiate through argmax"):
        sg.grad(loss, S)
    ok = sg.sum(S) + sg.mean(sg.equal(sg.argmax(sg.stop_gradient(S), axis=1), y))
    _, g = value_and_grad_cached(ok, S, backend)(S=S0, y=np.array([1, 1, 2]))
    np.testing.assert_array_equal(g, np.ones((3, 3)))


def test_look_alike_names_stay_apart(backend):
    # NFKC folds "ℕ" into "N" in Python identifiers; generated code must keep them apart
    a, b = sg.tensor("ℕ", ("ℕ",)), sg.tensor("N", ("N",))
    f = sg.sum(a * 2.0) + sg.sum(b) * 10.0
    fn = sg.value_and_grad(f, [a, b], backend=backend)
    value, (ga, gb) = fn(**{"ℕ": np.arange(5.0), "N": np.ones(2)})
    assert value == 2 * 10.0 + 10 * 2.0
    np.testing.assert_array_equal(ga, np.full(5, 2.0))
    np.testing.assert_array_equal(gb, np.full(2, 10.0))
    # and the other way round: a long N and a short ℕ (the kernel must not reuse sizes)
    value, (ga, gb) = fn(**{"ℕ": np.ones(1), "N": np.arange(300.0)})
    assert value == 2.0 + 10 * np.sum(np.arange(300.0))
    assert ga.shape == (1,) and gb.shape == (300,)


def _package_imports(path, package):
    """The symgrad modules a file imports (relative imports resolved)."""
    import ast
    import importlib.util

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found |= {base} if node.module else {f"{base}.{a.name}" for a in node.names}
    return found


def test_op_modules_import_in_one_direction():
    # ir at the bottom imports nothing above it; within ops/ the modules form a chain
    # (elementwise <- core <- layout, reductions, labels <- linalg <- api): no import
    # circle, lazy or not (docs/design.md, "The pipeline")
    import pathlib

    root = pathlib.Path(sg.__file__).parent
    graph = {}
    for folder in ("ir", "ops"):
        for path in (root / folder).glob("*.py"):
            name = f"symgrad.{folder}.{path.stem}"
            deps = _package_imports(path, f"symgrad.{folder}")
            if folder == "ir":
                assert all(d.startswith(("symgrad.ir", "symgrad.errors")) for d in deps), name
            graph[name] = {d for d in deps if d.startswith("symgrad.ops.")}
    assert not graph["symgrad.ops.elementwise"]  # pure SymPy: everything may import it
    done, active = set(), []

    def visit(name):
        assert name not in active, f"import circle: {' -> '.join(active + [name])}"
        if name not in done:
            active.append(name)
            for dep in graph.get(name, ()):
                visit(dep)
            active.pop()
            done.add(name)

    for name in graph:
        visit(name)
