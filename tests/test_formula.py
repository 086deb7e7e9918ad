"""sg.formula / sg.pretty / node repr: the hand forms of the course's gradients, asserted as
text AND evaluated with NumPy against the compiled gradient (so the rewrites that make the
hand form keep the value)."""

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(0)
N, D, C = 7, 5, 3


def linear():
    X, W = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    return X, W, y


def values():
    return dict(
        X=RNG.normal(size=(N, D)), W=RNG.normal(size=(D, C)), y=RNG.integers(0, C, N), lam=0.3
    )


def used(graphs, vals):
    names = {n.name for n in sg.ir.inputs_of(graphs)}
    return {k: v for k, v in vals.items() if k in names}


def assert_evaluates_to_gradient(f, graphs, vals):
    expected = sg.compile(graphs, backend="numpy")(**used(graphs, vals))
    got = f.evaluate(**used(graphs, vals))
    for g, e in zip(got if len(graphs) > 1 else [got], expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_softmax_cross_entropy_plus_l2_is_the_hand_form():
    X, W, y = linear()
    lam = sg.tensor("lam")
    dW = sg.grad(sg.losses.softmax_cross_entropy(X @ W, y) + lam * sg.losses.l2(W), W)
    f = sg.formula({"dW": dW})
    assert str(f) == "Y = onehot(y)\ndW = Xᵀ(softmax(XW) - Y)/N + 2·lam·W"
    assert_evaluates_to_gradient(f, [dW], values())
    # and it is the course's formula, transcribed by hand into NumPy
    v = values()
    S = v["X"] @ v["W"]
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    hand = v["X"].T @ (P - np.eye(C)[v["y"]]) / N + 2 * v["lam"] * v["W"]
    np.testing.assert_allclose(f.evaluate(**used([dW], v)), hand, rtol=1e-12)
    assert r"\operatorname{softmax}" in f.latex and r"X^{\top}" in f.latex


def test_hinge_is_the_margin_mask_and_its_row_count():
    X, W, y = linear()
    dW = sg.grad(sg.losses.multiclass_hinge(X @ W, y) + 1e-3 * sg.losses.l2(W), W)
    f = sg.formula({"dW": dW})
    assert str(f) == (
        "Y = onehot(y)\n"
        "M = [XW - pick(XW, y) + 1 > 0] ⊙ (1 - Y)\n"
        "dW = Xᵀ(M - Y ⊙ sum(M, axis=1))/N + 0.002·W"
    )
    assert_evaluates_to_gradient(f, [dW], values())


def test_two_layer_net_is_the_slide_with_the_users_names():
    x, y = sg.tensor("x", ("N", 6)), sg.tensor("y", ("N", 2))
    w1, w2 = sg.tensor("w1", (6, 4)), sg.tensor("w2", (4, 2))
    h = sg.sigmoid(x @ w1)
    y_pred = h @ w2
    loss = sg.losses.squared_error(y_pred, y)
    g1, g2 = sg.grad(loss, [w1, w2])
    named = sg.formula(
        {"grad_w1": g1, "grad_w2": g2},
        names={"h": h, "y_pred": y_pred, "grad_y_pred": sg.grad(loss, y_pred)},
    )
    assert str(named).splitlines() == [
        "h = σ(x · w1)",
        "y_pred = h · w2",
        "grad_y_pred = 2·(y_pred - y)",
        "grad_w1 = xᵀ((grad_y_pred · w2ᵀ) ⊙ h ⊙ (1 - h))",
        "grad_w2 = hᵀ · grad_y_pred",
    ]
    plain = sg.formula({"grad_w1": g1, "grad_w2": g2})  # without names: h found, A shared
    assert "grad_w1 = 2·xᵀ((A · w2ᵀ) ⊙ h ⊙ (1 - h))" in str(plain)
    vals = dict(
        x=RNG.normal(size=(5, 6)),
        y=RNG.normal(size=(5, 2)),
        w1=RNG.normal(size=(6, 4)),
        w2=RNG.normal(size=(4, 2)),
    )
    for f in (named, plain):
        assert_evaluates_to_gradient(f, [g1, g2], vals)


@pytest.mark.parametrize(
    "make",
    [
        lambda X, y: sg.sum(sg.max(X, axis=1)),
        lambda X, y: sg.sum(sg.logsumexp(X, axis=1)),
        lambda X, y: sg.sum(sg.reshape(X, (3, "N")) * X.T),
        lambda X, y: sg.sum(sg.log_softmax(X) * sg.softmax(X)),
        lambda X, y: sg.sum(sg.tanh(X) * sg.gelu(X) / (1 + X**2)),
        lambda X, y: sg.sum(sg.where(X > 0, X, 2 * X) ** 2 + sg.abs(X) + sg.elu(X)),
        lambda X, y: sg.losses.softmax_cross_entropy(X, y, reduction="sum"),
        lambda X, y: sg.sum(sg.pick(sg.softmax(X), y) * sg.mean(X, axis=1)),
    ],
    ids=["max", "logsumexp", "reshape", "entropy", "smooth", "kinks", "xent", "pick"],
)
def test_any_gradient_formula_evaluates_to_the_gradient(make):
    X, y = sg.tensor("X", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    g = sg.grad(make(X, y), X)
    vals = dict(X=RNG.permutation(12).reshape(4, 3) / 5 - 1.1, y=np.array([0, 2, 1, 1]))
    for optimize in (True, False):
        assert_evaluates_to_gradient(sg.formula(g, optimize=optimize), [g], vals)


def test_slices_and_concatenation_read_as_written():
    X = sg.tensor("X", ("N", 4))
    assert sg.pretty(X[1:, ::2]) == "X[1:N, :4:2]"
    assert sg.pretty(sg.concatenate([X, 1.0], axis=1)) == "concat(X, 1, axis=1)"


def test_softmax_and_sigmoid_are_recognised_in_forward_graphs():
    X, W, y = linear()
    assert sg.pretty(sg.softmax(X @ W)) == "softmax(XW)"
    assert (
        sg.pretty(sg.losses.softmax_cross_entropy(X @ W, y)) == "-sum(pick(log_softmax(XW), y))/N"
    )
    x, z = sg.symbols("x z")
    assert sg.pretty(sg.grad(sg.sigmoid(x) * z, x)) == "z·σ(x)·(1 - σ(x))"


def test_node_repr_shows_formula_and_shape():
    X, W, _ = linear()
    assert repr(sg.softmax(X @ W)) == "<tensor (N, C) float64: softmax(XW)>"
    assert repr(sg.exp(X @ W - sg.max(X @ W, axis=1, keepdims=True))) == (
        "<tensor (N, C) float64: exp(XW - max(XW, axis=1))>"
    )
    assert repr(X) == "tensor('X', (N, D), float64)"
    x, y, z = sg.symbols("x y z")
    assert repr((x + y) * z) == "<tensor () float64: z·(x + y)>"
    assert (x + y)._repr_latex_() == "$x + y$"
    assert (X @ W)._repr_latex_() is None  # LaTeX for scalar graphs only


def test_repr_of_a_big_graph_is_instant_and_short():
    x = sg.tensor("x", (3,))
    for _ in range(2000):
        x = sg.tanh(x) + 1
    text = repr(x)
    assert text.startswith("<tensor (3,) float64: ") and len(text) < 150


def test_unknown_functions_print_by_name():
    # a SymPy function the printers have never seen (as a custom op might be) prints by name
    import sympy as sp

    from symgrad.formula import TeXPrinter, TextPrinter

    class frobnicate(sp.Function):
        pass

    e = frobnicate(sp.Symbol("x")) + 1
    assert TextPrinter().doprint(e) == "frobnicate(x) + 1"
    assert "frobnicate" in TeXPrinter().doprint(e)
