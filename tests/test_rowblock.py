"""The row-blocked schedule (symgrad/backends/rowblock.py) and the products added into
their sums (``Kernel.sum_of``): which nodes run per block, and that kernels with many small
blocks of rows agree with the NumPy backend, with the kernel without blocks, and with
finite differences, at block edges and for empty batches."""

import numpy as np
import pytest
from gradcheck import check_grads

import symgrad as sg
from symgrad.backends import blas, rowblock
from symgrad.backends.numba_codegen import Kernel
from symgrad.backends.numba_lowerings import accumulates

X = sg.tensor("X", ("N", "D"))
y = sg.tensor("y", ("N",), dtype="int64")
W = sg.tensor("W", ("D", "C"))
b = sg.tensor("b", ("C",))
V = sg.tensor("V", ("C", "K"))

SOFTMAX = sg.losses.softmax_cross_entropy(X @ W + b, y) + 0.5 * sg.sum(W**2)
HINGE = sg.losses.multiclass_hinge(X @ W, y) + 0.5 * sg.sum(W**2)
MLP = sg.losses.softmax_cross_entropy(sg.gelu(X @ W + b) @ V, y) + 1e-3 * sg.losses.l2(W, V)
# a linear model of features computed per row, with two products per row (no hidden layer)
FEATURES = sg.losses.softmax_cross_entropy(sg.tanh(X) @ W + sg.abs(X) @ W + b, y) + 1e-3 * sg.sum(W**2)
CASES = {"softmax": (SOFTMAX, [W, b]), "hinge": (HINGE, [W]), "features": (FEATURES, [W, b])}


@pytest.fixture
def small_blocks(empty_cache, monkeypatch):
    """Blocks of 8 rows (the minimum), however narrow the rows: many blocks and a partial
    last one on small inputs."""
    monkeypatch.setattr(Kernel, "ROW_BLOCK_BYTES", 64)


def _inputs(rng, n, d=5, c=4, k=3, dtype=np.float64):
    return {
        "X": rng.standard_normal((n, d)).astype(dtype),
        "y": rng.integers(0, min(c, k), n),  # classes of the linear models and the MLP
        "W": (rng.standard_normal((d, c)) / np.sqrt(d)).astype(dtype),
        "b": (0.1 * rng.standard_normal(c)).astype(dtype),
        "V": (rng.standard_normal((c, k)) / np.sqrt(c)).astype(dtype),
    }


def _taken(vg, inputs):
    """The inputs ``vg`` takes (each test graph uses some of them)."""
    return {k: v for k, v in inputs.items() if k in vg.input_names}


def _kinds(f, wrt):
    k = Kernel(sg.value_and_grad(f, wrt, backend="numpy").outputs, [X, y, W, b, V])
    return k, rowblock.plan(k.order, k.args, k.outputs, accumulates)


def test_plan_puts_scores_in_blocks_and_weight_gradient_in_a_total():
    k, p = _kinds(SOFTMAX, [W])
    assert p is not None and p.batch == "N" and p.row_args == [X, y]
    ops = lambda kind: {n.op.name for n in p.nodes(kind, k.order)}  # noqa: E731
    assert "matmul" in ops(rowblock.ROW) and "matmul" in ops(rowblock.ACC)  # X_b @ W, X_b.T @ G
    # the loss and the gradient (X.T @ G + W) need the totals: after the blocks
    assert k.outputs[0] in p.nodes(rowblock.POST, k.order)


def test_no_plan_without_a_product_over_the_rows():
    # the scores alone: nothing sums over the rows, nothing reads X twice
    k = Kernel([sg.tanh(X @ W)], [X, W])
    assert rowblock.plan(k.order, k.args, k.outputs, accumulates) is None
    # a batch dim that is not first in an argument: a block of rows is not a slice
    Xt = sg.tensor("Xt", ("D", "N"))
    k = Kernel(sg.value_and_grad(sg.sum(sg.tanh(Xt.T @ W)), [W], backend="numpy").outputs,
               [Xt, W])
    assert rowblock.plan(k.order, k.args, k.outputs, accumulates) is None


def test_no_plan_for_a_model_with_a_hidden_layer():
    # its products, not the reads of X, bound its time: blocks would only cost compile time
    assert _kinds(MLP, [W, b, V])[1] is None
    assert _kinds(FEATURES, [W, b])[1] is not None


def test_no_plan_where_rows_are_needed_whole():
    # a gradient per row (dX), or a max over the batch reading every row's scores: they
    # would be copied out block by block
    assert _kinds(SOFTMAX, [W, X])[1] is None
    U = sg.tensor("U", ("D", "C"))
    batch_max = sg.sum(sg.tanh(X @ W)) + sg.sum(sg.max(X @ U, axis=0) ** 2)
    k = Kernel(sg.value_and_grad(batch_max, [W, U], backend="numpy").outputs, [X, W, U])
    assert rowblock.plan(k.order, k.args, k.outputs, accumulates) is None


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 37])
def test_many_blocks_agree_with_numpy(case, n, rng, small_blocks):
    f, wrt = CASES[case]
    vg = sg.value_and_grad(f, wrt)
    inputs = _taken(vg, _inputs(rng, n))
    if n > 8:
        assert "for r0 in range(0, " in vg.source and "bl.matmul_add(" in vg.source
    value, grads = vg(**inputs)
    value_np, grads_np = sg.value_and_grad(f, wrt, backend="numpy")(**inputs)
    np.testing.assert_allclose(value, value_np, rtol=1e-12, atol=1e-12)
    for g, g_np in zip(grads, grads_np):
        np.testing.assert_allclose(g, g_np, rtol=1e-12, atol=1e-12)


def test_blocks_change_values_by_rounding_only(rng, empty_cache, monkeypatch):
    f, wrt = FEATURES, [W, b]
    vg = sg.value_and_grad(f, wrt)
    inputs = _taken(vg, _inputs(rng, 203))  # 26 blocks of 8 rows against 1
    one = vg(**inputs)
    numba_backend = pytest.importorskip("symgrad.backends.numba_backend")
    monkeypatch.setattr(numba_backend, "_loaded", {})
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(empty_cache / "small"))
    monkeypatch.setattr(Kernel, "ROW_BLOCK_BYTES", 64)
    many = sg.value_and_grad(f, wrt)(**inputs)
    # the loss sums row after row in the same order: the same bits
    assert many[0] == one[0]
    for g1, g2 in zip(one[1], many[1]):
        np.testing.assert_allclose(g2, g1, rtol=1e-13, atol=1e-15)


def test_many_blocks_finite_differences(rng, small_blocks):
    for f, wrt in CASES.values():
        inputs = _inputs(rng, 29)
        names = sg.value_and_grad(f, wrt, backend="numpy").input_names
        check_grads(f, wrt, {k: inputs[k] for k in names}, backend="numba")


def test_float32_blocks(rng, small_blocks):
    inputs = _inputs(rng, 45, dtype=np.float32)
    X32, W32, b32 = (sg.tensor(t.name, t.shape, dtype="float32") for t in (X, W, b))
    f = sg.losses.softmax_cross_entropy(X32 @ W32 + b32, y) + 0.5 * sg.sum(W32**2)
    value, grads = sg.value_and_grad(f, [W32, b32])(**{k: inputs[k] for k in "XyWb"})
    value_np, grads_np = sg.value_and_grad(f, [W32, b32], backend="numpy")(
        **{k: inputs[k] for k in "XyWb"})
    assert grads[0].dtype == np.float32
    np.testing.assert_allclose(value, value_np, rtol=1e-5)
    for g, g_np in zip(grads, grads_np):
        np.testing.assert_allclose(g, g_np, rtol=1e-4, atol=1e-6)


def test_product_added_into_its_sum(rng, empty_cache):
    # dW = X.T @ G + W: the product adds into an array holding W (gemm, beta = 1), and
    # z = X @ W + b into one holding b: no array of the product alone, no pass to add
    vg = sg.value_and_grad(SOFTMAX, [W, b])
    src = vg.source
    assert "bl.matmul(" not in src and src.count("bl.matmul_add(") == 2
    inputs = _taken(vg, _inputs(rng, 30))
    value, grads = vg(**inputs)
    value_np, grads_np = sg.value_and_grad(SOFTMAX, [W, b], backend="numpy")(**inputs)
    np.testing.assert_allclose(value, value_np, rtol=1e-13)
    for g, g_np in zip(grads, grads_np):
        np.testing.assert_allclose(g, g_np, rtol=1e-13, atol=1e-15)


def test_a_2d_sum_before_a_sum_of_terms_is_a_loop_of_its_own(rng):
    # da = sum(C * exp(a * C), axis=1) + D: the reduction is 2-D and the only reader is a
    # sum of terms, as for a product added into its sum, but a reduction adds element by
    # element in its loop (found by the long hypothesis profile: the kernel failed to build)
    a, C, D = sg.tensor("a", (2, 1)), sg.tensor("C", (2, 3)), sg.tensor("D", (2, 1))
    f = sg.sum(sg.exp(a * C)) + sg.sum(a * D)
    inputs = {"a": rng.standard_normal((2, 1)), "C": rng.standard_normal((2, 3)),
              "D": rng.standard_normal((2, 1))}
    value, (da,) = sg.value_and_grad(f, [a])(**inputs)
    value_np, (da_np,) = sg.value_and_grad(f, [a], backend="numpy")(**inputs)
    np.testing.assert_allclose(value, value_np, rtol=1e-13)
    np.testing.assert_allclose(da, da_np, rtol=1e-13)


def test_a_shared_loop_inside_the_blocks_hands_on_its_total(rng, small_blocks, monkeypatch):
    # Unfused, the two sums over the rows (of the row max, of the picked log-probability)
    # are the same loop nest inside the loop over blocks, shared as one function; that
    # function added into the total it was passed and returned nothing: the loss was 0.0
    # (found in review, with the fused loops off)
    from symgrad.backends import loopfuse

    monkeypatch.setattr(loopfuse, "ENABLED", False)
    X, W = sg.tensor("X", ("N", 4)), sg.tensor("W", (4, 5))
    S = X @ W
    f = sg.sum(sg.max(S, axis=1)) + sg.sum(
        sg.pick(sg.log_softmax(S), sg.argmax(sg.stop_gradient(S), axis=1)))
    vg = sg.value_and_grad(f, [W])
    for n in (1, 5, 20):
        inputs = {"X": rng.standard_normal((n, 4)), "W": rng.standard_normal((4, 5))}
        value, (dW,) = vg(**inputs)
        value_np, (dW_np,) = sg.value_and_grad(f, [W], backend="numpy")(**inputs)
        np.testing.assert_allclose(value, value_np, rtol=1e-13)
        np.testing.assert_allclose(dW, dW_np, rtol=1e-12, atol=1e-14)


def test_a_nan_in_a_block_stays_a_nan(rng, small_blocks):
    vg = sg.value_and_grad(SOFTMAX, [W])
    inputs = _taken(vg, _inputs(rng, 30))
    inputs["X"][17, 2] = np.nan  # in the third block of 8 rows
    value, (dW,) = vg(**inputs)
    # the loss, and the row of dW that X's NaN column reaches
    assert np.isnan(value) and np.isnan(dW[2]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "m,k,n", [(5, 7, 3), (1, 4, 1), (4, 1, 3), (3, 5, 1), (0, 3, 2), (3, 0, 2)]
)
def test_matmul_add_reads_every_layout(rng, dtype, m, k, n):
    a0 = rng.standard_normal((m, k)).astype(dtype)
    b0 = rng.standard_normal((k, n)).astype(dtype)
    # a kernel's arrays: C-ordered, transposes of C-ordered ones (F-ordered), views of them
    layouts = [np.ascontiguousarray, np.asfortranarray, lambda x: x[:, ::-1][:, ::-1]]
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for fa in layouts:
        for fb in layouts:
            out = rng.standard_normal((m, n)).astype(dtype)
            expected = out + a0.astype(np.float64) @ b0.astype(np.float64)
            blas.matmul_add(fa(a0), fb(b0), out, True)
            np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    # what BLAS cannot read where it lies (no unit stride along either axis; a broadcast or
    # reversed view, read out of bounds): kernels pass none, so it raises
    unreadable = []
    if m > 1 and k > 1:
        unreadable.append(np.repeat(np.repeat(a0, 2, axis=0), 2, axis=1)[::2, ::2])
    if m > 1 and k > 0:
        unreadable += [np.broadcast_to(a0[:1], (m, k)), a0[::-1]]
    if m > 0 and k > 1:
        unreadable.append(np.broadcast_to(a0[:, :1], (m, k)))
    for bad in unreadable:
        with pytest.raises(ValueError, match="BLAS reads"):
            blas.matmul_add(bad, b0, np.zeros((m, n), dtype), True)
        with pytest.raises(ValueError, match="BLAS reads"):
            blas.matvec(bad, b0[:, 0].copy())
    written = np.full((m, n), np.nan, dtype)  # not read without add
    blas.matmul_add(a0, b0, written, False)
    np.testing.assert_allclose(written, a0 @ b0, rtol=tol, atol=tol)
    assert np.array_equal(written, blas.matmul(a0, b0))
    if m > 1 and n > 1 and blas.BLAS == "numpy":  # NumPy's matmul makes the same gemm call
        assert np.array_equal(written, a0 @ b0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, k", [(5, 3), (40, 30), (1, 4), (4, 1), (0, 3), (3, 0)])
def test_products_with_a_vector_read_every_layout(rng, dtype, m, k):
    a0 = rng.standard_normal((m, k)).astype(dtype)
    x0, y0 = rng.standard_normal(k).astype(dtype), rng.standard_normal(m).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    wide = a0.astype(np.float64)
    # matrices as in a kernel (C-ordered, F-ordered, views); vectors also strided (a copy)
    matrices = [np.ascontiguousarray, np.asfortranarray, lambda x: x[:, ::-1][:, ::-1]]
    vectors = [np.ascontiguousarray, lambda v: np.repeat(v, 2)[::2]]
    for fa in matrices:
        for fv in vectors:
            a, x, y = fa(a0), fv(x0), fv(y0)
            for got, want in [(blas.matvec(a, x), wide @ x0), (blas.vecmat(y, a), y0 @ wide)]:
                assert got.dtype == dtype
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            out = np.ones(m, dtype)  # out += a @ x
            blas.matvec_add(a, x, out, True)
            np.testing.assert_allclose(out, 1 + wide @ x0, rtol=tol, atol=tol)
            out = np.full(k, np.nan, dtype)  # out = y @ a: not read
            blas.vecmat_add(y, a, out, False)
            np.testing.assert_allclose(out, y0 @ wide, rtol=tol, atol=tol)
            dot = blas.vecdot(x, fv(x0[::-1].copy()))
            np.testing.assert_allclose(dot, x0.astype(np.float64) @ x0[::-1], rtol=tol, atol=tol)
    if m > 1 and k > 1 and blas.BLAS == "numpy":  # the gemv and dot calls of NumPy's matmul
        assert np.array_equal(blas.matvec(a0, x0), a0 @ x0)
        assert np.array_equal(blas.vecmat(y0, a0), y0 @ a0)
        assert blas.vecdot(x0, x0) == x0 @ x0


def test_backward_kernel_blocks_with_saved_values(rng, small_blocks):
    # vg.backward(): a kernel of X and the saved forward values (per row, and scalars), with
    # a product per row (G @ V.T) and one over the rows (X.T @ dZ)
    s = sg.tensor("s", ())
    f = sg.losses.softmax_cross_entropy(s * sg.gelu(X @ W + b) @ V, y) + s * sg.sum(W**2)
    vg = sg.value_and_grad(f, [W, b, V])
    inputs = {**_taken(vg, _inputs(rng, 37)), "s": 1.5}
    value, residuals = vg.forward(**inputs)
    grads = vg.backward(residuals)
    assert "for r0 in range(0, " in vg.split_source[1]
    want_value, wants = sg.value_and_grad(f, [W, b, V], backend="numpy")(**inputs)
    np.testing.assert_allclose(value, want_value, rtol=1e-13)
    for g, want in zip(grads, wants):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)


SCIPY_BLAS = """
import numpy as np
from symgrad.backends import blas
print(blas.BLAS, blas.bind_blas(numpy_first=False))  # before any product is loaded
rng = np.random.default_rng(1)
for dtype in (np.float64, np.float32):
    a, b = rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    x, y = rng.standard_normal(4).astype(dtype), rng.standard_normal(6).astype(dtype)
    out = np.ones((6, 5), dtype)
    blas.matmul_add(a, np.asfortranarray(b), out, True)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, 1 + a @ b, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.matmul(a.T.copy().T, b), a @ b, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.matvec(a, x), a @ x, rtol=tol, atol=tol)
    np.testing.assert_allclose(blas.vecmat(y, np.asfortranarray(a)), y @ a, rtol=tol, atol=tol)
    dot = blas.vecdot(x, x)
    np.testing.assert_allclose(dot, x @ x, rtol=tol, atol=tol)
print("ok")
"""


def test_without_numpys_own_blas_products_call_scipys(run_python):
    # a NumPy without a CBLAS of its own (Accelerate, MKL): the names kernels call are bound
    # to functions of the same signatures that call Numba's numba_xxgemm, numba_xxgemv and
    # numba_xxdot (SciPy's BLAS)
    assert run_python(SCIPY_BLAS).split() == [blas.BLAS, "scipy", "ok"]
