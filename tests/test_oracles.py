"""Gradients against the hand derivations of the course, and the gradient checker itself.

Oracles: the backprop slide f = (x + y) * z, the vectorised multiclass-SVM (hinge) and
softmax gradients with L2 regularisation on CIFAR-like shapes (D = 3073 = 32*32*3 + bias,
C = 10), the lecture's two-layer sigmoid network trained in NumPy, and the losses'
``reduction`` variants against NumPy formulas.  Every compiled function is cached per
(graph, backend) so the numba backend compiles each graph once.
"""

import numpy as np
import pytest
import sympy as sp
from gradcheck import check_grads, compile_cached, value_and_grad_cached

import symgrad as sg

REG = 2.5e-3  # lambda of the L2 term, as in the course's SVM / softmax exercises
D, C = 3073, 10


def rel_err(a, b):
    """max |a - b| / max |b|: the relative error of a whole array."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# --- the backprop slide ------------------------------------------------------------------


def test_slide_value_and_grads(backend):
    x, y, z = sg.symbols("x y z")
    f = (x + y) * z
    vg = value_and_grad_cached(f, [x, y, z], backend)
    value, grads = vg(x=-2.0, y=5.0, z=-4.0)
    assert value == -12.0
    assert isinstance(value, float)
    assert grads == [-4.0, -4.0, 3.0]
    assert all(isinstance(g, float) for g in grads)


def test_slide_single_wrt_returns_one_grad(backend):
    x, y, z = sg.symbols("x y z")
    vg = value_and_grad_cached((x + y) * z, z, backend)
    assert vg(x=-2.0, y=5.0, z=-4.0) == (-12.0, 3.0)


def test_slide_symbolic_grads():
    x, y, z = sg.symbols("x y z")
    f = (x + y) * z
    dx, dy, dz = sg.grad(f, [x, y, z])
    X, Y, Z = sp.symbols("x y z")
    assert sg.to_sympy(sg.grad(f, z)) == X + Y
    assert sg.to_sympy(dz) == X + Y
    assert sg.to_sympy(dx) == Z
    assert sg.to_sympy(dy) == Z
    # the intermediate q = x + y of the slide: df/dq = z, dq/dx = 1
    assert sg.to_sympy(f) == (X + Y) * Z


def test_slide_forward_compile(backend):
    x, y, z = sg.symbols("x y z")
    fwd = compile_cached((x + y) * z, backend)
    assert fwd(x=-2.0, y=5.0, z=-4.0) == -12.0


# --- linear classifiers on CIFAR-like shapes ---------------------------------------------


def _linear_graph(loss_name, reduction="mean", margin=1.0):
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    scores = X @ W
    if loss_name == "hinge":
        data = sg.losses.multiclass_hinge(scores, y, margin=margin, reduction=reduction)
    else:
        data = sg.losses.softmax_cross_entropy(scores, y, reduction=reduction)
    return data + REG * sg.losses.l2(W), W


def _cifar_like(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 255, size=(n, D - 1))
    X -= X.mean(axis=0)  # mean image subtracted, as in the course
    X = np.hstack([X, np.ones((n, 1))])  # bias trick: D = 3073
    W = 1e-4 * rng.standard_normal((D, C))
    y = rng.integers(0, C, size=n)
    return X, W, y


def hinge_hand(X, W, y, reg, margin=1.0):
    """The course's fully vectorised SVM loss and gradient."""
    n = X.shape[0]
    scores = X @ W
    correct = scores[np.arange(n), y]
    margins = np.maximum(0, scores - correct[:, None] + margin)
    margins[np.arange(n), y] = 0
    loss = margins.sum() / n + reg * np.sum(W * W)
    mask = (margins > 0).astype(np.float64)
    mask[np.arange(n), y] = -mask.sum(axis=1)
    dW = X.T @ mask / n + 2 * reg * W
    return loss, dW


def softmax_hand(X, W, y, reg):
    """The course's vectorised softmax loss and gradient: X.T @ (p - onehot) / N + 2 reg W."""
    n = X.shape[0]
    scores = X @ W
    scores = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), y])) + reg * np.sum(W * W)
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1
    dW = X.T @ (p - onehot) / n + 2 * reg * W
    return loss, dW


@pytest.mark.parametrize("n", [50, 200])
def test_hinge_matches_hand_gradient(backend, n):
    f, W = _linear_graph("hinge")
    X, W0, y = _cifar_like(n, seed=n)
    W0 = 5 * W0  # scores of a few units: margins both active and inactive
    loss, (dW,) = value_and_grad_cached(f, [W], backend)(X=X, W=W0, y=y)
    ref_loss, ref_dW = hinge_hand(X, W0, y, REG)
    # The data gives a healthy mix of active and inactive margins (no degenerate mask).
    scores = X @ W0
    active = (scores - scores[np.arange(n), y][:, None] + 1 > 0).mean()
    assert 0.2 < active < 0.95
    assert dW.shape == (D, C) and dW.dtype == np.float64
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert rel_err(dW, ref_dW) <= 1e-10


def test_hinge_trained_weights_margin_two(backend):
    # Larger weights (a partly trained model) and a non-default margin.
    f, W = _linear_graph("hinge", margin=2.0)
    X, W0, y = _cifar_like(80, seed=7)
    W0 = W0 * 30
    loss, (dW,) = value_and_grad_cached(f, [W], backend)(X=X, W=W0, y=y)
    ref_loss, ref_dW = hinge_hand(X, W0, y, REG, margin=2.0)
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert rel_err(dW, ref_dW) <= 1e-10


@pytest.mark.parametrize("n", [50, 200])
def test_softmax_matches_hand_gradient(backend, n):
    f, W = _linear_graph("softmax")
    X, W0, y = _cifar_like(n, seed=100 + n)
    loss, (dW,) = value_and_grad_cached(f, [W], backend)(X=X, W=W0, y=y)
    ref_loss, ref_dW = softmax_hand(X, W0, y, REG)
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert rel_err(dW, ref_dW) <= 1e-10


def test_softmax_initial_loss_is_log_c(backend):
    # The course's sanity check: with tiny weights the loss is about log(C).
    f, W = _linear_graph("softmax")
    X, W0, y = _cifar_like(100, seed=3)
    loss, _ = value_and_grad_cached(f, [W], backend)(X=X, W=W0 * 1e-3, y=y)
    assert abs(loss - np.log(C)) < 1e-3


@pytest.mark.parametrize("loss_name", ["hinge", "softmax"])
def test_linear_losses_finite_differences(backend, loss_name):
    f, W = _linear_graph(loss_name)
    X, W0, y = _cifar_like(60, seed=11)
    check_grads(f, W, {"X": X, "W": W0 * 30, "y": y}, backend=backend, n_dirs=2)


def test_linear_gradient_wrt_data(backend):
    # Gradient with respect to the inputs (used for saliency maps): dX = G @ W.T.
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    f = sg.losses.softmax_cross_entropy(X @ W, y)
    X0, W0, y0 = _cifar_like(20, seed=5)
    W0 = W0 * 10
    _, (dX, dW) = value_and_grad_cached(f, [X, W], backend)(X=X0, W=W0, y=y0)
    s = X0 @ W0
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(20), y0] -= 1
    assert rel_err(dX, p @ W0.T / 20) <= 1e-10
    assert rel_err(dW, X0.T @ p / 20) <= 1e-10


# --- the lecture's two-layer network -----------------------------------------------------


def _two_layer_graph():
    x = sg.tensor("x", ("N", "D_in"))
    y = sg.tensor("y", ("N", "D_out"))
    w1 = sg.tensor("w1", ("D_in", "H"))
    w2 = sg.tensor("w2", ("H", "D_out"))
    h = 1 / (1 + sg.exp(-(x @ w1)))
    y_pred = h @ w2
    loss = sg.sum((y_pred - y) ** 2)
    return loss, [w1, w2]


def two_layer_hand(x, y, w1, w2):
    """Lines 9-17 of the slide, verbatim."""
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return loss, grad_w1, grad_w2


@pytest.mark.parametrize("scale", [1.0, 0.03])  # 1.0 is the slide (saturated sigmoids)
def test_two_layer_net_matches_hand_backprop(backend, scale):
    rng = np.random.default_rng(42)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x, y = scale * rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))
    loss, wrt = _two_layer_graph()
    value, (g1, g2) = value_and_grad_cached(loss, wrt, backend)(x=x, y=y, w1=w1, w2=w2)
    ref_loss, ref_g1, ref_g2 = two_layer_hand(x, y, w1, w2)
    assert abs(value - ref_loss) <= 1e-10 * abs(ref_loss)
    assert rel_err(g2, ref_g2) <= 1e-10
    assert rel_err(g1, ref_g1) <= 1e-10


def test_two_layer_net_training_trajectory(backend):
    # Five SGD steps of the slide's loop with symgrad's gradients follow the hand loop.
    rng = np.random.default_rng(0)
    N, D_in, H, D_out = 64, 100, 30, 10
    x, y = 0.1 * rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))
    loss, wrt = _two_layer_graph()
    vg = value_and_grad_cached(loss, wrt, backend)
    a1, a2, b1, b2 = w1.copy(), w2.copy(), w1.copy(), w2.copy()
    ours, hand = [], []
    for _ in range(5):
        value, (g1, g2) = vg(x=x, y=y, w1=a1, w2=a2)
        ref, r1, r2 = two_layer_hand(x, y, b1, b2)
        ours.append(value)
        hand.append(ref)
        a1, a2 = a1 - 1e-3 * g1, a2 - 1e-3 * g2
        b1, b2 = b1 - 1e-3 * r1, b2 - 1e-3 * r2
    np.testing.assert_allclose(ours, hand, rtol=1e-9)
    assert hand[-1] < hand[0]  # it trains
    assert rel_err(a1, b1) <= 1e-10 and rel_err(a2, b2) <= 1e-10


def test_two_layer_net_with_sg_sigmoid_finite_differences(backend):
    x = sg.tensor("x", ("N", 7))
    y = sg.tensor("y", ("N", 3))
    w1 = sg.tensor("w1", (7, 5))
    w2 = sg.tensor("w2", (5, 3))
    loss = sg.losses.squared_error(sg.sigmoid(x @ w1) @ w2, y)
    rng = np.random.default_rng(8)
    inputs = {"x": rng.standard_normal((9, 7)), "y": rng.standard_normal((9, 3)),
              "w1": rng.standard_normal((7, 5)), "w2": rng.standard_normal((5, 3))}
    _, (g1, g2) = check_grads(loss, [w1, w2], inputs, backend=backend)
    _, ref1, ref2 = two_layer_hand(inputs["x"], inputs["y"], inputs["w1"], inputs["w2"])
    assert rel_err(g1, ref1) <= 1e-10 and rel_err(g2, ref2) <= 1e-10


# --- the losses' reduction variants against NumPy ----------------------------------------


def _scores_graph(loss_name, reduction):
    s = sg.tensor("s", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    if loss_name == "hinge":
        return sg.losses.multiclass_hinge(s, y, reduction=reduction), s
    return sg.losses.softmax_cross_entropy(s, y, reduction=reduction), s


def _per_row(loss_name, s, y):
    """Per-row losses and d(loss_i)/d(s_i) (rows of the Jacobian, which is block diagonal)."""
    n = s.shape[0]
    rows = np.arange(n)
    if loss_name == "hinge":
        m = np.maximum(0, s - s[rows, y][:, None] + 1)
        m[rows, y] = 0
        mask = (m > 0).astype(float)
        mask[rows, y] = -mask.sum(1)
        return m.sum(1), mask
    z = s - s.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(logp)
    p[rows, y] -= 1
    return -logp[rows, y], p


@pytest.mark.parametrize("loss_name", ["hinge", "softmax"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_reductions(backend, loss_name, reduction):
    rng = np.random.default_rng(21)
    n, c = 13, 6
    s0 = 2 * rng.standard_normal((n, c))
    y0 = rng.integers(0, c, size=n)
    per_row, jac_rows = _per_row(loss_name, s0, y0)
    loss, s = _scores_graph(loss_name, reduction)
    if reduction == "none":
        assert loss.shape == ("N",)
        values = compile_cached(loss, backend)(s=s0, y=y0)
        assert values.shape == (n,)
        np.testing.assert_allclose(values, per_row, rtol=1e-12, atol=1e-14)
        ct = rng.standard_normal(n)
        value, (g,) = check_grads(loss, [s], {"s": s0, "y": y0}, backend=backend, cotangent=ct)
        np.testing.assert_allclose(g, ct[:, None] * jac_rows, rtol=1e-12, atol=1e-14)
    else:
        assert loss.shape == ()
        value, (g,) = value_and_grad_cached(loss, [s], backend)(s=s0, y=y0)
        scale = 1 / n if reduction == "mean" else 1.0
        assert value == pytest.approx(per_row.sum() * scale, rel=1e-12)
        np.testing.assert_allclose(g, jac_rows * scale, rtol=1e-12, atol=1e-14)
        check_grads(loss, s, {"s": s0, "y": y0}, backend=backend)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_squared_error_reductions(backend, reduction):
    rng = np.random.default_rng(22)
    p = sg.tensor("p", ("N", 3))
    t = sg.tensor("t", ("N", 3))
    loss = sg.losses.squared_error(p, t, reduction=reduction)
    p0, t0 = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    sq = (p0 - t0) ** 2
    if reduction == "none":
        assert loss.shape == ("N", 3)
        np.testing.assert_allclose(compile_cached(loss, backend)(p=p0, t=t0), sq, rtol=1e-14)
        ct = rng.standard_normal((7, 3))
        _, (gp, gt) = check_grads(loss, [p, t], {"p": p0, "t": t0}, backend=backend, cotangent=ct)
        np.testing.assert_allclose(gp, 2 * (p0 - t0) * ct, rtol=1e-13)
        np.testing.assert_allclose(gt, -2 * (p0 - t0) * ct, rtol=1e-13)
    else:
        scale = 1 / sq.size if reduction == "mean" else 1.0  # "mean" is over all elements
        value, (gp, gt) = value_and_grad_cached(loss, [p, t], backend)(p=p0, t=t0)
        assert value == pytest.approx(sq.sum() * scale, rel=1e-13)
        np.testing.assert_allclose(gp, 2 * (p0 - t0) * scale, rtol=1e-13)
        np.testing.assert_allclose(gt, -2 * (p0 - t0) * scale, rtol=1e-13)


def test_squared_error_default_is_sum(backend):
    p = sg.tensor("p", (4,))
    t = sg.tensor("t", (4,))
    p0, t0 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.0, 0.0, 1.0])
    assert compile_cached(sg.losses.squared_error(p, t), backend)(p=p0, t=t0) == 1 + 4 + 9 + 9


def test_l2(backend):
    rng = np.random.default_rng(23)
    W1, W2, b = sg.tensor("W1", (4, 3)), sg.tensor("W2", ("H", 2)), sg.tensor("b", (3,))
    f = sg.losses.l2(W1, W2, b)
    a, c, d = rng.standard_normal((4, 3)), rng.standard_normal((5, 2)), rng.standard_normal(3)
    value, grads = value_and_grad_cached(f, [W1, W2, b], backend)(W1=a, W2=c, b=d)
    assert value == pytest.approx(np.sum(a * a) + np.sum(c * c) + np.sum(d * d), rel=1e-14)
    for g, w in zip(grads, (a, c, d)):
        np.testing.assert_allclose(g, 2 * w, rtol=1e-15)
    single = sg.losses.l2(W1)
    v1, g1 = value_and_grad_cached(single, W1, backend)(W1=a)
    assert v1 == pytest.approx(np.sum(a * a), rel=1e-14)
    np.testing.assert_allclose(g1, 2 * a, rtol=1e-15)


# --- the gradient checker checks -----------------------------------------------------------


def _quadratic():
    x = sg.tensor("x", (5,))
    A = sg.tensor("A", (5, 5))
    return x @ A @ x, x, A


def _quad_inputs():
    rng = np.random.default_rng(31)
    return {"x": rng.standard_normal(5), "A": rng.standard_normal((5, 5))}


def test_gradcheck_passes_on_correct_gradient():
    f, x, A = _quadratic()
    inputs = _quad_inputs()
    value, (gx, gA) = check_grads(f, [x, A], inputs)
    np.testing.assert_allclose(gx, (inputs["A"] + inputs["A"].T) @ inputs["x"], rtol=1e-13)
    np.testing.assert_allclose(gA, np.outer(inputs["x"], inputs["x"]), rtol=1e-13)


def _exact(inputs):
    a, xv = inputs["A"], inputs["x"]
    return float(xv @ a @ xv), [(a + a.T) @ xv, np.outer(xv, xv)]


@pytest.mark.parametrize("wrong", [
    "transposed",        # A @ x instead of (A + A.T) @ x: the classic mistake
    "scaled",            # 1.001 * the right gradient
    "one_entry",         # one entry of one gradient off by 1e-3
    "other_tensor",      # the right gradient of x, a wrong one of A
])
def test_gradcheck_fails_on_wrong_gradient(wrong):
    f, x, A = _quadratic()

    def wrong_grad(**inputs):
        value, (gx, gA) = _exact(inputs)
        if wrong == "transposed":
            gx = inputs["A"] @ inputs["x"]
        elif wrong == "scaled":
            gx, gA = 1.001 * gx, 1.001 * gA
        elif wrong == "one_entry":
            gA = gA.copy()
            gA[2, 3] += 1e-3
        else:
            gA = gA.T + np.eye(5)
        return value, [gx, gA]

    inputs = _quad_inputs()
    check_grads(f, [x, A], inputs, grad_fn=lambda **kw: _exact(kw))  # the exact one passes
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_grads(f, [x, A], inputs, grad_fn=wrong_grad)


def test_gradcheck_fails_on_wrong_symbolic_derivative(backend):
    # e * stop_gradient(e) with e = exp(x) has value exp(2x) but, by construction, a
    # derivative of exp(2x) instead of 2 exp(2x): a graph whose symbolic derivative is wrong
    # for its values must be rejected.
    x = sg.tensor("x", (4,))
    e = sg.exp(x)
    f = sg.sum(e * sg.stop_gradient(e))
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_grads(f, x, {"x": np.array([0.5, -1.0, 2.0, 3.0])}, backend=backend)


def test_gradcheck_uses_the_cotangent():
    # For a non-scalar f the checker contracts with a random cotangent: a gradient of sum(f)
    # (the cotangent ignored) must fail.
    x = sg.tensor("x", (6,))
    f = x * x
    x0 = np.linspace(-1, 1, 6)
    check_grads(f, x, {"x": x0})

    def ignores_cotangent(x, gradcheck_cotangent):
        return float(np.sum(x * x * gradcheck_cotangent)), [2 * x]

    with pytest.raises(AssertionError, match="gradient check failed"):
        check_grads(f, x, {"x": x0}, grad_fn=ignores_cotangent)


def test_gradcheck_fails_on_a_tiny_error_in_a_large_gradient():
    # One wrong entry among 3073 * 10 is still caught by random directions.
    f, W = _linear_graph("softmax")
    X, W0, y = _cifar_like(30, seed=9)
    W0 = W0 * 30

    def off_by_one_entry(**inputs):
        loss, dW = softmax_hand(inputs["X"], inputs["W"], inputs["y"], REG)
        dW = dW.copy()
        dW[1000, 4] += 1e-2 * np.abs(dW).max()
        return loss, [dW]

    check_grads(f, W, {"X": X, "W": W0, "y": y},
                grad_fn=lambda **kw: (softmax_hand(kw["X"], kw["W"], kw["y"], REG)[0],
                                      [softmax_hand(kw["X"], kw["W"], kw["y"], REG)[1]]))
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_grads(f, W, {"X": X, "W": W0, "y": y}, grad_fn=off_by_one_entry)


def test_gradcheck_float32_tolerance(backend):
    # float32 graphs are checked with the float32 tolerances (and pass).
    x = sg.tensor("x", (5,), dtype="float32")
    f = sg.sum(sg.tanh(x) * x)
    value, (g,) = check_grads(f, [x], {"x": np.linspace(-1, 1, 5).astype(np.float32)}, backend=backend)
    assert np.asarray(g).dtype == np.float32


@pytest.mark.parametrize("n", [50, 200])
def test_bias_trick_by_concatenate_matches_hand_gradient(backend, n):
    # the course's bias trick done in the graph: a column of ones appended to the images,
    # (N, D - 1) -> (N, D), then the hinge loss with L2, against the hand-derived gradient
    Xr = sg.tensor("Xr", ("N", "F"))
    W = sg.tensor("W", ("F + 1", "C"))  # F + 1: the weights of the appended column too
    y = sg.tensor("y", ("N",), dtype="int64")
    Xb = sg.concatenate([Xr, 1.0], axis=1)
    assert sg.ir.shapes.fmt(Xb.shape) == "(N, F + 1)"
    f = sg.losses.multiclass_hinge(Xb @ W, y) + REG * sg.losses.l2(W)
    X, W0, y0 = _cifar_like(n, seed=n + 1)
    W0 = 5 * W0
    loss, (dW,) = value_and_grad_cached(f, [W], backend)(Xr=X[:, :-1], W=W0, y=y0)
    ref_loss, ref_dW = hinge_hand(X, W0, y0, REG)
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert rel_err(dW, ref_dW) <= 1e-10
