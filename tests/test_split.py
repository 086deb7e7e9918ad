"""Kernels cut into parts (symgrad/backends/split.py) compute bit for bit what the whole
kernel computes; the parts are plain functions the kernel calls in order.  Loop nests that
repeat in a kernel (an MLP's layers) are one function called at each place, again bit for
bit what the kernel with the loops inline computes."""

import ast
import types

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import loopfuse
from symgrad.backends import split as splitting
from symgrad.backends.numba_codegen import Kernel


def _mlp():
    X, y = sg.tensor("X", ("N", 5)), sg.tensor("y", ("N",), dtype="int64")
    W1, b1 = sg.tensor("W1", (5, 7)), sg.tensor("b1", (7,))
    W2 = sg.tensor("W2", (7, 3))
    h = sg.gelu(X @ W1 + b1)
    loss = sg.losses.softmax_cross_entropy(h @ W2, y) + 1e-3 * sg.sum(W1**2)
    return loss, [W1, b1, W2]


def _inputs(rng, n=9):
    return dict(X=rng.normal(size=(n, 5)), y=rng.integers(0, 3, n), W1=rng.normal(size=(5, 7)),
                b1=rng.normal(size=7), W2=rng.normal(size=(7, 3)))


def _compile_with(setting: str, value, loss, wrt):
    """``value_and_grad`` of ``loss`` compiled with ``split.<setting>`` set to ``value``."""
    saved = getattr(splitting, setting)
    setattr(splitting, setting, value)
    try:
        return sg.value_and_grad(loss, wrt)
    finally:
        setattr(splitting, setting, saved)


@pytest.fixture(scope="module")
def whole_and_split():
    loss, wrt = _mlp()
    return sg.value_and_grad(loss, wrt), _compile_with("MAX_LINES", 8, loss, wrt)


def test_split_kernel_is_bit_identical(whole_and_split, rng):
    whole, parts = whole_and_split
    assert "def kernel_p" not in whole.source and parts.source.count("def kernel_p") >= 3
    for n in (1, 9, 300):  # 300: more than one block of the blocked reduction loops
        x = _inputs(rng, n)
        a, b = whole(**x), parts(**x)
        assert a[0] == b[0] or (np.isnan(a[0]) and np.isnan(b[0]))
        for ga, gb in zip(a[1], b[1]):
            np.testing.assert_array_equal(ga, gb)
    x = _inputs(rng)
    x["X"][2, 1] = np.nan  # NaN goes through the parts as through the whole kernel
    a, b = whole(**x), parts(**x)
    assert np.isnan(a[0]) and np.isnan(b[0])
    for ga, gb in zip(a[1], b[1]):
        np.testing.assert_array_equal(ga, gb)


def test_parts_pass_what_later_parts_read():
    source = (
        "def kernel(in0, in1):\n"
        "    n0 = in0.shape[0]  # N\n"
        "    v1 = np.float64(0)\n"
        "    v2 = np.empty((n0,), dtype=np.float64)\n"
        "    for i0 in range(n0):\n"
        "        v2[i0] = in0[i0] * in1\n"
        "        v1 += v2[i0]\n"
        "    if n0 >= 5:\n"
        "        for i0 in range(n0):\n"
        "            v1 += 1.0\n"
        "    else:\n"
        "        for i0 in range(n0):\n"
        "            v1 += 2.0\n"
        "    return (v1, v2,)\n"
    )
    parts, kernel = splitting.split(source, max_lines=4)
    assert [name for name, _ in parts] == ["kernel_p0", "kernel_p1", "kernel_p2"]
    # the accumulator v1 is passed in and returned, the array v2 written in place is passed
    # in only; the if/else stays in one part
    assert "n0, v1, v2 = kernel_p0(in0)" in kernel
    assert "v1 = kernel_p1(in0, in1, n0, v1, v2)" in kernel and "v1 = kernel_p2(n0, v1)" in kernel
    namespace = {"np": np}
    for _, code in parts:
        ast.parse(code)
        exec(code, namespace)
    exec(kernel, namespace)
    exec(source.replace("def kernel(", "def whole("), namespace)
    x = np.arange(6.0)
    for n in (6, 3):
        assert namespace["kernel"](x[:n], 0.5)[0] == namespace["whole"](x[:n], 0.5)[0]
    # small kernels stay whole
    assert splitting.split(source, max_lines=100) == ([], source)


def test_matmul_goes_through_the_cached_helper(rng):
    # matrix products by blas.matmul (gemm), products with a vector by blas.matvec, vecmat
    # (gemv) and vecdot (dot), none by np.dot compiled in the kernel
    A, B, v = sg.tensor("A", ("N", 4)), sg.tensor("B", (4, 3)), sg.tensor("v", (3,))
    f = sg.compile([A @ B, A.T @ A, B @ B.T, B @ v, v @ B.T, v @ v])
    assert f.source.count("bl.matmul(") == 3 and f.source.count("bl.matvec(") == 1
    assert f.source.count("bl.vecmat(") == 1 and f.source.count("bl.vecdot(") == 1
    assert "np.dot(" not in f.source
    for n in (6, 1, 0):
        a, b, c = rng.normal(size=(n, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
        wants = [a @ b, a.T @ a, b @ b.T, b @ c, c @ b.T, c @ c]
        for got, want in zip(f(A=a, B=b, v=c), wants):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


# --- repeated loop nests shared (split.outline) -------------------------------------------


def _gelu_mlp(layers):
    X, y = sg.tensor("X", ("N", 6)), sg.tensor("y", ("N",), dtype="int64")
    h, wrt = X, []
    for i in range(layers):
        W, b = sg.tensor(f"W{i}", (6, 6)), sg.tensor(f"b{i}", (6,))
        h = sg.gelu(h @ W + b)
        wrt += [W, b]
    W = sg.tensor("W_out", (6, 3))
    return sg.losses.softmax_cross_entropy(h @ W, y), wrt + [W]


def _gelu_inputs(rng, layers, n):
    x = {"X": rng.normal(size=(n, 6)), "y": rng.integers(0, 3, n)}
    for i in range(layers):
        x[f"W{i}"], x[f"b{i}"] = rng.normal(size=(6, 6)) / 2, rng.normal(size=6)
    x["W_out"] = rng.normal(size=(6, 3))
    return x


@pytest.fixture(scope="module")
def shared_and_inline():
    loss, wrt = _gelu_mlp(4)
    # nothing repeats 10**9 times: every loop stays inline
    return sg.value_and_grad(loss, wrt), _compile_with("MIN_REPEATS", 10**9, loss, wrt)


def test_repeated_loops_are_shared_and_bit_identical(shared_and_inline, rng):
    shared, inline = shared_and_inline
    assert "_loop" not in inline.source
    # one function for the layers' forward loops (a layer's activation and the next one's
    # bias, in one loop over the rows: loopfuse.py), one for their backward loops
    assert shared.source.count("def kernel_loop") == 2
    assert sum(shared.source.count(f"= kernel_loop{k}(") for k in range(2)) >= 7
    for n in (1, 9, 300):
        x = _gelu_inputs(rng, 4, n)
        a, b = shared(**x), inline(**x)
        assert a[0] == b[0]
        for ga, gb in zip(a[1], b[1]):
            np.testing.assert_array_equal(ga, gb)
    x = _gelu_inputs(rng, 4, 9)
    x["X"][3, 2] = np.nan  # NaN goes through the shared loops as through the inline ones
    a, b = shared(**x), inline(**x)
    assert np.isnan(a[0]) and np.isnan(b[0])
    for ga, gb in zip(a[1], b[1]):
        np.testing.assert_array_equal(ga, gb)


def test_deeper_networks_call_the_same_two_functions():
    # the kernel's numbers (v98 against v102) and the order of a loop's loads differ from
    # layer to layer; the shared text does not
    for layers in (4, 9):
        loss, wrt = _gelu_mlp(layers)
        assert sg.value_and_grad(loss, wrt).source.count("def kernel_loop") == 2


def test_loops_repeated_inside_the_loop_over_blocks_are_shared_and_bit_identical(
        rng, monkeypatch):
    # two linear heads (no hidden layer: rowblock.py blocks it) add a scaled bias to each
    # product: that loop, inside the loop over blocks of rows, is one function
    # (split.outline_rows; a bias as it is is copied by ar.rows, no loop)
    X, y = sg.tensor("X", ("N", "D")), sg.tensor("y", ("N",), dtype="int64")
    W, U = sg.tensor("W", ("D", "C")), sg.tensor("U", ("D", "C"))
    b, c = sg.tensor("b", ("C",)), sg.tensor("c", ("C",))
    loss = (sg.losses.softmax_cross_entropy(X @ W + 0.5 * b, y)
            + sg.losses.multiclass_hinge(X @ U + 0.5 * c, y))
    wrt = [W, b, U, c]
    monkeypatch.setattr(Kernel, "ROW_BLOCK_BYTES", 64)  # blocks of 8 rows
    monkeypatch.setattr(loopfuse, "ENABLED", False)  # (it would fuse the two heads' loops)
    shared = sg.value_and_grad(loss, wrt)
    inline = _compile_with("MIN_REPEATS", 10**9, loss, wrt)
    assert "for r0 in range(" in shared.source and "for r0 in range(" in inline.source
    assert shared.source.count("def kernel_rows_loop") >= 1 and "_loop" not in inline.source
    for n in (0, 5, 8, 29):
        x = {"X": rng.normal(size=(n, 7)), "y": rng.integers(0, 4, n),
             "W": rng.normal(size=(7, 4)), "U": rng.normal(size=(7, 4)),
             "b": rng.normal(size=4), "c": rng.normal(size=4)}
        a, b_ = shared(**x), inline(**x)
        np.testing.assert_array_equal(a[0], b_[0])
        for ga, gb in zip(a[1], b_[1]):
            np.testing.assert_array_equal(ga, gb)


OUTLINE_SOURCE = (
    "def kernel(in0, in1, in2):\n"
    "    n0 = in0.shape[0]  # N\n"
    "    v3 = ar.empty((n0,), np.float64)\n"
    "    for i0 in range(n0):\n"
    "        ld_in0 = in0[i0]\n"
    "        ld_in1 = in1[i0]\n"
    "        e3 = ld_in0 * ld_in1 + 1.0\n"
    "        v3[i0] = e3\n"
    "    v5 = ar.empty((n0,), np.float64)\n"
    "    for i0 in range(n0):\n"
    "        ld_in1 = in1[i0]\n"  # the same loop, its loads in the other order
    "        ld_in2 = in2[i0]\n"
    "        e5 = ld_in2 * ld_in1 + 1.0\n"
    "        v5[i0] = e5\n"
    "    v7 = np.float64(0)\n"
    "    v8 = np.float64(0)\n"
    "    for i0 in range(n0):\n"  # accumulators set up apart from their loops: kept inline
    "        v7 += v5[i0]\n"
    "    for i0 in range(n0):\n"
    "        v8 += v3[i0]\n"
    "    return (v7, v8, v5,)\n"
)


def _outlined_and_whole(source, parts, kernel, *args):
    """What the outlined kernel (its parts, then itself) and the ``source`` it came from
    return for ``args``."""
    namespace = {"np": np, "ar": types.SimpleNamespace(empty=np.empty)}
    for _, code in parts:
        exec(code, namespace)
    exec(kernel, namespace)
    exec(source.replace("def kernel(", "def whole("), namespace)
    return namespace["kernel"](*args), namespace["whole"](*args)


def test_outline_shares_loops_that_differ_in_names_and_load_order():
    parts, kernel = splitting.outline(OUTLINE_SOURCE)
    assert [name for name, _ in parts] == ["kernel_loop0"]
    assert parts[0][1].startswith("def kernel_loop0(in0, in1, n0):\n    v0 = ar.empty(")
    assert "    v3 = kernel_loop0(in0, in1, n0)\n" in kernel
    assert "    v5 = kernel_loop0(in2, in1, n0)\n" in kernel
    assert kernel.count("for i0 in range(n0):") == 2 and "v7 += v5[i0]" in kernel
    x, y, z = np.arange(5.0), np.linspace(-1, 1, 5), np.linspace(3, 4, 5)
    for got, want in zip(*_outlined_and_whole(OUTLINE_SOURCE, parts, kernel, x, y, z)):
        np.testing.assert_array_equal(got, want)
    # a loop that occurs once stays where it is
    assert splitting.outline(OUTLINE_SOURCE, min_repeats=3) == ([], OUTLINE_SOURCE)


ROWS_SOURCE = (
    "def kernel(in0, in1):\n"
    "    n0 = in0.shape[0]  # N\n"
    "    v9 = np.float64(0)\n"
    "    rows = 2\n"
    "    for r0 in range(0, n0 if n0 > 0 else 1, rows):\n"
    "        r1 = r0 + rows if r0 + rows < n0 else n0\n"
    "        n1 = r1 - r0  # N in this block\n"
    "        in0_r = in0[r0:r1]\n"
    "        in1_r = in1[r0:r1]\n"
    "        v3 = ar.empty((n1,), np.float64)\n"
    "        for i0 in range(n1):\n"
    "            ld_in0_r = in0_r[i0]\n"
    "            v3[i0] = 2.0 * ld_in0_r\n"
    "        v5 = ar.empty((n1,), np.float64)\n"
    "        for i0 in range(n1):\n"
    "            ld_in1_r = in1_r[i0]\n"
    "            v5[i0] = 2.0 * ld_in1_r\n"
    "        for i0 in range(n1):\n"
    "            v9 += v3[i0] * v5[i0]\n"
    "    return (v9,)\n"
)


def test_outline_rows_shares_loops_inside_the_loop_over_blocks():
    parts, kernel = splitting.outline_rows(ROWS_SOURCE)
    assert [name for name, _ in parts] == ["kernel_rows_loop0"]
    assert "        v3 = kernel_rows_loop0(in0_r, n1)\n" in kernel
    assert "        v5 = kernel_rows_loop0(in1_r, n1)\n" in kernel
    x, y = np.arange(5.0), np.linspace(-1, 1, 5)
    got, want = _outlined_and_whole(ROWS_SOURCE, parts, kernel, x, y)
    assert got == want
    # a kernel without blocks of rows is left to outline()
    assert splitting.outline_rows(OUTLINE_SOURCE) == ([], OUTLINE_SOURCE)


def test_outlined_names_without_a_number_stay_names():
    # a loop over blocks outlined as a whole (a kernel cut into parts): its ``rows`` was
    # renumbered ``0rows``, which is not a Python name (found in review)
    source = (
        "def kernel(in0, in1):\n"
        "    n0 = in0.shape[0]  # N\n"
        "    v9 = ar.empty((n0,), np.float64)\n"
        "    rows = 2\n"
        "    for r0 in range(0, n0 if n0 > 0 else 1, rows):\n"
        "        r1 = r0 + rows if r0 + rows < n0 else n0\n"
        "        for i0 in range(r0, r1):\n"
        "            v9[i0] = 2.0 * in0[i0] + in1[i0]\n"
        "    return (v9,)\n"
    )
    parts, kernel = splitting.outline(source, min_repeats=1)
    assert [name for name, _ in parts] == ["kernel_loop0"]
    ast.parse(parts[0][1])
    x, y = np.arange(5.0), np.linspace(-1, 1, 5)
    got, want = _outlined_and_whole(source, parts, kernel, x, y)
    np.testing.assert_array_equal(got[0], want[0])
