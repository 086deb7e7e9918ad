"""Layers: a fully connected ``Linear`` layer and a multi-layer perceptron ``MLP``.

A layer holds its parameter tensors (``.params``, a dict name -> tensor), builds the graph
for an input tensor when called (``model(X)``), and gives seeded initial values
(``model.init(seed)``, a dict name -> array, the same keys).  Rows are examples:
``Linear(X) = X @ W + b`` with ``X`` of shape ``(N, n_in)``, ``W`` of shape
``(n_in, n_out)``; the lecture's column form ``W x + b`` is the same with ``W`` transposed.

Initial values (biases are zero):

- ``"he"`` (default): normal with std ``sqrt(2 / n_in)`` (for ReLU layers);
- ``"xavier"``: uniform on ``[-sqrt(6 / (n_in + n_out)), sqrt(6 / (n_in + n_out))]``;
- ``"normal"``: standard normal, the slide's ``randn(n_in, n_out)``.

>>> import symgrad as sg
>>> model = sg.nn.MLP([3, 4, 4, 1], activation="sigmoid")
>>> list(model.params)
['W1', 'b1', 'W2', 'b2', 'W3', 'b3']
>>> X = sg.tensor("X", ("N", 3))
>>> model(X).shape
('N', 1)
>>> {k: v.shape for k, v in model.init(seed=0).items()}["W2"]
(4, 4)
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from ..ops import api

__all__ = ["ACTIVATIONS", "MLP", "Linear"]

# the lecture's activations, by name
ACTIVATIONS = {
    "relu": api.relu,
    "leaky_relu": lambda x: api.leaky_relu(x, 0.1),  # the slide's max(0.1 x, x)
    "elu": api.elu,
    "sigmoid": api.sigmoid,
    "tanh": api.tanh,
    "gelu": api.gelu,
    "silu": api.silu,
}

INITS = ("he", "xavier", "normal")


def _size(what, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def _activation(activation):
    if callable(activation):
        return activation
    if activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ArgumentError(
        f"activation must be one of {sorted(ACTIVATIONS)} or a function of a tensor, "
        f"got {activation!r}"
    )


class Linear:
    """A fully connected layer ``X @ W + b`` (``bias=False``: ``X @ W``).

    Its parameters are the tensors ``"W" + name`` of shape ``(n_in, n_out)`` and
    ``"b" + name`` of shape ``(n_out,)``: ``Linear(3, 4, name="1")`` holds ``W1`` and ``b1``,
    the lecture's names.  ``init`` is ``"he"``, ``"xavier"`` or ``"normal"`` (see the module).

    >>> import numpy as np, symgrad as sg
    >>> layer = Linear(2, 3, name="1")
    >>> sorted(layer.params), layer.params["W1"].shape
    (['W1', 'b1'], (2, 3))
    >>> values = layer.init(seed=0)
    >>> values["b1"]
    array([0., 0., 0.])
    """

    def __init__(self, n_in, n_out, bias=True, init="he", name="", dtype="float64"):
        self.n_in, self.n_out = _size("Linear: n_in", n_in), _size("Linear: n_out", n_out)
        if init not in INITS:
            raise ArgumentError(f"Linear: init must be one of {INITS}, got {init!r}")
        if not isinstance(name, str) or not ("W" + name).isidentifier():
            raise ArgumentError(
                f"Linear: name is appended to 'W' and 'b' to name the parameters, so it must "
                f"make an identifier, got {name!r}"
            )
        self.init_kind, self.bias, self.name = init, bool(bias), name
        self.weight = api.tensor("W" + name, (self.n_in, self.n_out), dtype)
        self.params = {self.weight.name: self.weight}
        if self.bias:
            self.b = api.tensor("b" + name, (self.n_out,), dtype)
            self.params[self.b.name] = self.b

    def __call__(self, X):
        out = api.as_node(X) @ self.weight
        return out + self.b if self.bias else out

    def init(self, seed=0):
        """Initial values by parameter name, drawn from ``np.random.default_rng(seed)``
        (a seed or a Generator)."""
        rng = np.random.default_rng(seed)
        shape, dtype = (self.n_in, self.n_out), self.weight.dtype
        if self.init_kind == "he":
            weight = rng.normal(0.0, np.sqrt(2.0 / self.n_in), shape)
        elif self.init_kind == "xavier":
            limit = np.sqrt(6.0 / (self.n_in + self.n_out))
            weight = rng.uniform(-limit, limit, shape)
        else:
            weight = rng.standard_normal(shape)
        values = {self.weight.name: weight.astype(dtype)}
        if self.bias:
            values[self.b.name] = np.zeros(self.n_out, dtype)
        return values

    def __repr__(self):
        return (
            f"Linear({self.n_in}, {self.n_out}, bias={self.bias}, init={self.init_kind!r}, "
            f"name={self.name!r})"
        )


class MLP:
    """A multi-layer perceptron: ``Linear`` layers with an activation between them.

    ``sizes = [n_in, h1, ..., n_out]`` gives ``len(sizes) - 1`` layers; layer ``i`` (from 1)
    holds ``W{i}`` and ``b{i}`` (with a ``name`` prefix: ``W{name}{i}``).  The activation
    (a name in ``ACTIVATIONS`` or a function of a tensor) follows every layer but the last,
    whose output is the scores: ``MLP([D, H, C])(X)`` is the lecture's
    ``W2 max(0, W1 x + b1) + b2`` in row form.  ``init`` is the same for every layer; its
    default is ``"he"`` for ReLU and ``"xavier"`` for the others.
    """

    def __init__(self, sizes, activation="relu", bias=True, init=None, name="", dtype="float64"):
        try:
            sizes = [_size("MLP: every size", s) for s in sizes]
        except TypeError:
            raise ArgumentError(f"MLP: sizes must be a list of integers, got {sizes!r}") from None
        if len(sizes) < 2:
            raise ArgumentError(f"MLP: sizes needs at least [n_in, n_out], got {sizes!r}")
        self.sizes, self.activation = sizes, _activation(activation)
        self.activation_name = activation if isinstance(activation, str) else None
        if init is None:
            init = "he" if activation == "relu" else "xavier"
        self.layers = [
            Linear(n_in, n_out, bias, init, f"{name}{i}", dtype)
            for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1)
        ]
        self.params = {k: v for layer in self.layers for k, v in layer.params.items()}

    def __call__(self, X):
        h = api.as_node(X)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h

    def init(self, seed=0):
        """Initial values of every layer, in order, from one ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        return {k: v for layer in self.layers for k, v in layer.init(rng).items()}

    def __repr__(self):
        act = self.activation_name or getattr(self.activation, "__name__", "function")
        return f"MLP({self.sizes}, activation={act!r}, bias={self.layers[0].bias})"
