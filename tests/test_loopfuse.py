"""Loop nests over the same rows fused into one loop (symgrad/backends/loopfuse.py): which
nests fuse, which may not, and that fused kernels give the same bits as unfused ones."""

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import loopfuse
from symgrad.backends.loopfuse import fuse_rows

ROWS = """def kernel(in0, in1):
    n0 = in0.shape[0]  # N
    v1 = ar.full((n0, 1), -np.inf, np.float64)
    for i0 in range(n0):
        for i1 in range(n1):
            v1[i0, 0] = ar.max_nan(v1[i0, 0], in0[i0, i1])
    v2 = ar.empty((n0, n1), np.float64)
    v3 = np.float64(0)
    for i0 in range(n0):
        for i1 in range(n1):
            ld_v1 = v1[i0, 0]
            e2 = in0[i0, i1] - ld_v1
            v2[i0, i1] = e2
            v3 += e2
    return (v2, v3,)
"""


def test_nests_reading_their_own_row_fuse():
    fused = fuse_rows(ROWS)
    assert fused.count("for i0 in range(n0):") == 1
    # the allocations between the nests move before the loop, in their order
    lines = fused.split("\n")
    loop = lines.index("    for i0 in range(n0):")
    assert lines.index("    v2 = ar.empty((n0, n1), np.float64)") < loop
    assert lines.index("    v3 = np.float64(0)") < loop
    # the second nest's statements follow the first's inside the loop
    assert fused.index("ar.max_nan") < fused.index("e2 = in0[i0, i1] - ld_v1")


@pytest.mark.parametrize("second, why", [
    ("            e2 = in0[i0, i1] - v1[i1, 0]", "reads another row"),
    ("            e2 = in0[i0, i1] - v9[i0]", "reads a sum over the rows"),
    ("            e2 = in0[i0, i1] - v8", "reads a scalar the loop sums"),
])
def test_nests_that_need_more_than_their_row_stay_apart(second, why):
    source = f"""def kernel(in0, in1):
    v1 = ar.full((n0, 1), -np.inf, np.float64)
    v9 = ar.full((n0,), 0, np.float64)
    v8 = np.float64(0)
    for i0 in range(n0):
        for i1 in range(n1):
            v1[i0, 0] = ar.max_nan(v1[i0, 0], in0[i0, i1])
            v9[i1] += in0[i0, i1]
            v8 += in0[i0, i1]
    v2 = ar.empty((n0, n1), np.float64)
    for i0 in range(n0):
        for i1 in range(n1):
{second}
            v2[i0, i1] = e2
    return (v2,)
"""
    assert fuse_rows(source).count("for i0 in range(n0):") == 2, why


@pytest.mark.parametrize("between", [
    "    bl.matmul_add(in0, in1, v1, True)",  # writes v1 in a way no name says
    "    v5 = bl.matmul(v1, in1)",  # reads what the loop writes
    "    for i0 in range(n5):\n        v6[i0] = 0",  # other rows
])
def test_other_statements_end_the_loop(between):
    source = f"""def kernel(in0, in1):
    v1 = ar.empty((n0, n1), np.float64)
    for i0 in range(n0):
        for i1 in range(n1):
            v1[i0, i1] = in0[i0, i1]
{between}
    v2 = ar.empty((n0, n1), np.float64)
    for i0 in range(n0):
        for i1 in range(n1):
            v2[i0, i1] = in0[i0, i1] * 2
    return (v2,)
"""
    assert fuse_rows(source).count("for i0 in range(n0):") == 2


VIEW = """def kernel(in0, in1):
    v1 = ar.empty((n0, 1), np.float64)
    for i0 in range(n0):
        v1[i0, 0] = in0[i0, 0] * 2
    v2 = ar.reshape(v1, {shape})
    v3 = np.float64(0)
    for i0 in range(n0):
        {read}
        v3 += ld_v2
    return (v3, v1,)
"""


def test_a_view_with_the_rows_of_an_array_the_loop_writes_moves_before_it():
    # logsumexp(s, axis=1) - pick(s, y): the (N, 1) log-sum-exp read as (N,)
    fused = fuse_rows(VIEW.format(shape="(n0,)", read="ld_v2 = v2[i0]"))
    assert fused.count("for i0 in range(n0):") == 1
    assert fused.index("v2 = ar.reshape(v1, (n0,))") < fused.index("for i0")
    assert fuse_rows(VIEW.format(shape="(n0, 1)", read="ld_v2 = v2[i0, 0]")).count("for i0") == 1


@pytest.mark.parametrize("shape, read, why", [
    ("(n0,)", "ld_v2 = v2[0]", "reads another row of the view"),
    ("(n0,)", "ld_v2 = ar.max_nan(v2, 0)", "reads the whole view"),
    ("(n1,)", "ld_v2 = v2[i0]", "a view over other rows"),
    ("(n0, n1)", "ld_v2 = v2[i0, 0]", "more than one element per row"),
])
def test_views_that_are_not_a_row_of_the_loop_keep_the_nests_apart(shape, read, why):
    source = VIEW.format(shape=shape, read=read)
    assert fuse_rows(source) == source, why


def test_a_view_of_an_array_the_loop_allocates_stays_after_it():
    source = """def kernel(in0, in1):
    for i0 in range(n0):
        v1 = ar.empty((n0,), np.float64)
        v1[i0] = in0[i0, 0]
    v2 = ar.reshape(v1, (n0,))
    v3 = np.float64(0)
    for i0 in range(n0):
        v3 += v2[i0]
    return (v3,)
"""
    assert fuse_rows(source) == source


LOCALS = """def kernel(in0, in1):
    v1 = ar.full((n0, 1), -np.inf, np.float64)
    v2 = ar.empty((n0,), np.float64)
    v4 = ar.reshape(v2, (n0, 1))
    v3 = ar.zeros((n0, n1), np.float64)
    v5 = np.float64(0)
    for i0 in range(n0):
        for i1 in range(n1):
            v1[i0, 0] = ar.max_nan(v1[i0, 0], in0[i0, i1])
        v2[i0] = v1[i0, 0] * 2
        for i1 in range(n1):
            v3[i0, i1] += in0[i0, i1] - v4[i0, 0]
        v5 += v2[i0]
    return (v3, v5,)
"""


def test_values_of_one_row_become_locals_of_the_loop():
    fused = fuse_rows(LOCALS)
    lines = fused.split("\n")
    # the row max starts each row at its fill; the stores convert as the array's did
    assert lines[lines.index("    for i0 in range(n0):") + 1] == "        v1 = np.float64(-np.inf)"
    assert "            v1 = np.float64(ar.max_nan(v1, in0[i0, i1]))" in lines
    # v2 is written first in the row, and read through its view v4 too
    assert "        v2 = np.float64(v1 * 2)" in lines
    assert "            v3[i0, i1] += in0[i0, i1] - v2" in lines
    assert "ar.full((n0, 1)" not in fused and "ar.empty((n0,)" not in fused
    assert "v4" not in fused
    # an (N, C) array, and what the loop sums over the rows, stay
    assert "v3 = ar.zeros((n0, n1), np.float64)" in fused and "v5 += v2" in fused


@pytest.mark.parametrize("change, why", [
    (("return (v3, v5,)", "return (v3, v5, v1,)"), "returned"),
    (("v5 += v2[i0]", "v5 += v1[0, 0]"), "read at another row"),
    (("v5 += v2[i0]", "v5 += ar.max_nan(v1, 0)"), "read whole"),
    (("float64)\n    v2", "int64)\n    v2"), "not a float"),
])
def test_values_read_beyond_their_row_stay_arrays(change, why):
    fused = fuse_rows(LOCALS.replace(*change))
    assert "v1 = ar.full((n0, 1)" in fused, why


def test_a_value_read_before_it_is_written_in_its_row_stays_an_array():
    source = LOCALS.replace("        v2[i0] = v1[i0, 0] * 2\n", "").replace(
        "        v5 += v2[i0]", "        v5 += v2[i0]\n        v2[i0] = v1[i0, 0] * 2")
    assert "v2 = ar.empty((n0,), np.float64)" in fuse_rows(source)


def test_inside_the_loop_over_blocks_of_rows():
    body = "\n".join("    " + line if line.startswith("    ") else line
                     for line in ROWS.split("\n")[2:-2])
    source = ("def kernel(in0, in1):\n    for r0 in range(0, n9, rows):\n" + body
              + "\n    return (v3,)\n")
    assert fuse_rows(source).count("for i0 in range(n0):") == 1


X = sg.tensor("X", ("N", "D"))
y = sg.tensor("y", ("N",), dtype="int64")
W = sg.tensor("W", ("D", "C"))
b = sg.tensor("b", ("C",))
V = sg.tensor("V", ("C", "K"))
CASES = {
    "softmax": (sg.losses.softmax_cross_entropy(X @ W + b, y) + 0.5 * sg.sum(W**2), [W, b]),
    "hinge": (sg.losses.multiclass_hinge(X @ W, y), [W]),
    "mlp": (sg.losses.softmax_cross_entropy(sg.gelu(X @ W + b) @ V, y), [W, b, V]),
    "log_softmax_values": (sg.sum(sg.log_softmax(X @ W, axis=1) * sg.softmax(X @ W)), [W, X]),
    # the course's form of the loss: the (N, 1) log-sum-exp read through an (N,) view
    "logsumexp_minus_pick": (sg.mean(sg.logsumexp(X @ W, axis=1) - sg.pick(X @ W, y)), [W]),
}


@pytest.fixture(scope="module")
def kernels():
    """Each case compiled fused and unfused."""
    out = {}
    saved = loopfuse.ENABLED
    try:
        for name, (f, wrt) in CASES.items():
            loopfuse.ENABLED = True
            fused = sg.value_and_grad(f, wrt)
            loopfuse.ENABLED = False
            out[name] = fused, sg.value_and_grad(f, wrt)
    finally:
        loopfuse.ENABLED = saved
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_kernels_give_the_same_bits(kernels, name, rng):
    fused, plain = kernels[name]
    assert fused.source.count("for i0 in range(") < plain.source.count("for i0 in range(")
    for n in (0, 1, 7, 40):
        values = {"X": rng.standard_normal((n, 5)), "y": rng.integers(0, 3, n),
                  "W": rng.standard_normal((5, 3)), "b": rng.standard_normal(3),
                  "V": rng.standard_normal((3, 3))}
        if n > 3:
            values["X"][3, 1] = np.nan  # a NaN stays in its row's values, as unfused
        taken = {k: v for k, v in values.items() if k in plain.input_names}
        (v1, g1), (v2, g2) = fused(**taken), plain(**taken)
        np.testing.assert_array_equal(v1, v2)
        for a, c in zip(g1, g2):
            np.testing.assert_array_equal(a, c)


def test_the_setting_is_in_the_warm_key():
    x = sg.tensor("x", ("N", 3))
    f = sg.sum(sg.log_softmax(x, axis=1))
    saved = loopfuse.ENABLED
    try:
        keys = set()
        for on in (True, False):
            loopfuse.ENABLED = on
            vg = sg.value_and_grad(f, [x])
            keys.add(vg.source)
    finally:
        loopfuse.ENABLED = saved
    assert len(keys) == 2  # not the same kernel loaded back from the warm record
