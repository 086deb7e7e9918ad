"""Numerical extremes on both backends, and float32 end to end.

The contract (docs/design.md, Conventions): numerically stable forms are the default --
log-softmax through log-sum-exp, sigmoid and softplus without overflow for |x| up to 1e4,
no NaN in a gradient whose value is finite -- and float32 inputs compute in float32 end
to end.  Every check compares against a stable NumPy reference written independently of
symgrad (max-shifted log-sum-exp, per-sign sigmoid/softplus, erfc for the normal CDF).

Elementwise functions are checked through one kernel each: ``sum(w * fn(x))`` with
respect to ``[x, w]`` at ``w = 1`` gives the value ``fn(x)`` element by element (as the
gradient for ``w``) and the derivative ``fn'(x)`` (as the gradient for ``x``).  Compiled
functions are cached per (graph, backend) so the numba backend compiles each graph once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import compile_cached, value_and_grad_cached

import symgrad as sg

erfc = np.vectorize(math.erfc, otypes=[float])  # SciPy is optional

# Tolerances of the comparisons with the stable references.  ATOL only absorbs the
# subnormal range (|v| < 2.2e-308), where a relative comparison means nothing.
RTOL, ATOL = 1e-12, 1e-300

# Points around every overflow threshold of exp in float64 (709.78) and far beyond it.
EXTREME_X = np.array(
    [-1e4, -1e3, -746.0, -710.0, -709.0, -50.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 50.0, 709.0, 710.0, 1e3, 1e4]
)


def assert_close(got, want, what, rtol=RTOL, atol=ATOL):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert not np.isnan(got).any(), f"{what}: NaN at {np.flatnonzero(np.isnan(got))} in {got}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


# --- stable references (NumPy, float64) ---------------------------------------------------


def ref_sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ref_softplus(x):
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def ref_logsumexp(s, axis=None, keepdims=False):
    m = np.max(s, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(s - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def ref_softmax(s, axis=-1):
    e = np.exp(s - np.max(s, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def ref_softmax_ce(s, labels):
    """Value and gradient of the mean softmax cross-entropy: (softmax - onehot) / N."""
    n = s.shape[0]
    lse = ref_logsumexp(s, axis=1)
    value = float(np.mean(lse - s[np.arange(n), labels]))
    onehot = np.zeros_like(s)
    onehot[np.arange(n), labels] = 1.0
    return value, (ref_softmax(s) - onehot) / n


def ref_phi(x):
    """Normal CDF through erfc, accurate in both tails."""
    return 0.5 * erfc(-np.asarray(x) / math.sqrt(2.0))


def ref_pdf(x):
    return np.exp(-0.5 * np.asarray(x) ** 2) / math.sqrt(2.0 * math.pi)


# --- softmax cross-entropy, log-softmax, logsumexp ----------------------------------------


def extreme_scores(rng):
    """Scores in [-1e4, 1e4] with ties at the extremes, all-equal rows and huge spreads."""
    s = rng.uniform(-1e4, 1e4, size=(9, 5))
    s[0] = [1e4, -1e4, 1e4, 0.0, -1e4]  # tie between two maxima at +1e4
    s[1] = -1e4  # all equal, very negative
    s[2] = 1e4  # all equal, very positive
    s[3] = [1e4, 1e4 - 1e-3, -1e4, -1e4, 5e3]
    s[4] = [-1e4, -1e4 + 30.0, -1e4 + 1.0, -1e4, -1e4]
    s[5] = [0.0, 0.0, 0.0, 0.0, 1e4]  # label far below the winner
    return s


def test_softmax_cross_entropy_at_1e4(backend):
    rng = np.random.default_rng(0)
    S = sg.tensor("S", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    vg = value_and_grad_cached(sg.losses.softmax_cross_entropy(S, y), S, backend)
    s = extreme_scores(rng)
    labels = np.array([1, 0, 4, 1, 1, 0, 2, 3, 4])
    value, grad = vg(S=s, y=labels)
    want_value, want_grad = ref_softmax_ce(s, labels)
    assert isinstance(value, float) and math.isfinite(value)
    assert value == pytest.approx(want_value, rel=1e-12)
    assert grad.dtype == np.float64 and grad.shape == s.shape
    assert_close(grad, want_grad, "d CE / d scores", atol=1e-15)
    # the label's own logit is the maximum: loss ~ 0, gradient ~ 0, never NaN
    value, grad = vg(S=s[2:4], y=np.array([0, 0]))
    want_value, want_grad = ref_softmax_ce(s[2:4], np.array([0, 0]))
    assert value == pytest.approx(want_value, rel=1e-12, abs=1e-12)
    assert_close(grad, want_grad, "d CE / d scores (label wins)", atol=1e-15)


def test_softmax_cross_entropy_sum_reduction_at_1e4(backend):
    S = sg.tensor("S", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    vg = value_and_grad_cached(sg.losses.softmax_cross_entropy(S, y, reduction="sum"), S, backend)
    s = extreme_scores(np.random.default_rng(1))
    labels = np.array([4, 3, 2, 1, 0, 0, 1, 2, 3])
    value, grad = vg(S=s, y=labels)
    want_value, want_grad = ref_softmax_ce(s, labels)
    assert math.isfinite(value)
    assert value == pytest.approx(want_value * len(labels), rel=1e-12)
    assert_close(grad, want_grad * len(labels), "d CE(sum) / d scores", atol=1e-14)


def test_log_softmax_softmax_logsumexp_at_1e4(backend):
    """One graph reading log_softmax, softmax and logsumexp (per row and over all) of the
    same extreme scores; each is weighted by its own input tensor, so the gradient for the
    weight is the op's value and the gradient for the scores is the sum of their VJPs."""
    S = sg.tensor("S", ("N", "C"))
    A = sg.tensor("A", ("N", "C"))  # weights of log_softmax
    B = sg.tensor("B", ("N", "C"))  # weights of softmax
    r = sg.tensor("r", ("N",))  # weights of the row-wise logsumexp
    u = sg.tensor("u")  # weight of the logsumexp over everything
    f = (
        sg.sum(A * sg.log_softmax(S))
        + sg.sum(B * sg.softmax(S))
        + sg.sum(r * sg.logsumexp(S, axis=1))
        + u * sg.logsumexp(S)
    )
    vg = value_and_grad_cached(f, [S, A, B, r, u], backend)
    rng = np.random.default_rng(2)
    s = extreme_scores(rng)
    a, b = rng.normal(size=s.shape), rng.normal(size=s.shape)
    rr, uu = rng.normal(size=s.shape[0]), 0.75
    value, (gS, gA, gB, gr, gu) = vg(S=s, A=a, B=b, r=rr, u=uu)

    lse_rows = ref_logsumexp(s, axis=1)
    lse_all = ref_logsumexp(s)
    log_p, p = s - lse_rows[:, None], ref_softmax(s)
    p_all = np.exp(s - lse_all)
    assert np.isfinite(lse_all) and math.isfinite(value)
    assert_close(gA, log_p, "log_softmax values", atol=1e-12)
    assert_close(gB, p, "softmax values", atol=1e-300)
    assert_close(gr, lse_rows, "logsumexp(axis=1) values")
    assert isinstance(gu, float)
    assert gu == pytest.approx(lse_all, rel=1e-12)
    want_gS = (
        a - p * a.sum(axis=1, keepdims=True)  # VJP of log_softmax
        + p * (b - np.sum(p * b, axis=1, keepdims=True))  # VJP of softmax
        + rr[:, None] * p  # VJP of logsumexp rows: softmax
        + uu * p_all  # VJP of logsumexp over all
    )
    assert_close(gS, want_gS, "d f / d scores", atol=1e-12)
    want_value = np.sum(a * log_p) + np.sum(b * p) + np.sum(rr * lse_rows) + uu * lse_all
    assert value == pytest.approx(want_value, rel=1e-10)


# --- elementwise activations -----------------------------------------------------------------


def elementwise(fn, backend, dtype="float64"):
    """``x -> (fn(x), fn'(x), value of sum(fn(x)))`` through one compiled kernel."""
    x = sg.tensor("x", ("N",), dtype=dtype)
    w = sg.tensor("w", ("N",), dtype=dtype)
    vg = value_and_grad_cached(sg.sum(w * fn(x)), [x, w], backend)

    def run(xs):
        xs = np.asarray(xs, dtype=dtype)
        total, (dx, dw) = vg(x=xs, w=np.ones_like(xs))
        return dw, dx, total

    return run


def ref_sigmoid_pair(x):
    s = ref_sigmoid(x)
    return s, s * (1.0 - s)


def ref_softplus_pair(x):
    return ref_softplus(x), ref_sigmoid(x)


def ref_silu_pair(x):
    s = ref_sigmoid(x)
    return x * s, s + x * s * (1.0 - s)


def ref_gelu_pair(x):
    phi = ref_phi(x)
    with np.errstate(under="ignore"):
        return x * phi, phi + x * ref_pdf(x)


def ref_gelu_tanh_pair(x):
    k = math.sqrt(2.0 / math.pi)
    inner = k * (x + 0.044715 * x**3)
    t = np.tanh(inner)
    return 0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * k * (1.0 + 3 * 0.044715 * x**2)


def ref_elu_pair(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))), np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))


def ref_tanh_pair(x):
    t = np.tanh(x)
    return t, 1.0 - t**2


ACTIVATIONS = {
    # name: (symgrad function, reference (value, derivative), points)
    "sigmoid": (sg.sigmoid, ref_sigmoid_pair, EXTREME_X),
    "softplus": (sg.softplus, ref_softplus_pair, EXTREME_X),
    "silu": (sg.silu, ref_silu_pair, EXTREME_X),
    "gelu": (sg.gelu, ref_gelu_pair, np.array([-1e4, -1e3, -5.0, -1.0, 0.0, 1.0, 5.0, 1e3, 1e4])),
    "gelu_tanh": (
        lambda v: sg.gelu(v, approximate=True),
        ref_gelu_tanh_pair,
        np.array([-1e3, -20.0, -1.0, 0.0, 1.0, 20.0, 1e3]),
    ),
    "elu": (sg.elu, ref_elu_pair, EXTREME_X),
    "tanh": (sg.tanh, ref_tanh_pair, EXTREME_X),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_values_and_gradients_at_extremes(backend, name):
    fn, ref, xs = ACTIVATIONS[name]
    values, grads, total = elementwise(fn, backend)(xs)
    want_values, want_grads = ref(xs)
    assert np.isfinite(values).all(), f"{name}({xs}) = {values}"
    assert np.isfinite(grads).all(), f"{name}'({xs}) = {grads}"
    # gelu's erf form loses relative accuracy in the left tail (1 + erf(x/sqrt 2))
    rtol = 1e-9 if name.startswith("gelu") else RTOL
    assert_close(values, want_values, f"{name} values at {xs}", rtol=rtol)
    assert_close(grads, want_grads, f"{name} derivative at {xs}", rtol=rtol)
    assert math.isfinite(total)


def test_sigmoid_saturates_exactly(backend):
    values, grads, _ = elementwise(sg.sigmoid, backend)(np.array([-1e4, -1e3, 1e3, 1e4]))
    assert values.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert grads.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_softplus_is_x_for_large_x_and_exp_for_very_negative_x(backend):
    values, grads, _ = elementwise(sg.softplus, backend)(np.array([1e3, 1e4, -40.0, -700.0]))
    assert values[:2].tolist() == [1e3, 1e4]
    assert grads[:2].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(values[2:], np.exp([-40.0, -700.0]), rtol=1e-14)
    np.testing.assert_allclose(grads[2:], np.exp([-40.0, -700.0]), rtol=1e-14)


def test_log1p_near_minus_one_and_tiny(backend):
    xs = np.array([-1 + 1e-12, -1 + 2**-52, -0.5, 1e-300, 5e-324, 1e-20, -1e-20, 1e-8, 1e300])
    values, grads, total = elementwise(sg.log1p, backend)(xs)
    assert math.isfinite(total)
    assert_close(values, np.log1p(xs), "log1p values", rtol=1e-15, atol=0.0)
    assert_close(grads, 1.0 / (1.0 + xs), "log1p derivative", rtol=1e-14, atol=0.0)
    # exact where log(1 + x) would round to 0
    assert values[3] == 1e-300 and values[4] == 5e-324 and values[5] == 1e-20


def test_exp_near_overflow(backend):
    xs = np.array([-1e4, -746.0, -745.0, 0.0, 1.0, 709.0, 709.78, 710.0, 1e4])
    values, grads, total = elementwise(sg.exp, backend)(xs)
    with np.errstate(over="ignore"):
        want = np.exp(xs)
    assert np.isfinite(values[:7]).all() and values[5] == pytest.approx(8.218407461554972e307, rel=1e-14)
    assert values[7] == np.inf and values[8] == np.inf
    assert total == np.inf
    assert not np.isnan(grads).any(), grads
    assert grads[7] == np.inf and grads[8] == np.inf
    assert_close(values[:7], want[:7], "exp values", rtol=1e-15, atol=0.0)
    assert_close(grads[:7], want[:7], "exp derivative", rtol=1e-15, atol=0.0)


def test_overflowing_entry_does_not_poison_the_other_gradients(backend):
    """exp(710) = inf in one entry of a mean: the other entries' gradients stay exact."""
    x = sg.tensor("x", ("N",))
    vg = value_and_grad_cached(sg.mean(sg.exp(x)), x, backend)
    xs = np.array([710.0, 0.0, 1.0, -3.0])
    value, grad = vg(x=xs)
    assert value == np.inf
    assert not np.isnan(grad).any(), grad
    assert grad[0] == np.inf
    np.testing.assert_allclose(grad[1:], np.exp(xs[1:]) / 4, rtol=1e-15)


def test_no_nan_gradient_where_the_value_is_finite(backend):
    """A composite that a person writes (softplus, sigmoid, silu, elu, tanh, log1p mixed)
    stays NaN-free across the whole extreme range, after fusion and simplification."""
    x = sg.tensor("x", ("N",))
    f = sg.sum(
        sg.softplus(x) - 0.5 * sg.sigmoid(x) * sg.silu(x) + sg.elu(x) * sg.tanh(x)
        + sg.log1p(sg.sigmoid(x)) + sg.softplus(-x) * sg.sigmoid(x)
    )
    vg = value_and_grad_cached(f, x, backend)
    for xs in (EXTREME_X, -EXTREME_X[::-1], np.array([1e4]), np.array([-1e4])):
        value, grad = vg(x=xs)
        assert math.isfinite(value), (xs, value)
        assert np.isfinite(grad).all(), (xs, grad)
    # and the value itself is right
    xs = EXTREME_X
    s = ref_sigmoid(xs)
    want = np.sum(
        ref_softplus(xs) - 0.5 * s * xs * s + ref_elu_pair(xs)[0] * np.tanh(xs)
        + np.log1p(s) + ref_softplus(-xs) * s
    )
    value, _ = vg(x=xs)
    assert value == pytest.approx(want, rel=1e-12)


def test_forward_compile_of_activations_at_extremes(backend):
    """sg.compile (forward only, several outputs) gives the same stable values."""
    x = sg.tensor("x", ("N",))
    fwd = compile_cached([sg.sigmoid(x), sg.softplus(x), sg.log_softmax(x), sg.logsumexp(x)], backend)
    xs = np.array([-1e4, 0.0, 1e4, 1e4])
    sig, sp_, logp, lse = fwd(x=xs)
    assert_close(sig, ref_sigmoid(xs), "sigmoid")
    assert_close(sp_, ref_softplus(xs), "softplus")
    assert_close(logp, xs - ref_logsumexp(xs), "log_softmax")
    assert lse == pytest.approx(1e4 + math.log(2.0), rel=1e-15)


# --- float32 end to end -----------------------------------------------------------------------


def mlp(dtype):
    """The course's two-layer net with softmax cross-entropy and L2, in ``dtype``."""
    X = sg.tensor("X", ("N", "D"), dtype=dtype)
    W1 = sg.tensor("W1", ("D", "H"), dtype=dtype)
    b1 = sg.tensor("b1", ("H",), dtype=dtype)
    W2 = sg.tensor("W2", ("H", "C"), dtype=dtype)
    b2 = sg.tensor("b2", ("C",), dtype=dtype)
    y = sg.tensor("y", ("N",), dtype="int64")
    scores = sg.relu(X @ W1 + b1) @ W2 + b2
    loss = sg.losses.softmax_cross_entropy(scores, y) + 1e-3 * sg.losses.l2(W1, W2)
    return loss, [W1, b1, W2, b2]


def mlp_inputs(seed=0, n=32, d=6, h=10, c=4):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.normal(size=(n, d)),
        "W1": rng.normal(size=(d, h)) * 0.5,
        "b1": rng.normal(size=h) * 0.1,
        "W2": rng.normal(size=(h, c)) * 0.5,
        "b2": rng.normal(size=c) * 0.1,
        "y": rng.integers(0, c, size=n),
    }


def as_float32(inputs):
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in inputs.items()}


def test_float32_mlp_end_to_end(backend):
    loss64, wrt64 = mlp("float64")
    loss32, wrt32 = mlp("float32")
    vg64 = value_and_grad_cached(loss64, wrt64, backend)
    vg32 = value_and_grad_cached(loss32, wrt32, backend)
    inputs = mlp_inputs()
    inputs32 = as_float32(inputs)
    copies = {k: v.copy() for k, v in inputs32.items()}
    value64, grads64 = vg64(**inputs)
    value32, grads32 = vg32(**inputs32)
    assert isinstance(value32, float)
    assert value32 == pytest.approx(value64, rel=1e-4)
    for g32, g64, t in zip(grads32, grads64, wrt32):
        assert isinstance(g32, np.ndarray) and g32.dtype == np.float32, (t.name, g32.dtype)
        assert g32.shape == g64.shape
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5 * np.abs(g64).max(), err_msg=t.name)
    for k, v in inputs32.items():  # inputs never modified
        np.testing.assert_array_equal(v, copies[k])
        assert v.dtype == copies[k].dtype
    # the compiled float32 function keeps working on new named-dim sizes
    value, grads = vg32(**as_float32(mlp_inputs(seed=1, n=7)))
    assert math.isfinite(value) and all(g.dtype == np.float32 for g in grads)


def test_float32_scalar_value_is_a_float32_number(backend):
    """'float32 inputs compute in float32 end to end': the scalar a float32 graph returns
    (a Python float) holds a float32 number, and both backends agree on it."""
    loss32, wrt32 = mlp("float32")
    value, _ = value_and_grad_cached(loss32, wrt32, backend)(**as_float32(mlp_inputs()))
    assert value == float(np.float32(value))
    xs = np.array([0.5, -1.0, 2.0, 3.25], dtype=np.float32)
    values, grads, total = elementwise(sg.sigmoid, backend, "float32")(xs)
    assert values.dtype == np.float32 and grads.dtype == np.float32
    assert isinstance(total, float)
    assert total == float(np.float32(total)), f"sum(sigmoid(x)) of float32 x = {total!r} is not a float32 value"
    assert total == pytest.approx(float(np.sum(ref_sigmoid(xs))), rel=1e-6)


def test_float64_inputs_to_float32_tensors_compute_in_float32(backend):
    """backends/inputs.py: 'Float tensors take any real input and convert it to the declared
    float dtype (so a float64 array passed for a float32 tensor computes in float32)'."""
    loss32, wrt32 = mlp("float32")
    vg32 = value_and_grad_cached(loss32, wrt32, backend)
    inputs = mlp_inputs(seed=3)
    copies = {k: v.copy() for k, v in inputs.items()}
    value_a, grads_a = vg32(**inputs)  # float64 arrays
    value_b, grads_b = vg32(**as_float32(inputs))  # the same values rounded to float32
    assert value_a == value_b
    for a, b in zip(grads_a, grads_b):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    for k, v in inputs.items():  # the float64 arrays are neither modified nor converted in place
        assert v.dtype == copies[k].dtype
        np.testing.assert_array_equal(v, copies[k])
    # lists and Python scalars convert too, and ints for a float32 tensor are accepted
    x = sg.tensor("x", ("N",), dtype="float32")
    a = sg.tensor("a", (), dtype="float32")
    vg = value_and_grad_cached(sg.sum(sg.softplus(a * x)), [x, a], backend)
    value, (gx, ga) = vg(x=[1.0, -2.0, 3], a=0.1)
    assert gx.dtype == np.float32 and isinstance(ga, float) and isinstance(value, float)
    value2, (gx2, ga2) = vg(x=np.array([1.0, -2.0, 3.0], dtype=np.float32), a=np.float32(0.1))
    assert value == value2 and ga == ga2
    np.testing.assert_array_equal(gx, gx2)


def test_float32_extremes(backend):
    """float32 overflows at exp(88.7): the stable forms must hold there too."""
    xs = np.array([-1e4, -1e3, -100.0, -89.0, -88.0, 0.0, 88.0, 89.0, 100.0, 1e3, 1e4], dtype=np.float32)
    for fn, ref in ((sg.sigmoid, ref_sigmoid_pair), (sg.softplus, ref_softplus_pair)):
        values, grads, total = elementwise(fn, backend, "float32")(xs)
        assert values.dtype == np.float32 and grads.dtype == np.float32
        assert np.isfinite(values).all() and np.isfinite(grads).all() and math.isfinite(total)
        want_values, want_grads = ref(xs.astype(np.float64))
        np.testing.assert_allclose(values, want_values, rtol=1e-6, atol=1e-37)
        np.testing.assert_allclose(grads, want_grads, rtol=1e-6, atol=1e-37)
    S = sg.tensor("S", ("N", "C"), dtype="float32")
    y = sg.tensor("y", ("N",), dtype="int64")
    vg = value_and_grad_cached(sg.losses.softmax_cross_entropy(S, y), S, backend)
    s = extreme_scores(np.random.default_rng(4)).astype(np.float32)
    labels = np.array([1, 0, 4, 1, 1, 0, 2, 3, 4])
    value, grad = vg(S=s, y=labels)
    want_value, want_grad = ref_softmax_ce(s.astype(np.float64), labels)
    assert grad.dtype == np.float32 and math.isfinite(value)
    assert value == pytest.approx(want_value, rel=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)
