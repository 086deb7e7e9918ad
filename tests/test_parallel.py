"""parallel=True: prange only for loop nests of PARALLEL_MIN_ELEMENTS or more.

Known sizes decide when the kernel is generated; a named size at run time, in a kernel that
holds the nest twice (parallel and serial).  Both branches must give the serial values.
"""

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends.numba_codegen import PARALLEL_MIN_ELEMENTS as LIMIT


def chain(x):
    return sg.sum(sg.tanh(sg.sigmoid(x) * x + sg.exp(-(x**2))) * sg.log1p(x**2))


def kernel_body(compiled):
    return compiled.source.split("def kernel")[1]


def test_named_size_branches_at_run_time_and_both_branches_agree():
    x = sg.tensor("px", ("n",))
    vg = sg.value_and_grad(chain(x), x, parallel=True)
    reference = sg.value_and_grad(chain(x), x, backend="numpy")
    body = kernel_body(vg)
    # the nest twice: parallel and serial (a loop that sums runs in blocks of its own)
    parallel, serial = body.split(f"if n0 >= {LIMIT}:")[1].split("    else:")
    assert " in prange(" in parallel and " in prange(" not in serial and " in range(" in serial
    assert 'parallel={"prange": True' in vg.source and '"numpy": False' in vg.source
    for n in (3, LIMIT - 1, LIMIT, 3 * LIMIT + 7):  # serial, serial, parallel, parallel
        values = np.linspace(-3.0, 3.0, n)
        value, grad = vg(px=values)
        want_value, want_grad = reference(px=values)
        assert value == pytest.approx(want_value, rel=1e-12)  # a parallel sum reorders
        np.testing.assert_allclose(grad, want_grad, rtol=1e-13, atol=1e-15)


def test_small_known_sizes_stay_serial():
    x = sg.tensor("ps", (4, 100))
    vg = sg.value_and_grad(chain(x), x, parallel=True)
    assert "prange" not in kernel_body(vg) and "parallel=False" in vg.source
    values = np.linspace(-2.0, 2.0, 400).reshape(4, 100)
    want = sg.value_and_grad(chain(x), x, backend="numpy")(ps=values)
    assert vg(ps=values)[0] == pytest.approx(want[0], rel=1e-12)


def test_large_known_size_is_parallel_without_a_branch():
    x = sg.tensor("pl", (2, LIMIT // 2))
    fn = sg.compile(sg.exp(x) * 2.0, parallel=True)
    body = kernel_body(fn)
    assert "prange(2)" in body and " if " not in body
    values = np.linspace(-1.0, 1.0, LIMIT).reshape(2, -1)
    np.testing.assert_allclose(fn(pl=values), np.exp(values) * 2.0, rtol=1e-15)


@pytest.mark.parametrize(
    "make, shape",
    [
        (chain, (3 * LIMIT + 7,)),  # blocks of one axis, a function per element
        (lambda x: sg.sum(x * x), (LIMIT + 1,)),  # a cheap sum: blocks too, for the slots
        (lambda x: sg.sum(sg.tanh(x)), (LIMIT, 3)),  # short rows: runs of rows
        (lambda x: sg.sum(x * x) + sg.mean(x), (700, 400)),  # plain loops, a slot per row
        (lambda x: sg.sum(sg.exp(0.1 * x)), (40, 70, 100)),
    ],
)
def test_a_parallel_sum_does_not_depend_on_the_number_of_threads(make, shape):
    # docs/design.md, "Backends": each iteration of a prange adds into a slot of its own and
    # the slots are added in order, so the threads do not change the sum; the serial copy of
    # the nest (below the size threshold) adds the same way
    import numba

    x = sg.tensor("pt", tuple(f"d{k}" for k in range(len(shape))))
    vg = sg.value_and_grad(make(x), x, parallel=True)
    values = np.random.default_rng(5).normal(size=shape)
    threads = numba.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append(vg(pt=values))
    finally:
        numba.set_num_threads(threads)
    for value, grad in results[1:]:
        assert value == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
    want = sg.value_and_grad(make(x), x, backend="numpy")(pt=values)
    assert results[0][0] == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], want[1], rtol=1e-13, atol=1e-15)


def test_a_constant_array_in_a_parallel_nest_of_row_chunks():
    # the kernel's constant arrays are arguments c0, c1, ...: the names of the nest's own
    # variables (the chunk index among them) must not shadow them
    x = sg.tensor("pc", ("n", "m"))
    weights = np.linspace(0.5, 1.5, 3)
    f = sg.sum(sg.tanh(x * weights))
    vg = sg.value_and_grad(f, x, parallel=True)
    assert "prange(" in vg.source and "c0" in vg.source
    values = np.random.default_rng(7).normal(size=(LIMIT, 3))
    want = sg.value_and_grad(f, x, backend="numpy")(pc=values)
    value, grad = vg(pc=values)
    assert value == pytest.approx(want[0], rel=1e-12)
    np.testing.assert_allclose(grad, want[1], rtol=1e-13, atol=1e-15)
