"""Each user error of docs/design.md raises a ``sg.SymgradError`` subclass, which is also the
built-in exception that fits (``symgrad/errors.py``), and its message names the input and
what was expected.  Call-time checks run before any kernel, on both backends.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import compile_cached, value_and_grad_cached

import symgrad as sg

# The documented hierarchy: (class, built-in base)
HIERARCHY = [
    (sg.ShapeError, ValueError),
    (sg.LabelError, ValueError),
    (sg.GraphError, ValueError),
    (sg.DTypeError, TypeError),
    (sg.ArgumentError, TypeError),
]


@pytest.mark.parametrize("cls, base", HIERARCHY, ids=[c.__name__ for c, _ in HIERARCHY])
def test_error_hierarchy(cls, base):
    assert issubclass(cls, sg.SymgradError) and issubclass(cls, base)


def expect(cls, fn, *needles):
    """``fn()`` raises ``cls`` (a SymgradError and its documented built-in base) whose
    message contains every needle."""
    base = dict(HIERARCHY)[cls]
    with pytest.raises(cls) as info:
        fn()
    err = info.value
    assert isinstance(err, sg.SymgradError) and isinstance(err, base)
    message = str(err)
    for needle in needles:
        assert needle in message, f"{needle!r} not in message {message!r}"
    return message


def _linear():
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", 10))
    y = sg.tensor("y", ("N",), dtype="int64")
    return sg.losses.softmax_cross_entropy(X @ W, y) + 1e-3 * sg.losses.l2(W), W


def _call(backend):
    f, W = _linear()
    return value_and_grad_cached(f, W, backend)


def good(n=64, d=5):
    return {"X": np.zeros((n, d)), "W": np.zeros((d, 10)), "y": np.arange(n) % 10}


def test_good_inputs_run(backend):
    value, g = _call(backend)(**good())
    assert value == pytest.approx(np.log(10)) and g.shape == (5, 10)


# --- keywords ------------------------------------------------------------------------------


def test_missing_keyword(backend):
    inputs = good()
    del inputs["y"]
    expect(sg.ArgumentError, lambda: _call(backend)(**inputs), "'y'", "missing")


def test_unknown_keyword(backend):
    expect(sg.ArgumentError, lambda: _call(backend)(**good(), Z=np.zeros(3)), "'Z'", "unknown")


def test_positional_arguments_are_refused(backend):
    # inputs are keyword-only: a positional call is an ArgumentError (a TypeError) naming them
    with pytest.raises(TypeError):
        _call(backend)(np.zeros((64, 5)))


# --- shapes ----------------------------------------------------------------------------


def test_shape_contradicting_declared_int_dim(backend):
    inputs = dict(good(), W=np.zeros((5, 9)))
    expect(sg.ShapeError, lambda: _call(backend)(**inputs), "'W'", "10", "9")


def test_wrong_number_of_dims(backend):
    inputs = dict(good(), W=np.zeros((5, 10, 1)))
    expect(sg.ShapeError, lambda: _call(backend)(**inputs), "'W'", "2")


def test_inconsistent_named_dim_across_inputs(backend):
    inputs = dict(good(64), y=np.arange(65) % 10)
    expect(sg.ShapeError, lambda: _call(backend)(**inputs), "N", "64", "65", "'X'", "'y'")


def test_inconsistent_named_dim_between_weight_and_data(backend):
    inputs = dict(good(64, d=5), W=np.zeros((6, 10)))
    expect(sg.ShapeError, lambda: _call(backend)(**inputs), "D", "5", "6")


def test_shape_error_at_graph_build_time():
    A = sg.tensor("A", ("N", "D"))
    B = sg.tensor("B", ("N", "C"))
    expect(sg.ShapeError, lambda: A + B, "(N, D)", "(N, C)")
    expect(sg.ShapeError, lambda: sg.tensor("P", (3, 4)) * sg.tensor("Q", (3, 5)), "(3, 4)", "(3, 5)")
    # a name never broadcasts against another name (a fixed size binds it: see
    # test_fixed_size_binds_a_named_dim)
    expect(sg.ShapeError, lambda: A @ sg.tensor("M", ("C", 3)), "D", "C")
    expect(sg.ShapeError, lambda: sg.reshape(sg.tensor("P", (3, 4)), (5, 2)), "(3, 4)", "(5, 2)")
    expect(sg.ShapeError, lambda: sg.pick(B, sg.tensor("y", ("M",), dtype="int64")), "labels")


def test_fixed_size_binds_a_named_dim(backend):
    # S (N, C) + an array of 3 is valid and fixes C = 3 for that graph, checked at call time
    S = sg.tensor("S", ("N", "C"))
    f = sg.sum(sg.exp(S + np.array([1.0, 2.0, 3.0])) * sg.tensor("R", ("N", 3)))
    assert (S + np.array([1.0, 2.0, 3.0])).shape == ("N", 3)
    vg = sg.value_and_grad(f, [S], backend=backend)
    S0, R0 = np.random.default_rng(0).standard_normal((2, 2, 3))
    value, (g,) = vg(S=S0, R=R0)
    np.testing.assert_allclose(value, np.sum(np.exp(S0 + [1, 2, 3]) * R0), rtol=1e-13)
    np.testing.assert_allclose(g, np.exp(S0 + [1, 2, 3]) * R0, rtol=1e-13)
    expect(sg.ShapeError, lambda: vg(S=np.ones((2, 4)), R=R0), "dim C is 4", "fixed size 3")


# --- dtypes ----------------------------------------------------------------------------


def test_float_labels(backend):
    inputs = dict(good(), y=(np.arange(64) % 10).astype(np.float64))
    expect(sg.DTypeError, lambda: _call(backend)(**inputs), "'y'", "int64", "float64")


def test_non_numeric_input(backend):
    inputs = dict(good(), X=np.full((64, 5), "a"))
    expect(sg.DTypeError, lambda: _call(backend)(**inputs), "'X'", "float64")


def test_float_labels_at_graph_build_time():
    S = sg.tensor("S", ("N", 3))
    labels = sg.tensor("labels", ("N",))  # float64 by default
    expect(sg.DTypeError, lambda: sg.pick(S, labels), "int64", "labels")
    expect(sg.DTypeError, lambda: sg.one_hot(labels, 3), "int64", "labels")
    expect(sg.DTypeError, lambda: sg.losses.softmax_cross_entropy(S, labels), "int64")


def test_unsupported_dtype_declared():
    expect(sg.DTypeError, lambda: sg.tensor("Z", (3,), dtype="complex128"), "complex128")


# --- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [10, 11, -1, -100])
def test_label_out_of_range(backend, bad):
    labels = np.arange(64) % 10
    labels[37] = bad
    inputs = dict(good(), y=labels)
    expect(sg.LabelError, lambda: _call(backend)(**inputs), "'y'", str(bad), "[0, 10)", "37")


def test_label_out_of_range_named_classes(backend):
    # C is a named dim: the check uses its size in this call
    S = sg.tensor("S", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    vg = value_and_grad_cached(sg.losses.multiclass_hinge(S, y), S, backend)
    vg(S=np.zeros((3, 4)), y=np.array([0, 3, 2]))
    expect(sg.LabelError, lambda: vg(S=np.zeros((3, 4)), y=np.array([0, 4, 2])), "'y'", "4", "[0, 4)")
    expect(sg.LabelError, lambda: vg(S=np.zeros((3, 3)), y=np.array([0, 3, 2])), "'y'", "3", "[0, 3)")


def test_label_out_of_range_one_hot(backend):
    y = sg.tensor("y", ("N",), dtype="int64")
    fn = compile_cached(sg.one_hot(y, 3), backend)
    np.testing.assert_array_equal(fn(y=np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    expect(sg.LabelError, lambda: fn(y=np.array([2, 3])), "'y'", "3", "[0, 3)")


# --- grad ------------------------------------------------------------------------------


def test_non_scalar_loss_to_grad():
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", 10))
    expect(sg.GraphError, lambda: sg.grad(X @ W, W), "scalar", "(N, 10)")
    expect(sg.GraphError, lambda: sg.value_and_grad(X @ W, W, backend="numpy"), "scalar", "(N, 10)")
    expect(sg.GraphError, lambda: sg.grad(sg.sum(X, axis=0), [W]), "scalar", "(D,)")


def test_integer_tensor_in_wrt():
    f, W = _linear()
    y = sg.tensor("y", ("N",), dtype="int64")
    expect(sg.DTypeError, lambda: sg.grad(f, y), "'y'", "int64")
    expect(sg.DTypeError, lambda: sg.grad(f, [W, y]), "'y'", "int64")
    expect(sg.DTypeError, lambda: sg.value_and_grad(f, [W, y], backend="numpy"), "'y'", "int64")


def test_non_tensor_in_wrt():
    f, W = _linear()
    expect(sg.GraphError, lambda: sg.grad(f, [W, 3.0]), "float")
    # a bare number instead of a tensor is the same user error
    expect(sg.GraphError, lambda: sg.grad(f, 3.0), "float")


# --- options ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [2, -3, (0, 0), (0, 2)])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "logsumexp", "softmax", "log_softmax"])
def test_bad_axis(op, axis):
    X = sg.tensor("X", ("N", "D"))
    fn = getattr(sg, op)
    expect(sg.ArgumentError, lambda: fn(X, axis=axis), "axis", str(axis))


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "multiclass_hinge", "squared_error"])
def test_bad_reduction_name(loss):
    S = sg.tensor("S", ("N", 3))
    second = sg.tensor("y", ("N",), dtype="int64") if loss != "squared_error" else S
    fn = getattr(sg.losses, loss)
    expect(sg.ArgumentError, lambda: fn(S, second, reduction="avg"), "reduction", "'avg'",
           "mean", "sum", "none")


@pytest.mark.parametrize("bad", ["jax", "Numba", "", "torch"])
def test_bad_backend_name(bad):
    f, W = _linear()
    expect(sg.ArgumentError, lambda: sg.value_and_grad(f, W, backend=bad), repr(bad), "numba", "numpy")
    expect(sg.ArgumentError, lambda: sg.compile(f, backend=bad), repr(bad), "numba", "numpy")


def test_bad_tensor_declarations():
    expect(sg.ShapeError, lambda: sg.tensor("X", (3, -1)), "'X'", "-1")
    expect(sg.ShapeError, lambda: sg.tensor("X", ("N", 2.5)), "'X'", "2.5")
    expect(sg.ArgumentError, lambda: sg.tensor("not a name", (3,)), "'not a name'")


def test_inputs_are_not_modified_by_a_failing_call(backend):
    inputs = dict(good(), y=np.full(64, 10))
    before = {k: v.copy() for k, v in inputs.items()}
    with pytest.raises(sg.LabelError):
        _call(backend)(**inputs)
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], before[k])
