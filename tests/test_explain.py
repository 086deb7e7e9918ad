"""sg.explain: the slide exactly, and on a small MLP steps whose products add up to the
compiled gradients."""

import numpy as np
import pytest

import symgrad as sg


def slide():
    x, y, z = sg.symbols("x y z")
    return sg.explain((x + y) * z, [x, y, z], x=-2.0, y=5.0, z=-4.0)


def test_the_slide_exactly():
    e = slide()
    assert [(s.name, s.formula, s.value, s.upstream) for s in e.steps] == [
        ("f", "q·z", -12.0, 1.0),
        ("q", "x + y", 3.0, -4.0),
    ]
    f, q = e.steps
    assert [(t.input, t.local, t.local_value, t.value) for t in f.terms] == [
        ("q", "z", -4.0, -4.0),
        ("z", "q", 3.0, 3.0),
    ]
    assert [(t.input, t.local, t.local_value, t.value) for t in q.terms] == [
        ("x", "1", 1.0, -4.0),
        ("y", "1", 1.0, -4.0),
    ]
    assert e.grads == {"x": -4.0, "y": -4.0, "z": 3.0}
    text = str(e)
    for line in [
        "q = x + y = 3",
        "f = q·z = -12",
        "∂f/∂q = z = -4",
        "∂f/∂z = q = 3",
        "∂q/∂x = 1, ∂q/∂y = 1",
        "∂f/∂x = ∂f/∂q · ∂q/∂x = -4 · 1 = -4",
        "∂f/∂y = ∂f/∂q · ∂q/∂y = -4 · 1 = -4",
    ]:
        assert line in text, line


def test_latex_and_tables():
    e = slide()
    latex = e._repr_latex_()
    assert (
        latex.startswith("$")
        and r"\frac{\partial f}{\partial y}" in latex
        and "-4 \\cdot 1 = -4" in latex
    )
    plain = e.table(rich=False)
    assert "local gradient" in plain and "x + y" in plain
    fancy = e.table(rich=True)
    assert "┃" in fancy and "q·z" in fancy


def mlp():
    x, y = sg.tensor("x", ("N", 4)), sg.tensor("y", ("N", 2))
    w1, w2, b1 = sg.tensor("w1", (4, 3)), sg.tensor("w2", (3, 2)), sg.tensor("b1", (3,))
    h = sg.sigmoid(x @ w1 + b1)
    loss = sg.losses.squared_error(h @ w2, y) + 0.1 * sg.losses.l2(w1, w2)
    rng = np.random.default_rng(3)
    values = dict(
        x=rng.normal(size=(5, 4)),
        y=rng.normal(size=(5, 2)),
        w1=rng.normal(size=(4, 3)),
        w2=rng.normal(size=(3, 2)),
        b1=rng.normal(size=3),
    )
    return loss, [w1, w2, b1], h, values


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mlp_products_add_up_to_the_gradients(backend):
    loss, wrt, h, values = mlp()
    e = sg.explain(loss, wrt, names={"h": h}, output="L", **values)
    value, grads = sg.value_and_grad(loss, wrt, backend=backend)(**values)
    for w, g in zip(wrt, grads):
        sent = [t.value for s in e.steps for t in s.terms if t.input == w.name]
        assert len(sent) == (1 if w.name == "b1" else 2)  # the weights are in l2 too
        np.testing.assert_allclose(sum(sent), g, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(e.grads[w.name], g, rtol=1e-10, atol=1e-12)
    # every step: upstream = the sum of what its users sent; elementwise: upstream * local
    for s in e.steps:
        np.testing.assert_allclose(s.upstream, sum(v for _, v in s.parts), rtol=1e-12)
    step_h = next(s for s in e.steps if s.name == "h")
    (term,) = step_h.terms
    assert term.local == "h ⊙ (1 - h)"
    np.testing.assert_allclose(term.value, step_h.upstream * term.local_value, rtol=1e-12)
    assert np.shape(step_h.value) == (5, 3) and step_h.shape == ("N", 3)
    assert "(5, 3) [" in str(e) and "∂L/∂w2 += hᵀ · ∂L/∂" in str(e)


def test_errors_name_what_is_missing():
    x, y = sg.symbols("x y")
    with pytest.raises(sg.ArgumentError, match="'y'"):
        sg.explain(x * y, [x], x=1.0)
    with pytest.raises(sg.GraphError, match="scalar"):
        sg.explain(sg.tensor("v", (3,)) * 2, None, v=np.ones(3))
    # the same rule as sg.grad decides which nodes carry a gradient
    v = sg.tensor("v", (3,))
    through_argmax = sg.sum(sg.argmax(v, axis=0) * v)
    with pytest.raises(sg.GraphError, match="cannot differentiate through argmax"):
        sg.explain(through_argmax, [v], v=np.ones(3))
    stopped = sg.sum(sg.argmax(sg.stop_gradient(v), axis=0) * v)
    assert sg.explain(stopped, [v], v=np.arange(3.0)).grads["v"].tolist() == [2.0, 2.0, 2.0]
