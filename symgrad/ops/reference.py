"""What each user-facing op means, written in NumPy: the reference of docs/semantics.md.

A compiled graph must compute what these functions compute when applied op by op as the
user wrote them (``tests/test_differential.py`` checks it on random graphs).  Nothing here
is used by the compiler: it is the specification the optimiser is tested against.  An op
added to :mod:`symgrad.ops.api` gets a row here (the tester fails on an elementwise
formula without one).

Each table maps the name of a function of ``symgrad`` (``sg.exp``, ``sg.maximum``, ...) to
its NumPy meaning.  Static parameters (``alpha``) are bound by the tester.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(x, 0)  # log(1 + exp(x)) without overflow


def _gelu(x):
    return x / 2 * (1 + erf(x / math.sqrt(2)))  # Python floats: weak, as in sg


def _gelu_tanh(x):
    return x / 2 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


UNARY = {
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "tanh": np.tanh,
    "negative": np.negative,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0),
    "softplus": _softplus,
    "gelu": _gelu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "silu": lambda x: x * _sigmoid(x),
}

# names of ops.elementwise.FUNCTIONS rows that are spelled differently in the API
FORMULA_ROWS = {"gelu_tanh": "gelu(approximate=True)"}

BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "power": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}

COMPARE = {
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
}


def _sum(x, axis=None, keepdims=False):
    # a float32 sum accumulates in float64 and rounds once (more accurate than NumPy's
    # float32 sum, which can overflow on the way to a finite total)
    wide = np.float64 if x.dtype == np.float32 else None
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=wide).astype(x.dtype)


def _mean(x, axis=None, keepdims=False):
    count = x.size if axis is None else x.shape[axis]
    return _sum(x, axis, keepdims) / count


def _logsumexp(x, axis=None, keepdims=False):
    # the documented max-shifted formula: a row of -inf gives -inf, a row with +inf nan
    top = np.max(x, axis=axis, keepdims=True)
    shift = np.where(top > -np.inf, top, 0)
    total = _sum(np.exp(x - shift), axis=axis, keepdims=True)
    out = np.log(total) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


REDUCE = {
    "sum": _sum,
    "max": np.max,
    "mean": _mean,
    "logsumexp": _logsumexp,
}

OTHER = {
    "where": np.where,
    "gelu_tanh": _gelu_tanh,
}
