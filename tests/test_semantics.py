"""Regression tests for the NaN semantics of piecewise ops (issue 7, ported from branch i7),
both backends.

The expected values are NumPy's for the graph as written, computed here with NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg


def run(f, backend, **inputs):
    return sg.compile(f, backend=backend)(**inputs)


def same(got, want):
    """Equal as NumPy compares, NaN equal to NaN, and the same dtype for arrays."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(got, want)
    if want.ndim:
        assert got.dtype == want.dtype, (got.dtype, want.dtype)


# --- NaN propagates -------------------------------------------------------------------

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


def test_where_with_scalar_branch_under_piecewise_ops(backend):
    # NumPy's printer wrote And/Or as logical_and.reduce((a, b)): "inhomogeneous shape"
    v = sg.tensor("v", (3,))
    f = sg.relu(sg.maximum(sg.where(v > 0, 1.0, v), v - 1))
    x = np.array([-1.0, 0.5, 3.0])
    same(run(f, backend, v=x), np.maximum(np.maximum(np.where(x > 0, 1.0, x), x - 1), 0))
    g = sg.where(sg.greater_equal(v, v), sg.minimum(v, 2.0), 0.0)
    same(run(g, backend, v=x), np.where(x >= x, np.minimum(x, 2.0), 0.0))


def test_kink_conventions_hold(backend):
    # the branches were reordered so NaN takes the propagating one: the derivative at the
    # kink is still owned by the documented branch (relu'(0) = 0, leaky_relu'(0) = alpha)
    v = sg.tensor("v", (3,))
    x = np.array([-1.0, 0.0, 2.0])
    _, g = sg.value_and_grad(sg.sum(sg.relu(v)), v, backend=backend)(v=x)
    same(g, np.array([0.0, 0.0, 1.0]))
    _, g = sg.value_and_grad(sg.sum(sg.leaky_relu(v, 0.1)), v, backend=backend)(v=x)
    same(g, np.array([0.1, 0.1, 1.0]))
