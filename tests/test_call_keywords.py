"""Calls take inputs by keyword; ``inputs=[...]`` declares more (issue 7, item 5)."""

import numpy as np
import pytest

import symgrad as sg


def test_positional_call_lists_the_keywords(backend):
    a, b = sg.symbols("a b")
    vg = sg.value_and_grad(a * b, [a, b], backend=backend)
    with pytest.raises(sg.SymgradError, match=r"a=\.\.\., b=\.\.\."):
        vg(1.0, 2.0)
    with pytest.raises(sg.SymgradError, match="keyword"):
        vg.forward(1.0, 2.0)
    with pytest.raises(sg.SymgradError, match="keyword"):
        sg.compile(a + b, backend=backend)(1.0, b=2.0)


def test_compile_declares_more_inputs(backend):
    x = sg.tensor("x", ("N",))
    W = sg.tensor("W", ("D", "H"))
    f = sg.sum(x * 2.0)
    gw = sg.grad(f, W)  # zeros of W's shape: its dims are bound by W alone
    c = sg.compile([f, gw], backend=backend, inputs=[W])
    assert c.input_names == ["W", "x"]
    value, grad = c(x=np.ones(3), W=np.ones((2, 4)))
    assert value == 6.0
    np.testing.assert_array_equal(grad, np.zeros((2, 4)))
    with pytest.raises(sg.SymgradError):
        sg.compile(f, backend=backend, inputs=[x * 2])
