"""Hand-written value-and-gradient baselines for the symgrad benchmarks.

Every workload comes in two flavours:

* ``numpy`` -- what a person writes in plain NumPy: whole-array expressions, ``@`` for matmuls,
  temporaries wherever they fall out naturally.
* ``numba`` -- what an expert writes by hand in Numba: ``@njit(cache=False, fastmath=False)``,
  ``np.dot`` on C- or F-contiguous arrays for the matmuls (BLAS), and explicit loops that fuse the
  elementwise work (bias add + activation + its derivative, softmax + cross-entropy + its
  gradient, regulariser value + regulariser gradient, ...) so no avoidable temporary is built.

Both flavours compute exactly the same mathematical quantity and return ``(loss, grads)`` where
``grads`` is a list ordered as ``Workload.wrt``.

API::

    WORKLOADS[name].make_inputs(rng, **shape_overrides) -> dict of keyword inputs
    WORKLOADS[name].numpy(**inputs) -> (loss, [grad, ...])
    WORKLOADS[name].numba(**inputs) -> (loss, [grad, ...])
    WORKLOADS[name].wrt             -> names of the inputs the grads are taken with respect to
    WORKLOADS[name].shapes          -> default (benchmark) sizes, overridable in make_inputs

Input distributions are chosen so that nothing saturates (weights scaled by 1/sqrt(fan_in)):
sigmoids stay in their sensitive range and hinge margins take both signs, which keeps the
finite-difference check in ``check_reference.py`` meaningful.  The distributions do not affect
the amount of work done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

try:
    from scipy.special import erf as _np_erf
except ImportError:  # pragma: no cover - scipy is optional
    _np_erf = np.vectorize(math.erf, otypes=[np.float64])

njit = numba.njit(cache=False, fastmath=False)

INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Workload:
    name: str
    wrt: list[str]
    shapes: dict[str, int]
    make: Callable[..., dict[str, Any]]
    numpy: Callable[..., tuple[Any, list[Any]]]
    numba: Callable[..., tuple[Any, list[Any]]]
    description: str = field(default="")

    def make_inputs(self, rng: np.random.Generator, **shape_overrides: int) -> dict[str, Any]:
        unknown = set(shape_overrides) - set(self.shapes)
        if unknown:
            raise TypeError(f"{self.name}: unknown shape parameter(s) {sorted(unknown)}")
        return self.make(rng, **{**self.shapes, **shape_overrides})


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _np_softmax_xent(S, y):
    """Mean softmax cross-entropy of scores S (N, C) and its gradient w.r.t. S."""
    N = S.shape[0]
    rows = np.arange(N)
    shifted = S - S.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[rows, y].mean()
    dS = np.exp(logp)
    dS[rows, y] -= 1.0
    dS /= N
    return loss, dS


@njit
def _nb_softmax_xent_inplace(S, y):
    """Mean softmax cross-entropy of S (N, C); overwrites S with d(loss)/dS."""
    N, C = S.shape
    inv_n = 1.0 / N
    loss = 0.0
    for i in range(N):
        m = S[i, 0]
        for j in range(1, C):
            if S[i, j] > m:
                m = S[i, j]
        yi = y[i]
        shifted_y = S[i, yi] - m
        total = 0.0
        for j in range(C):
            e = math.exp(S[i, j] - m)
            S[i, j] = e
            total += e
        loss += math.log(total) - shifted_y  # -log p[y]
        scale = inv_n / total
        for j in range(C):
            S[i, j] *= scale
        S[i, yi] -= inv_n
    return loss * inv_n


@njit
def _nb_add_l2(dW, W, coef):
    """dW += 2*coef*W in place; returns coef*sum(W**2)."""
    two_coef = 2.0 * coef
    acc = 0.0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            acc += w * w
            dW[i, j] += two_coef * w
    return coef * acc


# ---------------------------------------------------------------------------------------------
# 1. slide_mlp -- the two-layer sigmoid network from the lecture slide, squared-error loss
# ---------------------------------------------------------------------------------------------


def _slide_mlp_make(rng, N, D_in, H, D_out):
    return {
        "x": rng.standard_normal((N, D_in)),
        "y": rng.standard_normal((N, D_out)),
        "w1": rng.standard_normal((D_in, H)) / math.sqrt(D_in),
        "w2": rng.standard_normal((H, D_out)) / math.sqrt(H),
    }


def slide_mlp_numpy(x, y, w1, w2):
    h = 1.0 / (1.0 + np.exp(-x @ w1))
    y_pred = h @ w2
    loss = np.square(y_pred - y).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T @ grad_y_pred
    grad_h = grad_y_pred @ w2.T
    grad_w1 = x.T @ (grad_h * h * (1.0 - h))
    return loss, [grad_w1, grad_w2]


@njit
def _slide_mlp_nb(x, y, w1, w2):
    h = np.dot(x, w1)
    N, H = h.shape
    for i in range(N):
        for j in range(H):
            h[i, j] = 1.0 / (1.0 + math.exp(-h[i, j]))
    g = np.dot(h, w2)  # y_pred, overwritten by grad_y_pred
    loss = 0.0
    for i in range(N):
        for j in range(g.shape[1]):
            r = g[i, j] - y[i, j]
            loss += r * r
            g[i, j] = 2.0 * r
    grad_w2 = np.dot(h.T, g)
    gh = np.dot(g, w2.T)  # grad_h, overwritten by grad of the pre-activation
    for i in range(N):
        for j in range(H):
            hij = h[i, j]
            gh[i, j] *= hij * (1.0 - hij)
    grad_w1 = np.dot(x.T, gh)
    return loss, grad_w1, grad_w2


def slide_mlp_numba(x, y, w1, w2):
    loss, g1, g2 = _slide_mlp_nb(x, y, w1, w2)
    return loss, [g1, g2]


# ---------------------------------------------------------------------------------------------
# 2. svm -- multiclass hinge loss (CS231n linear SVM) + 0.5*||W||^2
# ---------------------------------------------------------------------------------------------


def _linear_make(rng, N, D, C):
    return {
        "X": rng.standard_normal((N, D)),
        "y": rng.integers(0, C, size=N, dtype=np.int64),
        "W": rng.standard_normal((D, C)) / math.sqrt(D),
    }


def svm_numpy(X, y, W):
    N = X.shape[0]
    rows = np.arange(N)
    S = X @ W
    margins = np.maximum(0.0, S - S[rows, y][:, None] + 1.0)
    margins[rows, y] = 0.0
    loss = margins.sum() / N + 0.5 * np.sum(W * W)
    dS = (margins > 0).astype(np.float64)
    dS[rows, y] = -dS.sum(axis=1)
    dW = X.T @ dS / N + W
    return loss, [dW]


@njit
def _svm_nb(X, y, W):
    S = np.dot(X, W)  # overwritten row by row with d(loss)/dS
    N, C = S.shape
    inv_n = 1.0 / N
    loss = 0.0
    for i in range(N):
        yi = y[i]
        sy = S[i, yi]
        count = 0
        for j in range(C):
            margin = S[i, j] - sy + 1.0
            if j != yi and margin > 0.0:
                loss += margin
                S[i, j] = inv_n
                count += 1
            else:
                S[i, j] = 0.0
        S[i, yi] = -count * inv_n
    dW = np.dot(X.T, S)
    loss = loss * inv_n + _nb_add_l2(dW, W, 0.5)
    return loss, dW


def svm_numba(X, y, W):
    loss, dW = _svm_nb(X, y, W)
    return loss, [dW]


# ---------------------------------------------------------------------------------------------
# 3. softmax -- linear softmax classifier, mean cross-entropy + 0.5*||W||^2
# ---------------------------------------------------------------------------------------------


def softmax_numpy(X, y, W):
    loss, dS = _np_softmax_xent(X @ W, y)
    loss = loss + 0.5 * np.sum(W * W)
    dW = X.T @ dS + W
    return loss, [dW]


@njit
def _softmax_nb(X, y, W):
    S = np.dot(X, W)
    loss = _nb_softmax_xent_inplace(S, y)
    dW = np.dot(X.T, S)
    loss += _nb_add_l2(dW, W, 0.5)
    return loss, dW


def softmax_numba(X, y, W):
    loss, dW = _softmax_nb(X, y, W)
    return loss, [dW]


# ---------------------------------------------------------------------------------------------
# 4. mlp_act -- 784-256-128-10 MLP with exact GELU and SiLU, softmax cross-entropy + L2
# ---------------------------------------------------------------------------------------------

MLP_L2 = 1e-4


def _mlp_act_make(rng, N, D, H1, H2, C):
    return {
        "X": rng.standard_normal((N, D)),
        "y": rng.integers(0, C, size=N, dtype=np.int64),
        "W1": rng.standard_normal((D, H1)) / math.sqrt(D),
        "b1": 0.1 * rng.standard_normal(H1),
        "W2": rng.standard_normal((H1, H2)) / math.sqrt(H1),
        "b2": 0.1 * rng.standard_normal(H2),
        "W3": rng.standard_normal((H2, C)) / math.sqrt(H2),
        "b3": 0.1 * rng.standard_normal(C),
    }


def mlp_act_numpy(X, y, W1, b1, W2, b2, W3, b3):
    z1 = X @ W1 + b1
    cdf1 = 0.5 * (1.0 + _np_erf(z1 * INV_SQRT2))
    h1 = z1 * cdf1
    z2 = h1 @ W2 + b2
    sig2 = 1.0 / (1.0 + np.exp(-z2))
    h2 = z2 * sig2
    S = h2 @ W3 + b3
    loss, dS = _np_softmax_xent(S, y)
    loss = loss + MLP_L2 * (np.sum(W1 * W1) + np.sum(W2 * W2) + np.sum(W3 * W3))

    dW3 = h2.T @ dS + 2 * MLP_L2 * W3
    db3 = dS.sum(axis=0)
    dz2 = (dS @ W3.T) * (sig2 * (1.0 + z2 * (1.0 - sig2)))
    dW2 = h1.T @ dz2 + 2 * MLP_L2 * W2
    db2 = dz2.sum(axis=0)
    dz1 = (dz2 @ W2.T) * (cdf1 + z1 * np.exp(-0.5 * z1 * z1) * INV_SQRT_2PI)
    dW1 = X.T @ dz1 + 2 * MLP_L2 * W1
    db1 = dz1.sum(axis=0)
    return loss, [dW1, db1, dW2, db2, dW3, db3]


@njit
def _bias_gelu_inplace(z, b, deriv):
    """z <- gelu(z + b) (exact, erf-based); deriv <- gelu'(z + b)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            cdf = 0.5 * (1.0 + math.erf(v * INV_SQRT2))
            z[i, j] = v * cdf
            deriv[i, j] = cdf + v * math.exp(-0.5 * v * v) * INV_SQRT_2PI


@njit
def _bias_silu_inplace(z, b, deriv):
    """z <- silu(z + b); deriv <- silu'(z + b)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j] + b[j]
            s = 1.0 / (1.0 + math.exp(-v))
            z[i, j] = v * s
            deriv[i, j] = s * (1.0 + v * (1.0 - s))


@njit
def _mul_colsum_inplace(g, deriv, colsum):
    """g *= deriv in place; colsum <- column sums of the product."""
    colsum[:] = 0.0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            v = g[i, j] * deriv[i, j]
            g[i, j] = v
            colsum[j] += v


@njit
def _mlp_act_nb(X, y, W1, b1, W2, b2, W3, b3):
    h1 = np.dot(X, W1)
    d1 = np.empty_like(h1)
    _bias_gelu_inplace(h1, b1, d1)
    h2 = np.dot(h1, W2)
    d2 = np.empty_like(h2)
    _bias_silu_inplace(h2, b2, d2)
    S = np.dot(h2, W3)
    N, C = S.shape
    for i in range(N):
        for j in range(C):
            S[i, j] += b3[j]
    loss = _nb_softmax_xent_inplace(S, y)  # S is now dS

    db3 = np.zeros(C)
    for i in range(N):
        for j in range(C):
            db3[j] += S[i, j]
    dW3 = np.dot(h2.T, S)
    dz2 = np.dot(S, W3.T)
    db2 = np.empty(dz2.shape[1])
    _mul_colsum_inplace(dz2, d2, db2)
    dW2 = np.dot(h1.T, dz2)
    dz1 = np.dot(dz2, W2.T)
    db1 = np.empty(dz1.shape[1])
    _mul_colsum_inplace(dz1, d1, db1)
    dW1 = np.dot(X.T, dz1)
    loss += _nb_add_l2(dW1, W1, MLP_L2)
    loss += _nb_add_l2(dW2, W2, MLP_L2)
    loss += _nb_add_l2(dW3, W3, MLP_L2)
    return loss, dW1, db1, dW2, db2, dW3, db3


def mlp_act_numba(X, y, W1, b1, W2, b2, W3, b3):
    loss, *grads = _mlp_act_nb(X, y, W1, b1, W2, b2, W3, b3)
    return loss, grads


# ---------------------------------------------------------------------------------------------
# 5. scalar_slide -- f = (x + y) * z on Python floats
# ---------------------------------------------------------------------------------------------


def _scalar_slide_make(rng):
    return {k: float(rng.standard_normal()) for k in ("x", "y", "z")}


def scalar_slide_numpy(x, y, z):
    q = x + y
    return q * z, [z, z, q]


@njit
def _scalar_slide_nb(x, y, z):
    q = x + y
    return q * z, z, z, q


def scalar_slide_numba(x, y, z):
    f, dx, dy, dz = _scalar_slide_nb(x, y, z)
    return f, [dx, dy, dz]


# ---------------------------------------------------------------------------------------------
# 6. elementwise_chain -- sum(tanh(sigmoid(x)*x + exp(-x**2)) * log1p(x**2)) over 1e6 elements
# ---------------------------------------------------------------------------------------------


def _elementwise_make(rng, n):
    return {"x": rng.standard_normal(n)}


def elementwise_chain_numpy(x):
    sig = 1.0 / (1.0 + np.exp(-x))
    x2 = x**2
    e = np.exp(-x2)
    t = np.tanh(sig * x + e)
    log_term = np.log1p(x2)
    loss = np.sum(t * log_term)
    du = sig * (1.0 - sig) * x + sig - 2.0 * x * e
    grad = (1.0 - t**2) * du * log_term + t * (2.0 * x / (1.0 + x2))
    return loss, [grad]


@njit
def _elementwise_chain_nb(x):
    n = x.shape[0]
    grad = np.empty(n)
    total = 0.0
    block = 4096  # blocked partial sums keep the 1e6-term reduction accurate
    for start in range(0, n, block):
        partial = 0.0
        for i in range(start, min(start + block, n)):
            xi = x[i]
            x2 = xi * xi
            sig = 1.0 / (1.0 + math.exp(-xi))
            e = math.exp(-x2)
            t = math.tanh(sig * xi + e)
            log_term = math.log1p(x2)
            partial += t * log_term
            du = sig * (1.0 - sig) * xi + sig - 2.0 * xi * e
            grad[i] = (1.0 - t * t) * du * log_term + t * (2.0 * xi / (1.0 + x2))
        total += partial
    return total, grad


def elementwise_chain_numba(x):
    loss, grad = _elementwise_chain_nb(x)
    return loss, [grad]


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "slide_mlp",
            wrt=["w1", "w2"],
            shapes={"N": 64, "D_in": 1000, "H": 100, "D_out": 10},
            make=_slide_mlp_make,
            numpy=slide_mlp_numpy,
            numba=slide_mlp_numba,
            description="sum((sigmoid(x@w1)@w2 - y)**2)",
        ),
        Workload(
            "svm",
            wrt=["W"],
            shapes={"N": 500, "D": 3073, "C": 10},
            make=_linear_make,
            numpy=svm_numpy,
            numba=svm_numba,
            description="mean multiclass hinge of X@W + 0.5*sum(W**2)",
        ),
        Workload(
            "softmax",
            wrt=["W"],
            shapes={"N": 500, "D": 3073, "C": 10},
            make=_linear_make,
            numpy=softmax_numpy,
            numba=softmax_numba,
            description="mean softmax cross-entropy of X@W + 0.5*sum(W**2)",
        ),
        Workload(
            "mlp_act",
            wrt=["W1", "b1", "W2", "b2", "W3", "b3"],
            shapes={"N": 256, "D": 784, "H1": 256, "H2": 128, "C": 10},
            make=_mlp_act_make,
            numpy=mlp_act_numpy,
            numba=mlp_act_numba,
            description="gelu/silu MLP, mean softmax cross-entropy + 1e-4*sum(W**2)",
        ),
        Workload(
            "scalar_slide",
            wrt=["x", "y", "z"],
            shapes={},
            make=_scalar_slide_make,
            numpy=scalar_slide_numpy,
            numba=scalar_slide_numba,
            description="(x + y) * z on Python floats",
        ),
        Workload(
            "elementwise_chain",
            wrt=["x"],
            shapes={"n": 1_000_000},
            make=_elementwise_make,
            numpy=elementwise_chain_numpy,
            numba=elementwise_chain_numba,
            description="sum(tanh(sigmoid(x)*x + exp(-x**2)) * log1p(x**2))",
        ),
    ]
}
