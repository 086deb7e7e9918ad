"""sg.nn.Linear and sg.nn.MLP (shapes, initial values, gradients), and dict ``wrt``."""

import numpy as np
import pytest
from gradcheck import check_grads

import symgrad as sg

nn = sg.nn


# --- dict wrt --------------------------------------------------------------------------


def test_dict_wrt_gives_the_list_forms_values(backend):
    X, y = sg.tensor("X", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    W, b, unused = sg.tensor("W", (3, 4)), sg.tensor("b", (4,)), sg.tensor("u", (2,))
    loss = sg.losses.softmax_cross_entropy(sg.tanh(X @ W) + b, y) + 0.1 * sg.losses.l2(W)
    rng = np.random.default_rng(0)
    inputs = {
        "X": rng.standard_normal((5, 3)),
        "y": rng.integers(0, 4, 5),
        "W": rng.standard_normal((3, 4)),
        "b": rng.standard_normal(4),
        "u": np.zeros(2),
    }
    value, grads = sg.value_and_grad(loss, [W, b, unused], backend=backend)(**inputs)
    by_name = sg.value_and_grad(loss, {"weight": W, "b": b, "u": unused}, backend=backend)
    value_d, grads_d = by_name(**inputs)
    assert list(grads_d) == ["weight", "b", "u"]  # the dict's keys, in its order
    assert value_d == value
    for g, key in zip(grads, grads_d):
        np.testing.assert_array_equal(grads_d[key], g)
    np.testing.assert_array_equal(grads_d["u"], np.zeros(2))
    # forward / backward keep the dict packing
    v, residuals = by_name.forward(**inputs)
    back = by_name.backward(residuals)
    assert v == value and list(back) == ["weight", "b", "u"]
    np.testing.assert_array_equal(back["weight"], grads[0])
    # and sg.grad: graphs by name, the same graphs as the list form
    graphs = sg.grad(loss, {"weight": W, "b": b})
    assert graphs == dict(zip(["weight", "b"], sg.grad(loss, [W, b])))


def test_dict_wrt_errors():
    x = sg.symbols("x")
    with pytest.raises(sg.ArgumentError, match="keys of a dict wrt must be strings"):
        sg.value_and_grad(x * x, {1: x})
    with pytest.raises(sg.GraphError, match="with respect to input tensors"):
        sg.value_and_grad(x * x, {"x2": x * 2})


# --- layers ------------------------------------------------------------------------------


def test_linear_shapes_and_names():
    layer = nn.Linear(3, 5, name="1")
    assert list(layer.params) == ["W1", "b1"]
    assert layer.params["W1"].shape == (3, 5) and layer.params["b1"].shape == (5,)
    X = sg.tensor("X", ("N", 3))
    assert layer(X).shape == ("N", 5)
    no_bias = nn.Linear(3, 5, bias=False, name="x")
    assert list(no_bias.params) == ["Wx"] and list(no_bias.init(0)) == ["Wx"]
    assert "Linear(3, 5" in repr(layer)


@pytest.mark.parametrize("init", ["he", "xavier", "normal"])
def test_initial_value_statistics(init):
    n_in, n_out = 400, 300
    values = nn.Linear(n_in, n_out, init=init).init(seed=3)
    W, b = values["W"], values["b"]
    assert W.shape == (n_in, n_out) and W.dtype == np.float64
    np.testing.assert_array_equal(b, np.zeros(n_out))
    assert abs(W.mean()) < 0.01
    if init == "he":
        assert W.std() == pytest.approx(np.sqrt(2 / n_in), rel=0.01)
    elif init == "xavier":
        limit = np.sqrt(6 / (n_in + n_out))
        assert W.max() <= limit and W.min() >= -limit and W.max() > 0.99 * limit
        assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)  # uniform's std
    else:
        assert W.std() == pytest.approx(1.0, rel=0.01)
    # seeded: the same seed gives the same values, another seed others
    np.testing.assert_array_equal(nn.Linear(n_in, n_out, init=init).init(seed=3)["W"], W)
    assert not np.array_equal(nn.Linear(n_in, n_out, init=init).init(seed=4)["W"], W)


def test_mlp_params_init_and_forward():
    model = nn.MLP([4, 8, 6, 3], activation="tanh")
    assert list(model.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    values = model.init(seed=0)
    assert {k: v.shape for k, v in values.items()} == {
        "W1": (4, 8),
        "b1": (8,),
        "W2": (8, 6),
        "b2": (6,),
        "W3": (6, 3),
        "b3": (3,),
    }
    X = sg.tensor("X", ("N", 4))
    x = np.random.default_rng(1).standard_normal((7, 4))
    out = sg.compile(model(X), backend="numpy")(X=x, **values)
    h1 = np.tanh(x @ values["W1"] + values["b1"])
    h2 = np.tanh(h1 @ values["W2"] + values["b2"])
    np.testing.assert_allclose(out, h2 @ values["W3"] + values["b3"], rtol=1e-12)
    np.testing.assert_array_equal(model.init(seed=0)["W3"], values["W3"])


def test_lecture_three_layer_forward_pass_with_biases(backend):
    """The slide's forward pass of a 3-layer network (sigmoid), in NumPy and with MLP."""
    rng = np.random.default_rng(0)
    W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal((4, 1))
    W2, b2 = rng.standard_normal((4, 4)), rng.standard_normal((4, 1))
    W3, b3 = rng.standard_normal((1, 4)), rng.standard_normal((1, 1))
    # --- the slide ---
    f = lambda x: 1.0 / (1.0 + np.exp(-x))  # activation function (use sigmoid)
    x = rng.standard_normal((3, 1))  # random input vector of three numbers (3x1)
    h1 = f(np.dot(W1, x) + b1)  # calculate first hidden layer activations (4x1)
    h2 = f(np.dot(W2, h1) + b2)  # calculate second hidden layer activations (4x1)
    out = np.dot(W3, h2) + b3  # output neuron (1x1)
    # --- symgrad: rows are examples, so W is the slide's W transposed ---
    model = nn.MLP([3, 4, 4, 1], activation="sigmoid")
    X = sg.tensor("X", ("N", 3))
    values = {"W1": W1.T, "b1": b1[:, 0], "W2": W2.T, "b2": b2[:, 0], "W3": W3.T, "b3": b3[:, 0]}
    ours = sg.compile(model(X), backend=backend)(X=x.T, **values)
    np.testing.assert_allclose(ours, out.T, rtol=1e-13)


@pytest.mark.parametrize(
    "activation", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu"]
)
def test_mlp_gradients_against_finite_differences(activation):
    model = nn.MLP([3, 5, 4], activation=activation)
    X, y = sg.tensor("X", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.softmax_cross_entropy(model(X), y) + 1e-2 * sg.losses.l2(model.params["W1"])
    rng = np.random.default_rng(2)
    inputs = {"X": rng.standard_normal((6, 3)), "y": rng.integers(0, 4, 6), **model.init(seed=1)}
    for k in ("b1", "b2"):  # non-zero biases, so their gradients matter
        inputs[k] = 0.1 * rng.standard_normal(inputs[k].shape)
    check_grads(loss, list(model.params.values()), inputs, backend="numpy")


def test_mlp_with_a_function_and_a_prefix():
    model = nn.MLP([2, 3, 2], activation=lambda h: sg.leaky_relu(h, 0.2), bias=False, name="enc")
    assert list(model.params) == ["Wenc1", "Wenc2"]
    X = sg.tensor("X", ("N", 2))
    values = model.init(seed=0)
    x = np.array([[1.0, -2.0]])
    h = x @ values["Wenc1"]
    expected = np.where(h > 0, h, 0.2 * h) @ values["Wenc2"]
    np.testing.assert_allclose(sg.compile(model(X), backend="numpy")(X=x, **values), expected)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Linear(0, 3), "n_in must be an integer >= 1"),
        (lambda: nn.Linear(3, 2.5), "n_out must be an integer >= 1"),
        (lambda: nn.Linear(3, 2, init="kaiming"), "init must be one of"),
        (lambda: nn.Linear(3, 2, name="1 2"), "must make an identifier"),
        (lambda: nn.MLP([3]), "at least"),
        (lambda: nn.MLP(3), "sizes must be a list"),
        (lambda: nn.MLP([3, 2], activation="swish"), "activation must be one of"),
    ],
)
def test_layer_errors(make, message):
    with pytest.raises(sg.ArgumentError, match=message):
        make()
