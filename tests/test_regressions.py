"""One test per bug found in review, each on the backends it concerned."""

import numpy as np
import pytest

import symgrad as sg


def test_parallel_sum_over_the_outer_loop_is_not_a_race():
    x = sg.tensor("pr", (1, "M"))
    fn = sg.compile(sg.sum(sg.exp(x), axis=1), parallel=True)
    values = np.linspace(-1, 1, 200_000)[None, :]
    assert "prange" not in fn.source.split("def kernel")[1]  # the only loop sums: serial
    np.testing.assert_allclose(fn(pr=values), np.exp(values).sum(axis=1), rtol=1e-12)


def test_max_of_a_bool_tensor(backend):
    x = sg.tensor("bm", (3,))
    fn = sg.compile(sg.max(x > 0), backend=backend)
    assert fn(bm=np.array([-1.0, -2.0, -3.0])) == 0.0
    assert fn(bm=np.array([-1.0, 2.0, -3.0])) == 1.0


def test_fusion_keeps_the_rounding_of_a_cast(backend):
    x = sg.tensor("cr", ())
    got = sg.compile(sg.cast(x, "float32") - x, backend=backend)(cr=1 + 1e-9)
    assert got == pytest.approx(np.float64(np.float32(1 + 1e-9)) - (1 + 1e-9), rel=1e-6)


def test_backward_returns_arrays_the_caller_owns(backend):
    x = sg.tensor("ba", (3,))
    vg = sg.value_and_grad(sg.sum(sg.exp(x)), x, backend=backend)
    _, residuals = vg.forward(ba=np.zeros(3))
    g = vg.backward(residuals)
    g *= 100
    np.testing.assert_array_equal(vg.backward(residuals), np.ones(3))


def test_backward_refuses_residuals_of_another_function():
    x = sg.tensor("bo", (3,))
    a = sg.value_and_grad(sg.sum(sg.exp(x)), x, backend="numpy")
    b = sg.value_and_grad(sg.sum(sg.tanh(x)), x, backend="numpy")
    _, residuals = a.forward(bo=np.zeros(3))
    with pytest.raises(sg.SymgradError, match="this function"):
        b.backward(residuals)


def test_one_hot_sum_with_class_weights(backend):
    y = sg.tensor("cw_y", ("N",), dtype="int64")
    w = sg.tensor("cw_w", (3,))
    fn = sg.compile(sg.sum(sg.one_hot(y, 3) * w, axis=-1), backend=backend)
    np.testing.assert_array_equal(
        fn(cw_y=np.array([2, 0]), cw_w=np.array([1.0, 2.0, 3.0])), [3.0, 1.0]
    )


def test_input_names_cannot_clash_with_kernel_locals(backend):
    x, x_i = sg.tensor("x", (2,)), sg.tensor("x_i", (2,))
    fn = sg.compile(sg.exp(x) * x_i + x, backend=backend)
    a, b = np.array([0.0, 1.0]), np.array([2.0, 3.0])
    np.testing.assert_allclose(fn(x=a, x_i=b), np.exp(a) * b + a, rtol=1e-15)


def test_infinite_constants_mix_with_tensors(backend):
    m = sg.tensor("ic", (3,))
    fn = sg.compile([sg.where(m > 0, m, -np.inf), m / 0], backend=backend)
    with np.errstate(divide="ignore"):
        masked, divided = fn(ic=np.array([1.0, -1.0, 2.0]))
    np.testing.assert_array_equal(masked, [1.0, -np.inf, 2.0])
    np.testing.assert_array_equal(divided, [np.inf, -np.inf, np.inf])


def test_unknown_option_is_an_error():
    x = sg.tensor("uo", ())
    with pytest.raises(sg.ArgumentError, match="paralel"):
        sg.compile(x * 2, paralel=True)


def test_float32_tensor_in_a_float64_graph_gets_a_float32_gradient():
    a, b = sg.tensor("f32", (2,), dtype="float32"), sg.tensor("f64", (2,))
    ga, gb = sg.grad(sg.sum(a * b), [a, b])
    assert (ga.dtype, gb.dtype) == ("float32", "float64")


def test_bad_dtype_and_index_are_symgrad_errors():
    with pytest.raises(sg.DTypeError):
        sg.tensor("bd", (2,), dtype=5)
    with pytest.raises(sg.ArgumentError):
        sg.tensor("bi", (2,))[np.array([0, 1])]
    with pytest.raises(sg.SymgradError):
        bool(sg.tensor("bb", ()) > 0)


@pytest.mark.parametrize("axis", [(0, 1), (0,), 1.0, True])
def test_argmax_takes_one_int_axis(axis):
    # found by the fuzzer: a tuple of axes unpacked into a raw ValueError
    with pytest.raises(sg.ArgumentError, match="argmax takes one axis"):
        sg.argmax(sg.tensor("am", (2, 3)), axis=axis)


def test_a_float32_value_cast_to_float64_stays_float64_in_the_loop(backend):
    # d/dt sum(a * t * c) = sum over rows of float64(c) * a: the cast of c is a node of its
    # own in the optimised graph; a Numba kernel read it as float32 and multiplied in float32
    # (-2.5 * 3.4e38 overflowed to -inf), where the graph says float64 (long fuzz run)
    a = sg.tensor("a", (3, 2), "float32")
    c = sg.tensor("c", (3, 2), "float32")
    t = sg.tensor("t", ("K",), "float64")
    vg = sg.value_and_grad(sg.sum(a * t * c), [a, t], backend=backend)
    big = np.float32(3.4028234663852886e38)
    _, (_, grad_t) = vg(a=np.array([[0, 0], [0, -2.5], [0, 0]], "float32"), t=np.zeros(2),
                        c=np.array([[0, 0], [0, big], [0, 0]], "float32"))
    np.testing.assert_array_equal(grad_t, [0.0, -2.5 * np.float64(big)])


def test_a_sum_of_a_cast_to_float32_adds_float32_values(backend):
    # the sum read the cast's element unrounded (a float64 local): 3.0000002 for three
    # values that are 1.0 in float32 (found in review)
    x = sg.tensor("sx", ("N",), "float64")
    got = sg.compile(sg.sum(sg.cast(x, "float32")), backend=backend)(sx=np.full(3, 1 + 0.49 * 2.0**-23))
    assert got == np.float32(3.0)


def test_a_variance_of_one_value_folds_to_zero(backend):
    # found by the long fuzz run (test_optimisation_preserves_values): the variance of a
    # (2, 1) array along its axis of one value folded its constants to (1 - Div(2, 2))**2,
    # which SymPy cannot turn into a float: a TypeError while simplifying
    a = sg.tensor("va", (2, 1))
    loss = sg.mean(sg.var(sg.exp(sg.var(sg.exp(sg.exp(sg.exp(a))), axis=1))))
    value, grad = sg.value_and_grad(loss, a, backend=backend)(va=np.array([[0.06], [-0.07]]))
    assert value == 0.0
    np.testing.assert_array_equal(grad, np.zeros((2, 1)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_constant_power_over_our_functions_prints_in_any_dtype(backend, dtype):
    # the same constant inside a formula that reads an input: the float32 Numba printer
    # turned every constant power into a float and failed on it
    import sympy

    from symgrad.ops import core
    from symgrad.ops.elementwise import Div, Paren, sym

    x = sg.tensor("px", (3,), dtype)
    expr = sym(0) * Paren(1 - Div(sympy.Integer(2), sympy.Integer(2))) ** 2 + sym(0)
    got = sg.compile(sg.sum(core.ew(expr, [x])), backend=backend)(px=np.ones(3, dtype))
    assert got == 3.0


def test_the_chain_rule_multiplies_the_derivative_by_the_cotangent_last(backend):
    # d/da sum(var(a, axis=0, ddof=1) * c) is c * (2*(a - mean)) / (n - 1): the chain rule
    # wrote g * 2*x as one flat product, whose factors SymPy orders by the inputs' numbers,
    # which optimisation changes; NumPy computed (2*c)*0 = inf*0 = nan for c at float32's
    # largest value, where the graph as written gives 0 (long fuzz run)
    a = sg.tensor("ra", (2, 3), "float32")
    c = sg.tensor("rc", (3,), "float32")
    vg = sg.value_and_grad(sg.sum(sg.var(a, axis=0, ddof=1) * c), a, backend=backend)
    big = np.finfo("float32").max
    _, grad = vg(ra=np.zeros((2, 3), "float32"), rc=np.array([0, 0, big], "float32"))
    np.testing.assert_array_equal(grad, np.zeros((2, 3), "float32"))


def test_the_reference_runs_a_product_with_a_nan_constant(backend):
    # d/da (-1)**a = log(-1) * (-1)**a: the reference folded log(-1) to a NaN literal of the
    # product, which SymPy cannot print (it compares the coefficient with 0: "Invalid NaN
    # comparison"); the backends print log(-1) and compute NaN (long fuzz run)
    from symgrad.backends.reference import run

    a, c = sg.tensor("na", ()), sg.tensor("nc", ())
    loss = sg.sum(sg.power(-1, a) * c)
    (grad,) = sg.grad(loss, [a])
    inputs = {"na": np.array(0.0), "nc": np.array(0.0)}
    reference = run([loss, grad], ["na", "nc"], tuple(inputs.values()), {})
    _, (got,) = sg.value_and_grad(loss, [a], backend=backend)(**inputs)
    assert np.isnan(reference.values[1]) and np.isnan(got) and not reference.finite


def as_written(outputs, inputs):
    """The graph run as written (``symgrad.backends.reference``), whose every intermediate
    value is finite here: the optimised graph must give the same values."""
    from symgrad.backends.reference import run

    names = list(inputs)
    reference = run(outputs, names, tuple(inputs.values()), {})
    assert reference.finite, reference.first
    return reference.values


@pytest.mark.parametrize("order", [(1, 1, -1), (-1, 1, 1)])  # the sums as written: finite
def test_the_adjoint_parts_are_added_in_pairs_as_written(backend, order):
    # d/dx of sum(x*a) + sum(x*b) + sum(x*c) is a + b + c: one flat sum, whose order SymPy
    # took from the inputs' numbers and the Numba backend from its variables' names, added
    # 1e308 + 1e308 first (inf) for some orders of the values where the graph as written
    # does not (found in review)
    x, a, b, c = (sg.tensor(n, (2,)) for n in ("tx", "ta", "tb", "tc"))
    loss = sg.sum(x * a) + sg.sum(x * b) + sg.sum(x * c)
    inputs = {"tx": np.full(2, 1e-300)}
    inputs.update(zip(("ta", "tb", "tc"), (np.full(2, s * 1e308) for s in order)))
    (want,) = as_written(sg.grad(loss, [x]), inputs)
    _, grad = sg.value_and_grad(loss, x, backend=backend)(**inputs)
    np.testing.assert_array_equal(grad, want)
    assert np.isfinite(grad).all()


def test_two_adjoint_parts_that_become_one_node_are_still_added_as_written(backend):
    # stop_gradient goes, so two parts are the same node: the flat sum merged them into
    # x0 + 2*x1, which overflows where w + (w + v) does not (found in review)
    x, w, v = (sg.tensor(n, (2,)) for n in ("mx", "mw", "mv"))
    loss = sg.sum(x * w) + sg.sum(x * sg.stop_gradient(w)) + sg.sum(x * v)
    inputs = {"mx": np.full(2, 1e-300), "mw": np.full(2, 1e308), "mv": np.full(2, -1e308)}
    (want,) = as_written(sg.grad(loss, [x]), inputs)
    _, grad = sg.value_and_grad(loss, x, backend=backend)(**inputs)
    np.testing.assert_array_equal(grad, want)
    np.testing.assert_array_equal(grad, np.full(2, 1e308))


def test_the_one_hot_sum_keeps_each_product_as_written(backend):
    # sum(one_hot(y) * (a*b) * (c*d)) picks (a*b)*(c*d) at y: the rewrite spliced the
    # products into one flat product and computed c*d*b*a = inf where the graph as written
    # gives 1e300 (found in review)
    y = sg.tensor("oy", (2,), "int64")
    a, b, c, d = (sg.tensor(n, (2, 1)) for n in ("oa", "ob", "oc", "od"))
    out = sg.sum(sg.one_hot(y, 3) * (a * b) * (c * d), axis=-1)
    inputs = {
        "oy": np.array([0, 2]), "oa": np.full((2, 1), 1e-10), "ob": np.full((2, 1), 1e10),
        "oc": np.full((2, 1), 1e300), "od": np.ones((2, 1)),
    }
    (want,) = as_written([out], inputs)
    got = sg.compile(out, backend=backend)(**inputs)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.full(2, 1e300))


def test_a_formula_over_float32_and_float64_values_computes_in_float64(backend):
    # d/da sum(var(a) * c) for float32 a and float64 c is c * Paren(2 * (a - mean) / 3), one
    # node: NumPy's backend doubled a - mean in float32 (inf, then nan) where a Numba kernel
    # computed in float64; a formula converts its float32 operands first (long fuzz run)
    a, c = sg.tensor("a", (3,), "float32"), sg.tensor("c", (), "float64")
    big = np.float32(3.4028234663852886e38)
    vg = sg.value_and_grad(sg.sum(sg.var(a) * c), [a], backend=backend)
    value, (grad,) = vg(a=np.array([0, 0, big], "float32"), c=np.float64(1.0))
    assert value == np.inf  # var itself is float32: (2/3 * big)**2 overflows
    m = np.float64(big)
    np.testing.assert_allclose(grad, np.float32([-2 * m / 9, -2 * m / 9, 4 * m / 9]), rtol=1e-6)


def test_a_piecewise_condition_of_where_stays_as_written(backend):
    # not_equal(a < b, c) of a bool node c, inlined into where's condition, was simplified
    # by SymPy to ~(c & (a < b)), not their xor: 0.0 where the graph gives 0.5 (the long
    # differential run, with the generator's xor of two conditions)
    a1, a3, a5 = (sg.tensor(n, ()) for n in ("a1", "a3", "a5"))
    v4 = sg.exp(a3)
    c = sg.less(v4, a5)
    out = sg.where(sg.not_equal(sg.less(v4, a1), c), a1, 0.5)
    inputs = {"a1": 0.0, "a3": 0.0, "a5": 0.0}
    assert sg.compile([out, c, v4], backend=backend)(**inputs) == (0.5, False, 1.0)


def _f32(*values):
    return np.array(values, "float32")


def _cast_condition():
    x, y = sg.tensor("x", (2,)), sg.tensor("y", (2,))
    return [sg.cast(x * 0.1 > y, "float32")], dict(x=np.array([1.0, 0.0]), y=np.array([0.1, 0.5]))


def _float32_condition_in_float64_choice():
    x, y, z = (sg.tensor(n, (3,), "float32") for n in "xyz")
    a, b = sg.tensor("a", (3,)), sg.tensor("b", (3,))
    inputs = dict(x=_f32(1, 1, 0), y=_f32(2**-24, 1, 0), z=_f32(1, 1, 1), a=np.ones(3), b=np.zeros(3))
    return [sg.where(x + y > z, a, b)], inputs  # 1 + 2**-24 is 1 in float32: not > 1


def _float64_condition_around_float32_sum():
    x, p, q, r = (sg.tensor(n, (), "float32") for n in "xpqr")
    w = sg.tensor("w", ())
    inputs = dict(x=np.float32(1), w=np.float64(0), p=np.float32(3e38), q=np.float32(3e38),
                  r=np.float32(-3e38))
    return [sg.where(x > w, p + q + r, np.float32(0))], inputs  # p + q is inf in float32


def _two_conditions_in_a_bool_user():
    v, w = sg.tensor("v", (3,), "float32"), sg.tensor("w", ())
    inputs = dict(v=_f32(1 + 2**-15, 1, 0.5), w=np.float64(0))
    # (1 + 2**-15)**2 is 1 + 2**-14 in float32, above it in float64
    return [sg.equal(v > w, v * v > 1 + 2**-14)], inputs


def _shared_erf_of_a_widened_gradient():
    x, c = sg.tensor("x", (5,), "float32"), sg.tensor("c", (5,))
    y = sg.gelu(x)
    return [y, sg.grad(sg.sum(y * c), x)[0]], dict(x=_f32(-5.54, -3, -1, 0.5, 1), c=np.ones(5))


@pytest.mark.parametrize(
    "case",
    [_cast_condition, _float32_condition_in_float64_choice,
     _float64_condition_around_float32_sum, _two_conditions_in_a_bool_user,
     _shared_erf_of_a_widened_gradient],
    ids=lambda f: f.__name__[1:],
)
def test_fused_and_shared_formulas_compute_in_the_dtypes_as_written(case, backend):
    # fusion inlined a condition into a formula that converts float32 values to float64
    # (dtypes.widens) or made its float64 operand widen float32 arithmetic; share_calls
    # took erf out of a float64 gradient formula as a float32 node (3 % off at x = -5.54);
    # a float32 cast of float64 values rounded its constants to float32; two conditions, one
    # with a float64 operand, met in a bool user: the float32 one compared in float64 (found
    # in review)
    from symgrad.backends.reference import run as reference

    outputs, inputs = case()
    want = reference(outputs, list(inputs), tuple(inputs.values()), {}).values
    got = sg.compile(outputs, backend=backend)(**inputs)
    for g, w in zip(got, want):
        if w.dtype == bool:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=4 * np.finfo(w.dtype).eps, atol=0)
