"""backend="auto": the interpreter answers at once, the Numba kernel takes over when compiled.

The background compile is held at a gate (``numba_backend.build`` wrapped) so that a test
decides when the switch happens; a failure is injected the same way.
"""

import threading

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import numba_backend

RTOL = 1e-12  # the tiers agree to rounding (tests/test_properties.py, backends agree)


def close(got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want), initial=0.0) <= RTOL * max(np.max(np.abs(want)), 1.0)


def model():
    X = sg.tensor("X", ("N", "D"))
    y = sg.tensor("y", ("N",), dtype="int64")
    W = sg.tensor("W", ("D", "C"))
    s = sg.tensor("s", ())
    loss = sg.losses.softmax_cross_entropy(sg.tanh(X @ W) * s, y) + 0.5 * sg.sum(W**2)
    # a scalar formula the backward reads: the interpreter saves it as a 0-d array
    return loss + sg.exp(0.1 * sg.sum(W)) * s, [W, s]


def inputs(seed=0, n=7):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.normal(size=(n, 4)),
        "y": rng.integers(0, 3, n),
        "W": rng.normal(size=(4, 3)),
        "s": 1.5,
    }


@pytest.fixture(scope="module")
def reference():
    loss, wrt = model()
    return sg.value_and_grad(loss, wrt, backend="numpy")


@pytest.fixture
def gate(monkeypatch):
    """Background compiles wait until ``gate.set()``."""
    real, opened = numba_backend.build, threading.Event()

    def held(*args, **kwargs):
        assert opened.wait(120), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(numba_backend, "build", held)
    yield opened
    opened.set()


def test_switches_tiers_mid_loop_with_no_call_lost(gate, reference):
    loss, wrt = model()
    vg = sg.value_and_grad(loss, wrt, backend="auto")
    assert not vg.ready() and vg.stats.tier == "numpy"
    tiers = []
    for k in range(8):
        if k == 3:
            gate.set()
            assert vg.wait(120)
        x = inputs(k)
        value, grads = vg(**x)
        tiers.append(vg.stats.tier)
        want_value, want_grads = reference(**x)
        close(value, want_value)
        for g, w in zip(grads, want_grads):
            close(g, w)
        assert isinstance(value, float) and isinstance(grads[1], float)
    assert tiers == ["numpy"] * 3 + ["numba"] * 5
    assert (vg.stats.numpy_calls, vg.stats.numba_calls) == (3, 5)
    assert vg.ready() and "@kernel_jit" in vg.source


def test_free_running_loop_switches_without_gate(reference):
    loss, wrt = model()
    vg = sg.value_and_grad(loss, wrt, backend="auto")
    x = inputs(1)
    want_value, want_grads = reference(**x)
    calls = 0
    while calls < 2 or not vg.ready():  # as an interactive loop would, until Numba runs
        value, grads = vg(**x)
        calls += 1
        close(value, want_value)
    value, grads = vg(**x)
    close(value, want_value)
    close(grads[0], want_grads[0])
    stats = vg.stats
    assert stats.tier == "numba" and stats.numpy_calls + stats.numba_calls == calls + 1


def test_background_failure_surfaces_on_the_next_call(monkeypatch, reference):
    attempted, fail = threading.Event(), threading.Event()

    def broken(*args, **kwargs):
        attempted.set()
        assert fail.wait(120)
        raise RuntimeError("injected codegen failure")

    monkeypatch.setattr(numba_backend, "build", broken)
    loss, wrt = model()
    vg = sg.value_and_grad(loss, wrt, backend="auto")
    x = inputs(2)
    close(vg(**x)[0], reference(**x)[0])  # before the failure: the interpreter answers
    assert attempted.wait(120)
    fail.set()
    with pytest.raises(sg.CompileError, match="injected codegen failure") as info:
        vg.wait(120)
    assert isinstance(info.value, sg.SymgradError)
    assert isinstance(info.value.__cause__, RuntimeError)
    for _ in range(2):  # every later call reports it: never silently interpreted
        with pytest.raises(sg.CompileError, match="injected codegen failure"):
            vg(**x)
    assert vg.stats.numpy_calls == 1 and not vg.ready()


def test_forward_and_backward_across_tiers(gate, reference):
    """forward() on the interpreter, backward() on the kernel with those residuals, and
    the other way round: the residual layout is the same in both tiers."""
    loss, wrt = model()
    vg = sg.value_and_grad(loss, wrt, backend="auto")
    x = inputs(3)
    want_value, want_grads = reference(**x)
    value, residuals = vg.forward(**x)  # both split programs now compile behind the gate
    close(value, want_value)
    assert any(type(v) is np.ndarray and v.ndim == 0 for v in residuals.saved)
    assert not vg.ready()
    gate.set()
    assert vg.wait(120) and vg.ready()
    grads = vg.backward(residuals)  # numba kernel, interpreter's residuals (0-d scalars too)
    for g, w in zip(grads, want_grads):
        close(g, w)
    value, residuals = vg.forward(**x)
    for g, w in zip(vg.backward(residuals), want_grads):
        close(g, w)
    forward_source, backward_source = vg.split_source
    assert "def forward(" in forward_source and "def backward(" in backward_source


def test_compile_forward_only_under_auto(gate):
    x, y = sg.symbols("x y")
    fwd = sg.compile([x * y, sg.exp(x) + y], backend="auto")
    assert fwd(x=0.5, y=2.0) == pytest.approx((1.0, np.exp(0.5) + 2.0), rel=RTOL)
    assert fwd.stats.tier == "numpy"
    gate.set()
    fwd.wait(120)
    assert fwd(x=0.5, y=2.0) == pytest.approx((1.0, np.exp(0.5) + 2.0), rel=RTOL)
    assert fwd.stats.tier == "numba"


def test_numba_and_numpy_backends_are_ready_at_once():
    x, y = sg.symbols("x y")
    for backend in ("numba", "numpy"):
        f = sg.value_and_grad(x * y, [x, y], backend=backend)
        assert f.ready() and f.wait(0) and f.stats.tier == backend
        assert f(x=2.0, y=3.0) == (6.0, [3.0, 2.0])


def test_unknown_backend_names_the_choices():
    x = sg.symbols("x")
    with pytest.raises(sg.ArgumentError, match="auto"):
        sg.compile(x, backend="jax")
