"""sg.nn.optim: the step-decay schedule, shuffled minibatches, and the SGD update."""

import numpy as np
import pytest

import symgrad as sg

optim = sg.nn.optim


# --- step_decay --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 0.1), (29, 0.1), (30, 0.01), (59, 0.01), (60, 1e-3), (89, 1e-3), (90, 1e-4), (500, 1e-4)],
)
def test_step_decay_lecture_milestones(epoch, expected):
    """ResNet's schedule from the lecture: x0.1 after epochs 30, 60 and 90."""
    assert optim.step_decay(0.1, epoch) == pytest.approx(expected, rel=1e-12)


def test_step_decay_is_repeated_multiplication():
    """The rate is what the hand loop ``lr *= factor`` at each milestone gives, bit for bit."""
    lr = 0.5
    for epoch in range(20):
        if epoch in (4, 8, 12):
            lr *= 0.1
        assert optim.step_decay(0.5, epoch, milestones=(4, 8, 12)) == lr


def test_step_decay_options():
    assert optim.step_decay(0.8, 3, milestones=(2, 4), factor=0.5) == 0.4
    assert optim.step_decay(0.8, 4, milestones=(4, 2), factor=0.5) == 0.2  # order is irrelevant
    assert optim.step_decay(0.8, 1000, milestones=()) == 0.8


# --- minibatches -------------------------------------------------------------------------


@pytest.mark.parametrize("n, batch_size", [(10, 3), (256, 256), (1000, 256), (5, 8), (1, 1)])
def test_minibatches_cover_every_index_once(n, batch_size):
    rng = np.random.default_rng(0)
    for _ in range(3):  # every epoch, a new shuffle that still covers everything once
        batches = list(optim.minibatches(n, batch_size, rng))
        sizes = [len(rows) for rows in batches]
        assert all(size == batch_size for size in sizes[:-1])
        assert 0 < sizes[-1] <= batch_size
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))


def test_minibatches_shuffle_and_rng():
    first = np.concatenate(list(optim.minibatches(100, 32, np.random.default_rng(1))))
    second = np.concatenate(list(optim.minibatches(100, 32, np.random.default_rng(1))))
    np.testing.assert_array_equal(first, second)  # reproducible from a seeded generator
    assert not np.array_equal(first, np.arange(100))  # shuffled
    seeded = np.concatenate(list(optim.minibatches(100, 32, 1)))  # a seed works too
    np.testing.assert_array_equal(seeded, first)
    assert list(optim.minibatches(0, 4, np.random.default_rng(0))) == []


def test_minibatches_index_arrays():
    X = np.arange(20.0).reshape(10, 2)
    for rows in optim.minibatches(10, 4, np.random.default_rng(0)):
        assert rows.dtype.kind == "i"
        assert X[rows].shape == (len(rows), 2)


# --- SGD -----------------------------------------------------------------------------------


def test_sgd_converges_on_a_quadratic():
    """f(w) = 1/2 (w - t)^T A (w - t), gradient A (w - t); minimum at t."""
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((5, 5))
    A = Q @ Q.T + np.eye(5)
    target = rng.standard_normal(5)
    for momentum in (0.0, 0.9):
        w = np.zeros(5)
        opt = optim.SGD({"w": w}, lr=1.0 / np.linalg.eigvalsh(A).max(), momentum=momentum)
        for _ in range(2000):
            opt.step([A @ (w - target)])
        np.testing.assert_allclose(w, target, atol=1e-8)


def test_sgd_reproduces_the_lecture_update_with_value_and_grad():
    """Softmax classifier, gradient from symgrad: SGD.step is exactly ``w -= lr * grad``."""
    rng = np.random.default_rng(0)
    N, D, C, lr = 32, 4, 3, 0.5
    Xs, ys = sg.tensor("X", ("N", D)), sg.tensor("y", ("N",), dtype="int64")
    Ws, bs = sg.tensor("W", (D, C)), sg.tensor("b", (C,))
    loss = sg.losses.softmax_cross_entropy(Xs @ Ws + bs, ys) + 1e-3 * sg.losses.l2(Ws)
    vg = sg.value_and_grad(loss, wrt=[Ws, bs], backend="numpy")
    X, y = rng.standard_normal((N, D)), rng.integers(0, C, N)

    W, b = 0.01 * rng.standard_normal((D, C)), np.zeros(C)
    W_hand, b_hand = W.copy(), b.copy()
    params = {"W": W, "b": b}
    opt = optim.SGD(params, lr=lr, milestones=(2,))
    losses = []
    for step in range(4):
        value, grads = vg(X=X, y=y, **params)
        opt.step(grads if step % 2 else dict(zip(("W", "b"), grads)))  # list or dict
        # the lecture, by hand: weights += - step_size * weights_grad; x0.1 at epoch 2
        step_size = lr * 0.1 if step >= 2 else lr
        _, (dW, db) = vg(X=X, y=y, W=W_hand, b=b_hand)
        W_hand += -step_size * dW
        b_hand += -step_size * db
        np.testing.assert_array_equal(W, W_hand)
        np.testing.assert_array_equal(b, b_hand)
        losses.append(value)
        if step == 1:
            assert opt.next_epoch() == 1
            assert opt.next_epoch() == 2
            assert opt.lr == pytest.approx(0.05)
    assert params["W"] is W and params["b"] is b  # updated in place, not replaced
    assert losses[-1] < losses[0]


def test_sgd_momentum_formula():
    """PyTorch's momentum: b = g at the first step, then b = mu * b + g; w -= lr * b.

    (Before the optimisers followed torch.optim, this was v = mu * v - lr * g; w += v,
    which differs once the rate changes.)"""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3))
    w_hand, b = w.copy(), None
    mu, lr = 0.9, 0.1
    opt = optim.SGD({"w": w}, lr=lr, momentum=mu, milestones=(2,), factor=0.5)
    for t in range(5):
        g = rng.standard_normal((2, 3))
        opt.step({"w": g})
        rate = lr * 0.5 if t >= 2 else lr
        b = g.copy() if b is None else mu * b + g
        w_hand = w_hand - rate * b
        np.testing.assert_array_equal(w, w_hand)
        opt.next_epoch()
    # the first step, alone, is plain SGD
    w = np.ones(3)
    optim.SGD({"w": w}, lr=0.5, momentum=0.9).step([np.full(3, 2.0)])
    np.testing.assert_array_equal(w, np.zeros(3))


def test_sgd_epoch_and_lr():
    opt = optim.SGD({"w": np.zeros(2)}, lr=1.0, milestones=(1, 3))
    rates = []
    for _ in range(5):
        rates.append(opt.lr)
        opt.next_epoch()
    assert rates == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])
    opt.epoch = 0  # the epoch can also be set
    assert opt.lr == 1.0
    assert "epoch=0" in repr(opt) and "'w'" in repr(opt)


def test_sgd_keeps_dtype_and_scalar_params():
    w32 = np.ones(3, dtype=np.float32)
    s = np.array(2.0)  # a 0-d parameter; value_and_grad gives its gradient as a float
    optim.SGD({"w": w32, "s": s}, lr=0.5).step([np.ones(3), 1.0])
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, np.full(3, 0.5, dtype=np.float32))
    assert s == 1.5
    w = np.ones(2)
    optim.SGD({"w": w}, lr=1.0).step(np.ones(2))  # one parameter: its gradient alone will do
    np.testing.assert_array_equal(w, np.zeros(2))


# --- errors --------------------------------------------------------------------------------


def make_opt():
    return optim.SGD({"W": np.zeros((3, 2)), "b": np.zeros(2)}, lr=0.1)


def test_error_wrong_number_of_gradients():
    opt = make_opt()
    with pytest.raises(sg.ArgumentError, match=r"got 1 gradients for 2 parameters \['W', 'b'\]"):
        opt.step([np.zeros((3, 2))])
    with pytest.raises(sg.ArgumentError, match="got 3 gradients"):
        opt.step([np.zeros((3, 2)), np.zeros(2), np.zeros(2)])


def test_error_shape_mismatch_names_the_parameter():
    opt = make_opt()
    with pytest.raises(
        sg.ShapeError,
        match=r"gradient for 'W' has shape \(2, 3\), but the parameter has shape \(3, 2\)",
    ):
        opt.step([np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(sg.ShapeError, match="gradient for 'b' has shape"):
        opt.step({"W": np.zeros((3, 2)), "b": np.zeros((1, 2))})  # no broadcasting


def test_error_leaves_parameters_unchanged():
    W, b = np.ones((3, 2)), np.ones(2)
    opt = optim.SGD({"W": W, "b": b}, lr=0.1)
    with pytest.raises(sg.ShapeError, match="'b'"):
        opt.step([np.ones((3, 2)), np.ones(3)])
    np.testing.assert_array_equal(W, np.ones((3, 2)))  # checked before any update


def test_error_dict_of_gradients_by_name():
    opt = make_opt()
    with pytest.raises(sg.ArgumentError, match=r"missing \['b'\], unknown \['c'\]"):
        opt.step({"W": np.zeros((3, 2)), "c": np.zeros(2)})
    with pytest.raises(sg.ArgumentError, match="grads must be a list or a dict"):
        opt.step(None)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"W": [1.0, 2.0]}, "parameter 'W' must be a float NumPy array.*got list"),
        ({"W": np.zeros(2, dtype=np.int64)}, "parameter 'W' must be a float NumPy array.*int64"),
        ({}, "params must be a non-empty dict"),
        ([np.zeros(2)], "params must be a non-empty dict"),
    ],
)
def test_error_bad_params(params, message):
    with pytest.raises(sg.ArgumentError, match=message):
        optim.SGD(params, lr=0.1)


def test_error_read_only_param():
    w = np.zeros(2)
    w.flags.writeable = False
    with pytest.raises(sg.ArgumentError, match="'w' is a read-only array"):
        optim.SGD({"w": w}, lr=0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -0.1}, "lr must be a number >= 0"),
        ({"lr": float("nan")}, "lr must be"),
        ({"lr": "fast"}, "lr must be"),
        ({"lr": 0.1, "momentum": 1.0}, r"momentum must be a number in \[0.0, 1.0\)"),
        ({"lr": 0.1, "factor": -1}, "factor must be"),
    ],
)
def test_error_bad_hyperparameters(kwargs, message):
    with pytest.raises(sg.ArgumentError, match=message):
        optim.SGD({"w": np.zeros(2)}, **kwargs)


@pytest.mark.parametrize(
    "n, batch_size, message",
    [(10, 0, "batch_size must be an integer >= 1"), (10, 2.5, "batch_size"), (-1, 4, "n must")],
)
def test_error_bad_minibatches(n, batch_size, message):
    with pytest.raises(sg.ArgumentError, match=message):
        optim.minibatches(n, batch_size, np.random.default_rng(0))  # raised on the call


def test_errors_are_symgrad_errors():
    assert issubclass(sg.ArgumentError, sg.SymgradError)
    assert sg.nn.optim is optim and optim.SGD.__module__ == "symgrad.nn.optim"
