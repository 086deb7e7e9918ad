"""The vector math functions (symgrad/backends/vmath.py) and the kernels that call them.

The ulp sweeps here are CI-sized (20,000 points per function and dtype, plus the special
values).  The full sweep of docs/accuracy.md, 2 million points each::

    SYMGRAD_VMATH_POINTS=2000000 python -m pytest tests/test_vmath.py -k ulp
    python tests/ulp.py          # the same sweep, printed as the table of docs/accuracy.md
"""

import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import vmath

sys.path.insert(0, str(Path(__file__).parent))
import ulp  # noqa: E402

POINTS = int(os.environ.get("SYMGRAD_VMATH_POINTS", "20000"))

# The bounds documented in docs/accuracy.md (max error in ulps, float64 and float32).
BOUNDS = {
    "exp": (1.0, 1.5),
    "expm1": (1.0, 1.5),
    "log": (1.0, 1.0),
    "log1p": (1.0, 1.0),
    "tanh": (1.5, 1.5),
    "erf": (1.0, 1.0),
    "sin": (1.0, 1.0),
    "cos": (1.0, 1.0),
    "sigmoid": (2.0, 2.0),
}


def test_every_function_has_a_documented_bound():
    assert set(BOUNDS) == set(ulp.NAMES)
    text = (Path(__file__).parents[1] / "docs" / "accuracy.md").read_text()
    for name in BOUNDS:
        assert f"| {name} |" in text, name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(BOUNDS))
def test_ulp_bound(name, dtype):
    err, at = ulp.max_error(name, dtype, POINTS, seed=7)
    bound = BOUNDS[name][dtype == "float32"]
    assert err <= bound, f"{name} {dtype}: {err:.3f} ulp at x = {at!r} (bound {bound})"


def test_the_ulp_measure_can_fail():
    """The sweep catches an error of a few ulps: libm's exp times (1 + 4 eps) fails."""
    x = ulp.sample("exp", 2000)
    x = x[x < 709]
    bad = np.exp(x) * (1 + 4 * np.finfo(np.float64).eps)
    assert ulp.ulp_errors(bad, ulp.reference("exp", x), "float64").max() > 3
    good = np.exp(x)
    assert ulp.ulp_errors(good, ulp.reference("exp", x), "float64").max() <= 1


# --- special values ----------------------------------------------------------------------

INF, NAN = math.inf, math.nan
SPECIAL = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (NAN, NAN), (709.79, INF),
            (-745.2, 0.0), (-745.13, 5e-324), (5e-324, 1.0)],
    "expm1": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -1.0), (NAN, NAN), (709.79, INF),
              (-50.0, -1.0), (5e-324, 5e-324), (-5e-324, -5e-324)],
    "log": [(0.0, -INF), (-0.0, -INF), (1.0, 0.0), (INF, INF), (-INF, NAN), (-1.0, NAN),
            (NAN, NAN), (5e-324, -744.4400719213812)],
    "log1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -INF), (-2.0, NAN), (INF, INF), (-INF, NAN),
              (NAN, NAN), (5e-324, 5e-324), (-5e-324, -5e-324)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (5e-324, 5e-324),
             (-5e-324, -5e-324), (30.0, 1.0), (-30.0, -1.0)],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (6.0, 1.0),
            (1e-310, 1.1283791670955126e-310)],
    "sin": [(0.0, 0.0), (-0.0, -0.0), (INF, NAN), (-INF, NAN), (NAN, NAN), (5e-324, 5e-324)],
    "cos": [(0.0, 1.0), (-0.0, 1.0), (INF, NAN), (-INF, NAN), (NAN, NAN), (5e-324, 1.0)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (INF, 1.0), (-INF, 0.0), (NAN, NAN), (40.0, 1.0),
                (-709.7827128933841, 0.0), (-745.0, 0.0), (-1e300, 0.0), (1e300, 1.0)],
}


# float32 (computed in float32 lanes): the ends of each range, where the reduction, the
# two-factor scaling and the selects matter; checked against the exact value within the
# documented bound
EDGES32 = {
    "exp": [88.8, 88.72, 88.7, -87.5, -103.0, -103.9, -104.0, -150.0],
    "expm1": [88.8, 88.72, 88.7, 17.3, 17.4, -17.0, -18.0, -1e-45, 1e-7, 0.35, -0.35],
    "log": [1e-45, 1e-39, 1.1754942e-38, 3.4028235e38, 0.70710677, 1.4142135],
    "log1p": [1e-45, 3.4028235e38, -0.99999994, -0.5, 0.41421354, 16777216.0, 33554432.0],
    "tanh": [1e-45, 9.0, 9.1, 10.0, 10.1, 0.625, 0.62499994, -0.625, 20.0],
    "sigmoid": [-103.9, -110.0, 17.0, -17.0, -87.0, 88.8],
    "sin": [3.4028235e38, -1e38, 1e30, 16777216.0, 0.7853982, 0.78539807, 1e-45, 1e4],
    "cos": [3.4028235e38, -1e38, 1e30, 16777216.0, 0.7853982, 0.78539807, 1e-45, 1e4],
}


@pytest.mark.parametrize("name", list(EDGES32))
def test_float32_range_ends(name):
    x = np.array(EDGES32[name], dtype=np.float32)
    got = ulp.vector(name, "float32")(x)
    assert got.dtype == np.float32
    err = ulp.ulp_errors(got, ulp.reference(name, x.astype(np.float64)), "float32")
    bad = err > BOUNDS[name][1]
    assert not bad.any(), f"{name} at {x[bad].tolist()}: {got[bad].tolist()}"


def _same(got, want) -> bool:
    """Equal, with NaN equal to NaN and the sign of zero compared."""
    if math.isnan(want):
        return math.isnan(got)
    return got == want and math.copysign(1, got) == math.copysign(1, want)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(SPECIAL))
def test_special_values(name, dtype):
    pairs = SPECIAL[name]
    if dtype == "float32":  # zeros, infinities and NaN mean the same in float32
        pairs = [(x, w) for x, w in pairs if x == 0 or not math.isfinite(x)]
    x = np.array([x for x, _ in pairs], dtype=dtype)
    got = ulp.vector(name, dtype)(x)
    assert got.dtype == np.dtype(dtype)
    for xi, g, (_, w) in zip(x.tolist(), got.tolist(), pairs):
        assert _same(g, w), f"{name}({xi!r}) = {g!r}, want {w!r}"


@pytest.mark.parametrize("name", sorted(vmath.FUNCTIONS))
def test_every_function_takes_ints_and_the_other_float_width(name):
    # a kernel calls them on whatever its formula reads: an int64 label, a float32 scalar in
    # a float64 formula (both failed to compile: found by the long hypothesis profile)
    f64, f32 = vmath.scalar(name, "float64"), vmath.scalar(name, "float32")
    for v in (2, -3, 0):
        assert _same_typed(f64(np.int64(v)), f64(float(v))), (name, v)
        assert _same_typed(f32(np.int64(v)), f32(np.float32(v))), (name, v)
    for v in (0.25, -1.5):
        assert _same_typed(f64(np.float32(v)), f64(float(np.float32(v)))), (name, v)
        assert _same_typed(f32(np.float64(v)), f32(np.float32(v))), (name, v)


def _same_typed(got, want) -> bool:
    return type(got) is type(want) and _same(got, want)


def test_kernels_call_vector_functions_on_ints_and_float32_scalars():
    x, i = sg.tensor("x", (3,)), sg.tensor("i", (3,), dtype="int64")
    s32, s64 = sg.tensor("s32", (), dtype="float32"), sg.tensor("s64", ())
    values = {"x": np.array([0.1, -0.5, 2.0]), "i": np.array([1, -2, 3]),
              "s32": np.float32(0.75), "s64": 1.25}
    for f, given in [(sg.sum(sg.tanh(i) * x), "xi"), (sg.sum(sg.sin(s32) * s64), ("s32", "s64"))]:
        wrt = [x] if given == "xi" else [s64]
        inputs = {k: values[k] for k in values if k in given}
        value, grads = sg.value_and_grad(f, wrt)(**inputs)
        value_np, grads_np = sg.value_and_grad(f, wrt, backend="numpy")(**inputs)
        np.testing.assert_allclose(value, value_np, rtol=1e-7)
        np.testing.assert_allclose(grads[0], grads_np[0], rtol=1e-7)


def test_functions_match_numpy_on_ordinary_arguments():
    """Off the special cases, agreement with NumPy to a couple of ulps (two independent
    implementations, each within 1 ulp or so)."""
    rng = np.random.default_rng(3)
    x = rng.normal(scale=3, size=2000)
    checks = {"exp": np.exp, "expm1": np.expm1, "tanh": np.tanh, "sin": np.sin, "cos": np.cos}
    for name, ref in checks.items():
        np.testing.assert_allclose(ulp.vector(name, "float64")(x), ref(x), rtol=5e-16, atol=0)
    for name, ref in {"log": np.log, "log1p": np.log1p}.items():
        np.testing.assert_allclose(ulp.vector(name, "float64")(np.abs(x)), ref(np.abs(x)),
                                   rtol=5e-16, atol=0)


# --- kernels -----------------------------------------------------------------------------

def _chain(x):
    return sg.sum(sg.tanh(sg.sigmoid(x) * x + sg.exp(-(x**2))) * sg.log1p(x**2))


def test_generated_source_calls_the_vector_functions():
    x = sg.tensor("vmsrc", ("n",))
    on = sg.value_and_grad(_chain(x), x).source
    off = sg.value_and_grad(_chain(x), x, vector_math=False).source
    for name in ("exp", "tanh", "log1p"):
        assert f"vm.{name}(" in on and f"math.{name}(" not in on
        assert f"math.{name}(" in off and "vm." not in off
    assert "from symgrad.backends import vmath as vm" in on
    assert "vmath" not in off
    # sigmoid's formula 1 / (1 + exp(-x)) becomes one call, within 2 ulp
    assert "vm.sigmoid(" in on and "sigmoid" not in off


def test_vector_sigmoids_rewrites_only_the_sigmoid_form():
    import sympy as sp

    from symgrad.backends.numba_printers import sigmoid, vector_sigmoids
    from symgrad.ops.elementwise import Const, Div, Exp, Paren

    x, y = sp.symbols("x y")
    assert vector_sigmoids(Div(1, 1 + Exp(-x))) == sigmoid(x)
    assert vector_sigmoids(Div(Const(1.0), Paren(Exp(2 * x) + 1)) * y) == y * sigmoid(-2 * x)
    assert vector_sigmoids(1 / (1 + sp.exp(-x))) == sigmoid(x)
    for other in (Div(1, 2 + Exp(-x)), Div(2, 1 + Exp(-x)), Div(1, 1 + x), Exp(-x),
                  Div(1, 1 + Exp(-x) + y)):
        assert vector_sigmoids(other) == other


def test_sigmoid_kernel_underflows_where_the_formula_does():
    """vmath's sigmoid is 0 exactly where 1 / (1 + exp(-x)) is (exp(-x) overflows), with
    vector math on and off and in the interpreter, and tiny but not 0 just before."""
    x = sg.tensor("vmsig", ("n",))
    xs = np.array([-740.0, -709.7827128933841, -709.782712893384, -709.0, -40.0, 0.0, 40.0])
    want = sg.compile(sg.sigmoid(x), backend="numpy")(vmsig=xs)
    for vm in (True, False):
        got = sg.compile(sg.sigmoid(x), vector_math=vm)(vmsig=xs)
        np.testing.assert_array_equal(got[:2], [0.0, 0.0])
        assert 0 < got[2] < 1e-307
        np.testing.assert_allclose(got[2:], want[2:], rtol=4e-16, atol=2e-323)
    x32 = sg.tensor("vmsig32", ("n",), dtype="float32")
    xs = np.array([-90.0, -88.72283935546875, -88.72283172607422, -80.0, 0.0], np.float32)
    want = sg.compile(sg.sigmoid(x32), backend="numpy")(vmsig32=xs)
    for vm in (True, False):
        got = sg.compile(sg.sigmoid(x32), vector_math=vm)(vmsig32=xs)
        np.testing.assert_array_equal(got[:2], [0.0, 0.0])
        assert 0 < got[2] < 1e-37
        np.testing.assert_allclose(got[2:], want[2:], rtol=3e-7, atol=3e-45)


# arguments where the reduction modulo pi/2 is hard: huge, near multiples of pi/2 (the
# float64 closest to one, 6381956970095103 2**797, 4.7e-19 from it), the ends of the
# exponent range, and the special values
TRIG_ARGS = [0.0, -0.0, 5e-324, -1e-310, 1e-8, 0.7853981633974483, 0.7853981633974484, 1.0,
             -2.5, 1e5, -1.6e6, 1e7, 2.0**52 + 1, 2.0**53, 1e22, -1e22, 1e300, -1e300,
             5.319372648326541e255, 1.7976931348623157e308, -1.7976931348623157e308,
             np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sin_and_cos_kernels_are_right_for_every_argument(dtype):
    """Kernels call vmath's sin and cos, which reduce any argument exactly (no libm
    fallback): within their bound of the exact value at huge arguments too, NaN at inf,
    the sign of zero kept; libm's with vector_math=False."""
    x = sg.tensor("vmtrig", ("n",), dtype=dtype)
    with np.errstate(over="ignore"):  # float32: 1e300 is inf
        xs = np.array(TRIG_ARGS + [3.4028235e38, -1e38, 16777216.0], dtype=dtype)
    for op, name in ((sg.sin, "sin"), (sg.cos, "cos")):
        on = sg.compile(op(x))
        off = sg.compile(op(x), vector_math=False)
        suffix = "_f32" if dtype == "float32" else ""
        assert f"vm.{name}{suffix}(" in on.source and f"math.{name}(" in off.source
        with np.errstate(invalid="ignore"):
            got, libm = on(vmtrig=xs), off(vmtrig=xs)
        assert got.dtype == np.dtype(dtype)
        err = ulp.ulp_errors(got, ulp.reference(name, xs.astype(np.float64)), dtype)
        assert err.max() <= BOUNDS[name][dtype == "float32"], xs[np.argmax(err)]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(libm))
        np.testing.assert_array_equal(np.signbit(got[got == 0]), np.signbit(libm[libm == 0]))


def test_trig_in_a_fused_loop_with_a_reduction():
    """sin and cos feeding arithmetic and a sum, at arguments up to 1e300: the kernel with
    vector math on and off and the NumPy backend agree to rounding."""
    x = sg.tensor("vmtrigsum", ("n",))
    f = sg.sum(sg.sin(x) * sg.cos(2.0 * x) + sg.sin(x) ** 2)
    rng = np.random.default_rng(12)
    xs = np.concatenate([rng.uniform(-10, 10, 500), 10.0 ** rng.uniform(5, 300, 500)])
    xs *= rng.choice([-1.0, 1.0], xs.size)
    want_v, want_g = sg.value_and_grad(f, x, backend="numpy")(vmtrigsum=xs)
    for vm in (True, False):
        v, g = sg.value_and_grad(f, x, vector_math=vm)(vmtrigsum=xs)
        assert v == pytest.approx(want_v, rel=1e-13)
        np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-13)


def test_the_two_over_pi_table_is_right():
    """The bits of 2/pi the wide reduction reads, against mpmath, and one row of the table."""
    import mpmath

    mpmath.mp.prec = 1300
    exact = int(mpmath.floor(2 / mpmath.pi * mpmath.mpf(2) ** vmath._TWO_OVER_PI_BITS))
    assert vmath._TWO_OVER_PI == exact
    s = 100  # row s - 1: 2/pi mod 2**(2 - s), times 2**s, in four 53-bit parts
    row = vmath._PIO2_TABLE[4 * (s - 1):4 * s]
    want = (2 / mpmath.pi * mpmath.mpf(2) ** s) % 4
    got = sum(mpmath.mpf(float(t)) for t in row)
    assert abs(got - want) < mpmath.mpf(2) ** -208


def test_float32_kernels_call_the_float32_versions():
    x = sg.tensor("vm32", ("n",), dtype="float32")
    fn = sg.compile(sg.gelu(x) + sg.elu(x) + sg.softplus(x) + sg.log(sg.abs(x) + 1))
    for name in ("exp_f32", "expm1_f32", "log1p_f32", "erf_f32", "log_f32"):
        assert f"vm.{name}(" in fn.source, name
    xs = np.linspace(-5, 5, 301, dtype=np.float32)
    got = fn(vm32=xs)
    assert got.dtype == np.float32
    want = sg.compile(sg.gelu(x) + sg.elu(x) + sg.softplus(x) + sg.log(sg.abs(x) + 1),
                      backend="numpy")(vm32=xs)
    np.testing.assert_allclose(got, want, rtol=4e-7, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_vector_math_on_and_off_agree_with_the_interpreter(dtype):
    """Every transcendental op, value and gradient, through both backends; vector math on
    and off differ by rounding only."""
    x = sg.tensor("vmall", ("n",), dtype=dtype)
    f = sg.sum(
        sg.exp(x * 0.5) + sg.log(x * x + 1) + sg.log1p(sg.abs(x)) + sg.tanh(x)
        + sg.sigmoid(x) + sg.softplus(x) + sg.gelu(x) + sg.gelu(x, approximate=True)
        + sg.silu(x) + sg.elu(x) + sg.sqrt(sg.abs(x)) + sg.sin(x) * sg.cos(3 * x)
    )
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.normal(scale=4, size=997), [0.0, -0.0, 1e-30, -40.0, 40.0]])
    xs = xs.astype(dtype)
    want_v, want_g = sg.value_and_grad(f, x, backend="numpy")(vmall=xs)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    for vm in (True, False):
        v, g = sg.value_and_grad(f, x, vector_math=vm)(vmall=xs)
        assert g.dtype == np.dtype(dtype)
        assert v == pytest.approx(want_v, rel=rtol)
        np.testing.assert_allclose(g, want_g, rtol=rtol, atol=rtol)  # sqrt'(0) = inf in all


def test_extreme_arguments_in_a_kernel_match_libm():
    x = sg.tensor("vmext", ("n",))
    f = sg.exp(x) + sg.tanh(x) + sg.elu(x)  # elu calls expm1
    xs = np.array([-1e4, -746.0, -745.0, -709.0, -1.0, -0.0, 0.0, 1e-310, 1.0, 709.0, 709.8,
                   710.0, 1e4, np.inf, -np.inf, np.nan])
    with np.errstate(all="ignore"):
        on = sg.compile(f)(vmext=xs)
        off = sg.compile(f, vector_math=False)(vmext=xs)
    np.testing.assert_array_equal(np.isnan(on), np.isnan(off))
    np.testing.assert_allclose(on, off, rtol=4e-16, atol=0)


def test_the_option_is_in_the_cache_key():
    x = sg.tensor("vmkey", ("n",))
    on = sg.compile(sg.exp(x))
    off = sg.compile(sg.exp(x), vector_math=False)
    key = lambda fn: re.search(r"Key: (\w+)", fn.source).group(1)  # noqa: E731
    assert key(on) != key(off)
    # a kernel without transcendental functions is the same kernel either way
    assert key(sg.compile(x * 2.0)) == key(sg.compile(x * 2.0, vector_math=False))


def test_numpy_backend_accepts_and_ignores_the_option():
    x = sg.tensor("vmnp", ())
    assert sg.compile(sg.exp(x), backend="numpy", vector_math=False)(vmnp=1.0) == math.e


# --- reductions run in blocks ------------------------------------------------------------


@pytest.mark.parametrize("shape, axis", [((1000,), None), ((3, 700), 1), ((700, 3), 0),
                                         ((5, 513), None)])
def test_blocked_sums_add_in_the_same_order_as_a_plain_loop(shape, axis):
    """The block loop computes the terms, a second loop adds them in index order: the sum
    is bit for bit the sequential one.  A sum along an outer axis (axis 0 of a matrix) is
    a plain loop, which vectorises without blocks."""
    x = sg.tensor("vmblk", tuple(f"d{i}" for i in range(len(shape))))
    fn = sg.compile(sg.sum(sg.exp(x) * 1.5 + x, axis=axis))
    blocked = re.search(r"\bblk\d+ = ", fn.source) is not None
    assert blocked == (axis != 0), fn.source
    xs = np.random.default_rng(5).normal(size=shape)
    terms = ulp.vector("exp", "float64")(xs.ravel()).reshape(shape) * 1.5 + xs
    got = fn(vmblk=xs)
    if axis is None:
        want = 0.0
        for t in terms.ravel():
            want += t
    else:
        moved = np.moveaxis(terms, axis, 0)
        want = np.zeros(moved.shape[1:])
        for row in moved:
            want = want + row
    np.testing.assert_array_equal(got, want)


def test_blocked_sum_with_parallel_is_close():
    x = sg.tensor("vmpar", ("n",))
    fn = sg.compile(sg.sum(sg.tanh(x) * x), parallel=True)
    assert "prange(" in fn.source
    xs = np.random.default_rng(6).normal(size=100_003)
    assert fn(vmpar=xs) == pytest.approx(np.sum(np.tanh(xs) * xs), rel=1e-12)


# --- the loop vectorises -----------------------------------------------------------------


def _host_has(feature: str) -> bool:
    from llvmlite import binding

    return f"+{feature}" in binding.get_host_cpu_features().flatten().split(",")


def _host_has_avx2() -> bool:
    return _host_has("avx2")


def test_loops_that_call_vmath_ask_for_wide_vectors():
    """Each loop body that calls vmath also calls vm.wide_vectors() (the attribute that
    lets LLVM use zmm on Intel's AVX-512 CPUs), once; libm kernels and loops without
    vmath calls do not."""
    x = sg.tensor("vmwide", ("n",))
    on = sg.value_and_grad(_chain(x), x, parallel=True).source
    assert on.count("vm.wide_vectors()") == 2  # the prange nest and its serial twin
    assert "vm.wide_vectors()" not in sg.value_and_grad(_chain(x), x, vector_math=False).source
    assert "vm.wide_vectors()" not in sg.compile(x * 2.0 + 1.0).source


@pytest.mark.skipif(not _host_has_avx2(), reason="the CPU has no AVX2: no ymm/zmm to look for")
def test_the_hot_loop_is_vectorised(tmp_path, monkeypatch):
    # a fresh cache folder: Numba can show the assembly only of code it compiled itself
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    x = sg.tensor("vmasm", ("n",))
    vg = sg.value_and_grad(_chain(x), x)
    kernel = vg.program.function
    asm = kernel.inspect_asm(kernel.signatures[0])
    packed = re.findall(r"\bv(?:mul|add|sub|div|fmadd\w*)pd\s+[^\n]*%[yz]mm", asm)
    assert len(packed) > 50, "no packed double arithmetic in the kernel"
    if _host_has("avx512f"):  # vm.wide_vectors(): 512-bit vectors, on Intel too
        assert len([p for p in packed if "zmm" in p]) > 50, "no zmm arithmetic"
    libm_call = r"\$(exp|tanh|log1p)\b"  # the address of a libm function, called indirectly
    assert not re.search(libm_call, asm)
    assert "vmath" not in " ".join(re.findall(r"call\w*\s+[^\n]*", asm)), "a vmath call left"
    # libm, by contrast: one scalar call per element and function
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path / "libm"))
    off = sg.value_and_grad(_chain(x), x, vector_math=False).program.function
    off_asm = off.inspect_asm(off.signatures[0])
    assert re.search(libm_call, off_asm)


@pytest.mark.parametrize("form", ["square", "relu"])
def test_a_cheap_sum_is_a_plain_loop_in_sequential_order(form):
    """No blocks where the terms (arithmetic, a select) cost less than the chain of
    additions they feed."""
    x = sg.tensor("vmsq", ("n",))
    term = x * x + 1.0 if form == "square" else sg.relu(x) * 3.0
    fn = sg.compile(sg.sum(term))
    assert not re.search(r"\bblk\d+ = ", fn.source)
    xs = np.random.default_rng(7).normal(size=777)
    want = 0.0
    for t in xs:
        want += t * t + 1.0 if form == "square" else 3.0 * (t if t > 0 else 0.0)
    assert fn(vmsq=xs) == want


@pytest.mark.skipif(not _host_has_avx2(), reason="the CPU has no AVX2: no ymm/zmm to look for")
def test_a_sum_along_an_outer_axis_vectorises_without_blocks(tmp_path, monkeypatch):
    # (a bias gradient: a column sum; each column's slot is its own, no chain to wait for)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    x = sg.tensor("vmcol", ("m", "n"))
    fn = sg.compile(sg.sum(sg.exp(x) * 1.5 + x, axis=0))
    assert not re.search(r"\bblk\d+ = ", fn.source) and "vm.exp(" in fn.source
    kernel = fn.program.function
    asm = kernel.inspect_asm(kernel.signatures[0])
    packed = re.findall(r"\bv(?:mul|add|sub|div|fmadd\w*)pd\s+[^\n]*%[yz]mm", asm)
    assert len(packed) > 20, "no packed double arithmetic in the kernel"
