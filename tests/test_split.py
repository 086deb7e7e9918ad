"""Kernels cut into parts (symgrad/backends/split.py) compute bit for bit what the whole
kernel computes; the parts are plain functions the kernel calls in order."""

import ast

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import split as splitting


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


@pytest.fixture(scope="module")
def whole_and_split():
    loss, wrt = _mlp()
    whole = sg.value_and_grad(loss, wrt)
    saved = splitting.MAX_LINES
    splitting.MAX_LINES = 8
    try:
        parts = sg.value_and_grad(loss, wrt)
    finally:
        splitting.MAX_LINES = saved
    return whole, parts


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
    A, B = sg.tensor("A", ("N", 4)), sg.tensor("B", (4, 3))
    f = sg.compile([A @ B, A.T @ A, B @ B.T])
    assert f.source.count("bl.matmul(") == 3 and "np.dot(" not in f.source
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 3))
    for got, want in zip(f(A=a, B=b), [a @ b, a.T @ a, b @ b.T]):
        np.testing.assert_allclose(got, want, rtol=1e-13)
