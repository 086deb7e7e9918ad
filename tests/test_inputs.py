"""Defined behaviour of a compiled function's inputs and outputs, on both backends.

What a call accepts (``symgrad/backends/inputs.py``): NumPy arrays in any memory order
(non-contiguous views, Fortran order, zero strides), read-only arrays, other endianness,
Python lists and scalars where arrays are declared; named dims of size 0 (an empty batch).
What it guarantees: NaN and Inf propagate as in NumPy, inputs are never modified, outputs are
fresh arrays (no aliasing of an input, of another output, or of an earlier call's result),
float32 graphs compute and return float32, and an out-of-range label is rejected before any
kernel runs -- proven in a subprocess, which survives and reports the error.

Compiled functions are cached per module (``_compiled``) so that each graph is compiled once
per backend (a Numba compile costs about a second).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgrad as sg
import symgrad.backends.inputs as inputs_module

_compiled: dict = {}


def compiled(key, backend, make):
    """``make(backend)``, once per (key, backend)."""
    if (key, backend) not in _compiled:
        _compiled[key, backend] = make(backend)
    return _compiled[key, backend]


# --- graphs ----------------------------------------------------------------------------------

X = sg.tensor("X_in", ("N", 3))
W = sg.tensor("W_in", (3, 2))
B = sg.tensor("b_in", (2,))
Y = sg.tensor("y_in", ("N",), dtype="int64")
S = sg.tensor("s_in", ())


def net(backend):
    """value_and_grad of a small network, with respect to every float input."""
    loss = sg.mean(sg.tanh(X @ W + B) ** 2) + S * sg.sum(W * W)
    return sg.value_and_grad(loss, [X, W, B, S], backend=backend)


def net_reference(x, w, b, s):
    x, w, b = (np.asarray(v, dtype=np.float64) for v in (x, w, b))
    h = np.tanh(x @ w + b)
    loss = np.mean(h**2) + s * np.sum(w * w)
    g = 2 * h / h.size * (1 - h**2)
    return loss, [g @ w.T, x.T @ g + 2 * s * w, g.sum(axis=0), float(np.sum(w * w))]


def elementwise(backend):
    return sg.compile(2 * X + 1, backend=backend)


def many_outputs(backend):
    """Outputs that are an input as it is, the same node twice, and views of one value."""
    return sg.compile([X, X, X * 1, X.T, sg.reshape(2 * X, (3, "N")), 2 * X], backend=backend)


def classifier(backend):
    loss = sg.losses.softmax_cross_entropy(X @ W + B, Y)
    return sg.value_and_grad(loss, [W, B], backend=backend)


def reductions(backend):
    return sg.compile(
        [sg.sum(X), sg.mean(X), sg.sum(X, axis=0), sg.mean(X, axis=0), X @ W], backend=backend
    )


def propagation(backend):
    return sg.compile(
        [
            2 * X + 1,
            sg.exp(X),
            sg.tanh(X),
            sg.sum(X, axis=1),
            sg.mean(X, axis=1),
            sg.max(X, axis=1),
            sg.softmax(X),
            X @ W,
        ],
        backend=backend,
    )


RNG = np.random.default_rng(7)
x0, w0, b0, s0 = (
    RNG.standard_normal((4, 3)),
    RNG.standard_normal((3, 2)),
    RNG.standard_normal(2),
    0.3,
)


def call_net(backend, x=x0, w=w0, b=b0, s=s0):
    return compiled("net", backend, net)(X_in=x, W_in=w, b_in=b, s_in=s)


def assert_net(result, x=x0, w=w0, b=b0, s=s0):
    value, grads = result
    want_value, want_grads = net_reference(x, w, b, s)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for g, want in zip(grads, want_grads):
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-14)


# --- memory layouts and kinds of values ------------------------------------------------------


def layouts(a):
    """``a`` in other memory layouts, each with the same values."""
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3)) if a.ndim == 2 else np.zeros(a.shape[0] * 3)
    strided = big[::2, ::3] if a.ndim == 2 else big[::3]
    strided[...] = a
    readonly = a.copy()
    readonly.setflags(write=False)
    return {
        "fortran": np.asfortranarray(a),
        "strided view": strided,
        "reversed view": a[::-1].copy()[::-1],
        "read-only": readonly,
        "big-endian": a.astype(">f8"),
        "list": a.tolist(),
    }


@pytest.mark.parametrize(
    "layout", ["fortran", "strided view", "reversed view", "read-only", "big-endian", "list"]
)
def test_memory_layouts_give_the_same_results(backend, layout):
    x, w = layouts(x0)[layout], layouts(w0)[layout]
    assert_net(call_net(backend, x=x, w=w))


def test_transposed_and_broadcast_views(backend):
    w_t = np.ascontiguousarray(w0.T).T  # Fortran-ordered view of a transpose
    b_zero_stride = np.broadcast_to(np.float64(0.25), (2,))  # read-only, stride 0
    assert not b_zero_stride.flags.writeable and b_zero_stride.strides == (0,)
    assert_net(call_net(backend, w=w_t, b=b_zero_stride), w=w0, b=np.full(2, 0.25))


@pytest.mark.parametrize(
    "s",
    [2, 2.0, np.float32(2.0), np.float64(2.0), np.array(2.0), np.int64(2), True],
    ids=["int", "float", "np.float32", "np.float64", "0-d array", "np.int64", "bool"],
)
def test_python_and_numpy_scalars_for_a_scalar_tensor(backend, s):
    assert_net(call_net(backend, s=s), s=float(s))


def test_nested_lists_and_int_arrays_for_float_tensors(backend):
    x_int = np.arange(12).reshape(4, 3) - 5
    assert_net(
        call_net(backend, x=x_int.tolist(), b=[0.5, -0.5]),
        x=x_int.astype(float),
        b=np.array([0.5, -0.5]),
    )
    assert_net(call_net(backend, x=x_int), x=x_int.astype(float))


def test_labels_as_list_and_as_int32(backend):
    fn = compiled("classifier", backend, classifier)
    ref = fn(X_in=x0, W_in=w0, b_in=b0, y_in=np.array([0, 1, 1, 0]))
    for y in (
        [0, 1, 1, 0],
        np.array([0, 1, 1, 0], dtype=np.int32),
        np.array([0, 1, 1, 0], dtype=np.uint8),
    ):
        value, grads = fn(X_in=x0, W_in=w0, b_in=b0, y_in=y)
        assert value == ref[0]
        for g, r in zip(grads, ref[1]):
            np.testing.assert_array_equal(g, r)


# --- an empty batch --------------------------------------------------------------------------


def test_empty_batch_sum_is_zero_and_mean_is_nan(backend):
    fn = compiled("reductions", backend, reductions)
    with np.errstate(all="ignore"):
        total, mean, col_sum, col_mean, product = fn(X_in=np.zeros((0, 3)), W_in=w0)
    assert total == 0.0
    assert np.isnan(mean)
    np.testing.assert_array_equal(col_sum, np.zeros(3))
    assert col_mean.shape == (3,) and np.all(np.isnan(col_mean))
    assert product.shape == (0, 2)


def test_empty_batch_gradients_have_their_shapes(backend):
    value, (gx, gw, gb, gs) = call_net(backend, x=np.zeros((0, 3)))
    assert np.isnan(value)  # a mean over no element
    assert gx.shape == (0, 3) and gw.shape == (3, 2) and gb.shape == (2,) and isinstance(gs, float)


def test_empty_batch_numpy_and_numba_agree():
    with np.errstate(all="ignore"):
        results = {
            be: compiled("reductions", be, reductions)(X_in=np.zeros((0, 3)), W_in=w0)
            for be in ("numpy", "numba")
        }
        nets = {be: call_net(be, x=np.zeros((0, 3))) for be in ("numpy", "numba")}
    for a, b in zip(results["numpy"], results["numba"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(nets["numpy"][0], nets["numba"][0])
    for a, b in zip(nets["numpy"][1], nets["numba"][1]):
        np.testing.assert_array_equal(a, b)


def test_empty_batch_max_is_an_error(backend):
    """A max over no element has no value; int dims of size 0 are refused when the graph is
    built (ShapeError), so a named dim bound to 0 must be refused when the call is checked."""
    fn = compiled("max", backend, lambda be: sg.compile(sg.max(X, axis=0), backend=be))
    with pytest.raises(sg.SymgradError):
        fn(X_in=np.zeros((0, 3)))


def test_empty_batch_behaviour_is_documented():
    doc = inputs_module.__doc__.lower()
    assert any(word in doc for word in ("empty", "size 0", "= 0", "zero rows")), (
        "symgrad/backends/inputs.py does not say what a named dim of size 0 (an empty batch) "
        "gives: sum -> 0, mean -> nan, max -> ?"
    )


# --- NaN and Inf -----------------------------------------------------------------------------


def propagation_reference(x, w):
    with np.errstate(all="ignore"):
        shifted = np.exp(x - np.max(x, axis=1, keepdims=True))
        return [
            2 * x + 1,
            np.exp(x),
            np.tanh(x),
            x.sum(axis=1),
            x.mean(axis=1),
            np.max(x, axis=1),
            shifted / shifted.sum(axis=1, keepdims=True),
            x @ w,
        ]


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_propagate(backend, special):
    x = x0.copy()
    x[1, 2] = special
    with np.errstate(all="ignore"):
        got = compiled("propagation", backend, propagation)(X_in=x, W_in=w0)
    names = ["2x+1", "exp", "tanh", "sum", "mean", "max", "softmax", "matmul"]
    for name, g, want in zip(names, got, propagation_reference(x, w0)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want), err_msg=f"{name}: NaN positions")
        np.testing.assert_array_equal(
            np.isposinf(g), np.isposinf(want), err_msg=f"{name}: +inf positions"
        )
        np.testing.assert_array_equal(
            np.isneginf(g), np.isneginf(want), err_msg=f"{name}: -inf positions"
        )
        finite = np.isfinite(want)
        np.testing.assert_allclose(
            np.asarray(g)[finite], np.asarray(want)[finite], rtol=1e-12, err_msg=name
        )


def test_nan_propagates_into_value_and_gradients(backend):
    x = x0.copy()
    x[0, 0] = np.nan
    with np.errstate(all="ignore"):
        value, (gx, gw, gb, gs) = call_net(backend, x=x)
    assert np.isnan(value)
    assert np.all(np.isnan(gx[0])) and np.all(np.isfinite(gx[1:]))
    assert np.all(np.isnan(gb))


# --- inputs are never modified, outputs are never shared -------------------------------------


def test_inputs_are_never_modified(backend):
    x, w, b = x0.copy(), w0.copy(), b0.copy()
    call_net(backend, x=x, w=w, b=b)
    compiled("many", backend, many_outputs)(X_in=x)
    compiled("propagation", backend, propagation)(X_in=x, W_in=w)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(b, b0)


def test_outputs_alias_neither_inputs_nor_each_other(backend):
    x = x0.copy()
    outs = compiled("many", backend, many_outputs)(X_in=x)
    arrays = [o for o in outs if isinstance(o, np.ndarray)]
    assert len(arrays) == 6
    for k, a in enumerate(arrays):
        assert not np.shares_memory(a, x), f"output {k} shares memory with the input"
        assert a.flags.writeable and a.flags.c_contiguous, f"output {k} is not a fresh C array"
        for j, other in enumerate(arrays[:k]):
            assert not np.shares_memory(a, other), f"outputs {j} and {k} share memory"
    np.testing.assert_array_equal(outs[0], x0)
    np.testing.assert_array_equal(outs[3], x0.T)
    np.testing.assert_array_equal(outs[4], np.reshape(2 * x0, (3, 4)))


def test_outputs_are_not_reused_by_later_calls(backend):
    fn = compiled("many", backend, many_outputs)
    first = fn(X_in=x0)
    kept = [np.array(o, copy=True) for o in first]
    second = fn(X_in=x0 + 1.0)
    for k, (a, b, c) in enumerate(zip(first, kept, second)):
        np.testing.assert_array_equal(
            a, b, err_msg=f"output {k} changed when the function was called again"
        )
        assert not np.shares_memory(a, c), f"output {k} of two calls share memory"

    value, grads = call_net(backend)
    arrays = [g for g in grads if isinstance(g, np.ndarray)]
    for g in arrays:  # the caller owns its results: writing them changes nothing later ...
        g[...] = 123.0
    assert_net(call_net(backend))
    call_net(backend, x=2 * x0)
    for g in arrays:  # ... and later calls do not write them either
        assert np.all(g == 123.0)


def test_gradients_that_are_one_node_are_distinct_arrays(backend):
    """sum(u) + sum(v): both gradients are the same node (ones); wrt [u, u] asks twice."""
    u, v = sg.tensor("u_in", (2, 3)), sg.tensor("v_in", (2, 3))
    fn = compiled(
        "ones", backend, lambda be: sg.value_and_grad(sg.sum(u) + sg.sum(v), [u, v, u], backend=be)
    )
    value, grads = fn(u_in=np.ones((2, 3)), v_in=np.ones((2, 3)))
    assert value == 12.0
    for k, g in enumerate(grads):
        np.testing.assert_array_equal(g, np.ones((2, 3)))
        assert g.flags.writeable, f"gradient {k} is read-only"
        for j in range(k):
            assert not np.shares_memory(g, grads[j]), f"gradients {j} and {k} share memory"


# --- float32 -----------------------------------------------------------------------------------


def float32_net(backend):
    X32 = sg.tensor("X32", ("N", 3), dtype="float32")
    W32 = sg.tensor("W32", (3, 2), dtype="float32")
    y = sg.tensor("y32", ("N",), dtype="int64")
    scores = sg.tanh(X32 @ W32)
    outs = [sg.sigmoid(scores), sg.softmax(scores)]
    loss = sg.losses.softmax_cross_entropy(scores, y) + sg.mean(sg.softplus(scores))
    return sg.compile(outs, backend=backend), sg.value_and_grad(loss, [X32, W32], backend=backend)


def test_float32_graph_returns_float32_close_to_float64(backend):
    fwd32, vg32 = compiled("f32", backend, float32_net)
    x, w, y = x0.astype(np.float32), w0.astype(np.float32), np.array([0, 1, 1, 0])
    outs = fwd32(X32=x, W32=w)
    value, grads = vg32(X32=x, W32=w, y32=y)
    for o in outs:
        assert o.dtype == np.float32
    for g in grads:
        assert g.dtype == np.float32
    assert isinstance(value, float)

    # the same computation in float64, by hand
    xd, wd = x.astype(np.float64), w.astype(np.float64)
    s = np.tanh(xd @ wd)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    soft = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outs[0], 1 / (1 + np.exp(-s)), rtol=1e-5)
    np.testing.assert_allclose(outs[1], soft, rtol=1e-5)
    n = len(y)
    want = -np.mean(np.log(soft[np.arange(n), y])) + np.mean(np.log1p(np.exp(s)))
    np.testing.assert_allclose(value, want, rtol=1e-5)
    gs = (soft - np.eye(2)[y]) / n + 1 / (1 + np.exp(-s)) / s.size
    gs = gs * (1 - s**2)
    np.testing.assert_allclose(grads[0], gs @ wd.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads[1], xd.T @ gs, rtol=1e-4, atol=1e-6)


def test_float64_values_for_float32_tensors_compute_in_float32(backend):
    fwd32, _ = compiled("f32", backend, float32_net)
    from_64 = fwd32(X32=x0, W32=w0)
    from_32 = fwd32(X32=x0.astype(np.float32), W32=w0.astype(np.float32))
    for a, b in zip(from_64, from_32):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


# --- labels out of range never reach a kernel --------------------------------------------------


@pytest.mark.parametrize("bad", [2, -1, 10**12, -(10**12)])
def test_out_of_range_label_is_a_label_error(backend, bad):
    fn = compiled("classifier", backend, classifier)
    y = np.array([0, 1, bad, 0])
    with pytest.raises(sg.LabelError):
        fn(X_in=x0, W_in=w0, b_in=b0, y_in=y)
    np.testing.assert_array_equal(y, [0, 1, bad, 0])


LABEL_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import symgrad as sg

    backend = {backend!r}
    X = sg.tensor("X", ("N", 3))
    W = sg.tensor("W", (3, 4))
    y = sg.tensor("y", ("N",), dtype="int64")
    L = sg.tensor("L", (1, "N"), dtype="int64")  # labels that reach pick through a reshape
    scores = X @ W
    fns = {{
        "softmax_cross_entropy": sg.value_and_grad(sg.losses.softmax_cross_entropy(scores, y), W, backend=backend),
        "hinge": sg.value_and_grad(sg.losses.multiclass_hinge(scores, y), W, backend=backend),
        "one_hot": sg.compile(sg.sum(sg.one_hot(y, 4) * scores), backend=backend),
        "pick(reshape)": sg.value_and_grad(sg.sum(sg.pick(scores, sg.reshape(L, ("N",)))), W, backend=backend),
    }}
    rng = np.random.default_rng(0)
    for name, fn in fns.items():
        for bad in (4, -1, 2**40, -2**40, 2**62):
            labels = np.zeros(1000, dtype=np.int64)
            labels[500] = bad
            kwargs = dict(X=rng.standard_normal((1000, 3)), W=rng.standard_normal((3, 4)))
            kwargs.update({{"L": labels[None]}} if name == "pick(reshape)" else {{"y": labels}})
            try:
                fn(**kwargs)
            except sg.LabelError as exc:
                print("rejected", name, bad, "|", exc, flush=True)
            else:
                print("ACCEPTED", name, bad, flush=True)
    print("alive", flush=True)
    """
)


def test_out_of_range_label_is_rejected_before_the_kernel_runs(backend):
    """A kernel reading out of bounds could crash the process or return garbage; the
    process must survive and report a LabelError for every bad label."""
    result = subprocess.run(
        [sys.executable, "-c", LABEL_SCRIPT.format(backend=backend)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"the process died ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "alive", result.stdout + result.stderr
    assert not [line for line in lines if line.startswith("ACCEPTED")], result.stdout
    assert sum(line.startswith("rejected") for line in lines) == 4 * 5, result.stdout
