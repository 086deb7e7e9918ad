"""The one-function call of a Numba-compiled function (``compile._fast_call``) checks
exactly what the full path checks: every call gives what the NumPy backend (which has no
such shortcut) gives, result or error, for good and bad inputs alike."""

import numpy as np
import pytest

import symgrad as sg


def outcome(f, args=(), **kwargs):
    try:
        result = f(*args, **kwargs)
    except sg.SymgradError as exc:
        return type(exc).__name__, str(exc)
    return "ok", result


def same(a, b):
    if a[0] != "ok" or b[0] != "ok":
        assert a == b
        return
    va, vb = a[1], b[1]
    assert type(va) is type(vb)
    if isinstance(va, tuple):
        assert va[0] == pytest.approx(vb[0], rel=1e-12, nan_ok=True) and type(va[0]) is type(vb[0])
        for ga, gb in zip(va[1], vb[1]):
            assert type(ga) is type(gb)
            np.testing.assert_allclose(ga, gb, rtol=1e-12, equal_nan=True)
    else:
        assert va == pytest.approx(vb, rel=1e-12)


def both(f, wrt, **kw):
    return [sg.value_and_grad(f, wrt, backend=b, **kw) for b in ("numba", "numpy")]


@pytest.mark.parametrize("names", ["x y z", "ℕ y z", "float y z", "a0 self r", "_x y lambda"])
def test_scalar_inputs(names):
    x, y, z = (sg.tensor(n, ()) for n in names.split())
    fast, slow = both((x + y) * z, [x, y, z])
    nx, ny, nz = names.split()
    calls = [
        {nx: 0.3, ny: -1.2, nz: 0.7},
        {nx: 1, ny: 2, nz: 3},  # ints: converted
        {nx: np.float64(0.5), ny: np.float32(2.0), nz: True},
        {nx: np.array(0.5), ny: 1.0, nz: 2.0},
        {nx: np.ones(2), ny: 1.0, nz: 2.0},  # not a scalar
        {nx: "a", ny: 1.0, nz: 2.0},
        {nx: None, ny: 1.0, nz: 2.0},
        {nx: 1.0, ny: 1.0},  # missing
        {nx: 1.0, ny: 1.0, nz: 2.0, "w": 3.0},  # unknown
        {nx: float("nan"), ny: float("inf"), nz: -0.0},
    ]
    for kw in calls:
        same(outcome(fast, **kw), outcome(slow, **kw))
    same(outcome(fast, (1.0,), **calls[0]), outcome(slow, (1.0,), **calls[0]))


def test_array_and_label_inputs():
    X = sg.tensor("X", ("N", 3))
    y = sg.tensor("y", ("N",), dtype="int64")
    k = sg.tensor("k", (), dtype="int64")
    f = sg.sum(sg.pick(X, y) * 0.5) + sg.sum(X * 2.0) * k
    fast, slow = both(f, X)
    good = {"X": np.arange(6.0).reshape(2, 3), "y": np.array([0, 2]), "k": 3}
    calls = [
        good,
        dict(good, X=np.asfortranarray(np.arange(6.0).reshape(2, 3))),
        dict(good, X=np.arange(6.0).reshape(3, 2).T),  # a non-contiguous view
        dict(good, X=np.arange(6, dtype=np.float32).reshape(2, 3)),
        dict(good, X=np.ones((2, 4))),
        dict(good, X=np.ones(3)),
        dict(good, y=np.array([0, 3])),
        dict(good, y=np.array([-1, 0])),
        dict(good, y=np.array([0.0, 1.0])),
        dict(good, y=np.array([0, 1, 2])),
        dict(good, k=2**63),
        dict(good, k=1.5),
        dict(good, k=True),
    ]
    for kw in calls:
        same(outcome(fast, **kw), outcome(slow, **kw))
    # the arrays returned are the caller's own: fresh and writable
    value, grad = fast(**good)
    assert grad.flags.writeable and grad.flags.c_contiguous
    again = fast(**good)[1]
    assert again is not grad


def test_the_fast_path_is_taken_for_values_in_final_form():
    x, y = sg.symbols("x y")
    f = sg.compile(x * y)
    assert "__call__" in type(f).__dict__  # its own generated call
    assert isinstance(f, sg.Compiled) and repr(f).startswith("<symgrad.Compiled")
    calls = []
    original = f.signature.bind
    f.signature.bind = lambda kw: calls.append(kw) or original(kw)
    assert f(x=2.0, y=3.0) == 6.0 and calls == []
    assert f(x=2, y=3.0) == 6.0 and len(calls) == 1  # an int needs converting: full path


@pytest.mark.parametrize("name", ["v", "r"])  # a parameter, and a name that cannot be one
def test_expression_dims_are_checked_on_the_fast_path(name):
    v = sg.tensor(name, ("N", 3))
    w = sg.tensor("w", ("N",))
    # a step slice of a named dim: its size is an expression (ceil(N / 2)) that the checks
    # compute at call time
    f = sg.sum(v[::2] * 2.0) + sg.sum(w)
    fast, slow = both(f, v)
    for n in (0, 1, 4, 5):
        kw = {name: np.ones((n, 3)), "w": np.ones(n)}
        same(outcome(fast, **kw), outcome(slow, **kw))
    kw = {name: np.ones((4, 3)), "w": np.ones(3)}
    same(outcome(fast, **kw), outcome(slow, **kw))
