"""sg.check_grad: the public gradient check passes right derivatives on both backends and
fails (a SymgradError) on a deliberately wrong one."""

import numpy as np
import pytest

import symgrad as sg
from symgrad.ops import layout, linalg


def linear_loss():
    X, W = sg.tensor("X", ("N", 4)), sg.tensor("W", (4, 3))
    y = sg.tensor("y", ("N",), dtype="int64")
    rng = np.random.default_rng(0)
    values = dict(X=rng.normal(size=(6, 4)), W=rng.normal(size=(4, 3)), y=rng.integers(0, 3, 6))
    return sg.losses.softmax_cross_entropy(X @ W, y) + 0.1 * sg.losses.l2(W), X, W, values


def test_report_per_backend_and_input():
    loss, X, W, values = linear_loss()
    report = sg.check_grad(loss, [X, W], **values)
    assert report.ok and {(r.backend, r.input) for r in report.rows} == {
        ("numpy", "X"),
        ("numpy", "W"),
        ("numba", "X"),
        ("numba", "W"),
    }
    assert report.max_error("W") < 1e-6
    assert "max rel err" in str(report)
    assert np.shape(report.grads[1]) == (4, 3)


def test_non_scalar_f_is_checked_through_a_cotangent():
    v = sg.tensor("v", (5,))
    assert sg.check_grad(sg.tanh(v) * v, v, backends=["numpy"], v=np.linspace(-1, 1, 5)).ok


def wrong_matmul(node, g):  # right for a, 1% too big for b
    a, b = node.inputs
    return linalg.matmul(g, layout.transpose(b)), 1.01 * linalg.matmul(layout.transpose(a), g)


def test_a_wrong_derivative_fails(monkeypatch):
    loss, X, W, values = linear_loss()
    monkeypatch.setattr(linalg.MATMUL, "vjp", wrong_matmul)
    with pytest.raises(sg.GradientCheckError, match="gradient check failed") as info:
        sg.check_grad(loss, [X, W], backends=["numpy"], **values)
    assert isinstance(info.value, sg.SymgradError) and "'W'" in str(info.value)
    report = sg.check_grad(loss, [X, W], backends=["numpy"], raise_on_failure=False, **values)
    assert [r.input for r in report.failures] == ["W"]  # X's rule is still right


def test_a_wrong_gradient_function_fails():
    x = sg.tensor("x", (3,))
    f = sg.sum(sg.exp(x))
    ok = lambda x: (float(np.sum(np.exp(x))), [np.exp(x)])
    off = lambda x: (float(np.sum(np.exp(x))), [np.exp(x) * (1 + 1e-4)])
    assert sg.check_grad(f, x, grad_fn=ok, x=np.zeros(3)).ok
    with pytest.raises(sg.GradientCheckError):
        sg.check_grad(f, x, grad_fn=off, x=np.zeros(3))
