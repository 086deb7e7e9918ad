"""Differential testing: random graphs, optimised and compiled, against the graph as written.

The graphs come from the generator of ``test_properties.py`` (every op of the IR: a test
below fails if an op of ``OPS`` is missing from what it builds, gradients included) with
its domain guards taken off: ``log``, ``sqrt``, division and powers get whatever value
their operand has.  Inputs are drawn to include 0, -0, negatives, +-inf, NaN, subnormals,
1e+-300 and float32 extremes, in float64 and float32.  The reference is
:func:`symgrad.backends.reference.run`: the graph as built, without any pass, node by node
and one SymPy function at a time in NumPy.  The optimised graph on both backends must
match it as docs/semantics.md says ("The contract"):

* if every intermediate value of the graph as written is finite: every output within the
  tolerance below (no NaN, no inf);
* otherwise, where the reference output is finite, the same value within the tolerance;
  where it is infinite, the same infinity; where it is NaN, NaN -- or a finite number,
  which the listed relaxations (``0 * x -> 0``, ``x - x -> 0``, pruned zero adjoints) may
  give when the operand they drop overflowed or was NaN.

The tolerance is ``RTOL`` relative to the value, plus ``n * eps`` times the largest finite
magnitude an addition, a sum or a product of matrices of the run met (a sum in another
order: cancellation).  The defects this tester is for (a NaN made a number, ``1e-200``
made 0, a wrong branch) are far outside it; ``test_the_comparison_rejects_the_known_defects``
shows that the check fails on each.

The forward test compiles the last node (and sometimes others) with ``sg.compile``; the
gradient test ``sg.value_and_grad`` of ``sum(node * c)`` for random cotangents ``c``, whose
reference is the derived graph of ``sg.grad`` as written.

Budget: the profiles of ``test_properties.py`` (``ci``: 30 examples per random-graph test,
about 1 in 7 also compiled with Numba; ``long``: 600, as many with Numba, and the grid
of function pairs on Numba too; with the other two files of the README's long command it
took 28 minutes on 2 cores shared with other test runs)::

    SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_differential.py \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from test_properties import COMPARISONS, PROFILE, SHAPES, STEPS, Builder, resolve

import symgrad as sg
from symgrad.backends.inputs import Signature
from symgrad.backends.reference import run
from symgrad.ir import toposort
from symgrad.ir.op import OPS

LONG = PROFILE.max_examples > 100
EXAMPLES = 600 if LONG else PROFILE.max_examples  # per test; each compiles twice or more
NUMBA_PERCENT = 14  # of the examples of each random-graph test compile with Numba too
RTOL = {"float64": 1e-9, "float32": 1e-4}
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}

F32 = np.finfo(np.float32)
SPECIAL = [
    0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-8, 20.0, -30.0,
    1e-300, -1e-300, 1e300, -1e300, 5e-324, -2.5e-310,  # float64 tiny, huge, subnormal
    float(F32.max), -float(F32.max), float(F32.tiny), 1e-45, 88.0, -104.0,  # float32 edges
    709.0, -745.0, np.inf, -np.inf, np.nan,
]  # fmt: skip
FINITE = [v for v in SPECIAL if np.isfinite(v)]
CONSTANTS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, 1e-200, 1e200, 1e-30, 2, 3, -1, 0]
CONSTANT_OPS = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "greater",
                "less_equal", "equal"]
EDGE_STEPS = [*STEPS, "bind", "const", "const"]


# --- the generator -----------------------------------------------------------------------


class EdgeBuilder(Builder):
    """``test_properties.Builder`` without domain guards, with float32 inputs too, and two
    more steps: a Python constant (0, -0, 1e+-200, ...) on either side of an arithmetic op
    (``const``) and a named dim bound by broadcasting against a fixed size (``bind``)."""

    def __init__(self, draw, dims, stop_gradient=False, steps=None):
        super().__init__(draw, dims, stop_gradient, steps or EDGE_STEPS)

    def op_const(self):
        # a number on either side of an arithmetic op or a comparison: a Python number is
        # weak and folds into the formula (in the node's dtype, by NumPy); a NumPy scalar is
        # strong (NEP 50): np.float64 makes float32 arithmetic, and comparisons, float64
        x = self.operand()
        c, f, left = self.choose(CONSTANTS), self.choose(CONSTANT_OPS), self.draw(st.booleans())
        with np.errstate(over="ignore"):  # 1e200 as float32 is inf
            c = self.choose([type(c), type(c), np.float64, np.float32])(c)
        args = (c, x) if left else (x, c)
        text = ", ".join(self.ref(a) for a in args)
        if f in COMPARISONS:
            node = sg.where(getattr(sg, f)(*args), x, c)
            return node, f"sg.where(sg.{f}({text}), {self.ref(x)}, {self.ref(c)})"
        return getattr(sg, f)(*args), f"sg.{f}({text})"

    def op_bind(self):
        # x (.., k) * t (K,): K is bound to k at call time; the adjoint of t is a sum
        # relabelled from k to K
        x = self.operand(want_ndim=(1, 2))
        k = x.shape[-1]
        if not isinstance(k, int) or k == 1:
            return self.op_unary()
        name = self.fresh("K")  # a dim of its own: another bind may bind another size
        self.dims[name] = k
        t = self.float_input((name,), "t")
        return x * t, f"{self.ref(x)} * {self.ref(t)}"

    def positive(self, x):
        return x  # log(-1), sqrt(-0.0), 1 / 0 are what this test is about

    def float_input(self, shape, prefix="a"):
        dtype = self.choose(["float64", "float64", "float32"])
        name = self.fresh(prefix)
        node = sg.tensor(name, shape, dtype)
        self.floats[name] = node
        self.names[node] = name
        self.code.append(f"{name} = sg.tensor({name!r}, {shape!r}, {dtype!r})")
        return node


def values(draw, shape, dtype, kind):
    """An array whose elements are edge values (``kind`` "edge"), finite edge values
    ("finite": 1e300, subnormals, float32 extremes) or moderate numbers ("moderate")."""
    moderate = st.floats(-50, 50, allow_nan=False, width=32)
    pool = {
        "edge": st.one_of(st.sampled_from(SPECIAL), moderate),
        "finite": st.one_of(st.sampled_from(FINITE), moderate),
        "moderate": moderate,
    }[kind]
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf
        return np.array(draw(st.lists(pool, min_size=n, max_size=n)), dtype=dtype).reshape(shape)


def make_graph(draw, steps=None):
    """A random graph: ``(builder, outputs, cotangent-free loss terms, inputs)``."""
    dims = {"N": draw(st.integers(1, 3))}
    b = EdgeBuilder(draw, dims, stop_gradient=True, steps=steps)
    for _ in range(draw(st.integers(1, 3))):
        b.pool.append(b.float_input(b.choose(SHAPES)))
    for _ in range(draw(st.integers(1, 5))):
        b.step()
    return b


def draw_inputs(draw, b, declared):
    kind = draw(st.sampled_from(["edge", "edge", "finite", "moderate"]))
    inputs = {}
    for node in declared:
        shape = resolve(node.shape, b.dims)
        if node.name in b.labels:
            classes = b.labels[node.name][1]
            classes = resolve((classes,), b.dims)[0]
            n = int(np.prod(shape))
            labels = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
            inputs[node.name] = np.array(labels, dtype=np.int64).reshape(shape)
        else:
            inputs[node.name] = values(draw, shape, node.dtype, kind)
    return inputs


def script(b, inputs) -> str:
    with np.printoptions(precision=17, threshold=10**6):
        given = ", ".join(
            f"{k}=np.array({np.asarray(v).tolist()!r}, {str(np.asarray(v).dtype)!r})"
            for k, v in inputs.items()
        )
    return "\n".join(
        ["import numpy as np, symgrad as sg", *b.code, f"inputs = dict({given})  # {b.dims}"]
    )


def declared_inputs(b):
    return [node for node in b.floats.values()] + [node for node, _ in b.labels.values()]


# --- the comparison ----------------------------------------------------------------------


def assert_contract(got, want, finite, scale, what, relaxed=True, narrowest=None):
    """``got`` (the optimised graph's value) is ``want`` (the reference's) as
    docs/semantics.md says; ``finite``: every intermediate value of the reference run was
    finite.  ``relaxed=False``: no relaxation can apply, so NaN for NaN whatever the
    intermediates were."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    if want.dtype.kind != "f":
        assert np.array_equal(got, want), f"{what}: reference {want}, got {got}"
        return
    nan, inf = np.isnan(want), np.isinf(want)
    msg = f"{what}: reference {want}, got {got}"
    if finite:
        assert not (nan | inf).any(), f"{what}: all intermediates finite, output {want}"
    elif relaxed:
        # a relaxation may turn the reference's NaN into the number the mathematics gives
        assert not np.isinf(got[nan]).any(), msg
    else:
        assert np.isnan(got[nan]).all(), msg
    assert (got[inf] == want[inf]).all(), msg
    ok = ~(nan | inf)
    g, w = got[ok].astype(np.float64), want[ok].astype(np.float64)
    dtype = narrowest or want.dtype.name  # float32 values inside a float64 result round too
    tol = RTOL[dtype] * np.abs(w) + 64 * EPS[dtype] * scale + 1e-300
    assert (np.isfinite(g) & (np.abs(g - w) <= tol)).all(), msg


def backends(draw):
    """numpy always; numba for about one example in 7 (a compile each), drawn so that a
    replayed example runs the same backends."""
    return ["numpy", "numba"] if draw(st.integers(0, 99)) < NUMBA_PERCENT else ["numpy"]


def narrowest(outputs) -> str:
    """float32 if a float32 value is computed anywhere in the graph, else float64."""
    return "float32" if any(n.dtype == "float32" for n in toposort(outputs)) else "float64"


def reference(outputs, declared, inputs):
    signature = Signature(outputs, declared)
    values, dims = signature.bind(inputs)
    result = run(outputs, signature.names, values, dims)
    if currently_in_test_context():
        note(f"reference: every intermediate finite: {result.finite} (first not: {result.first})")
    return result


# --- the tests ---------------------------------------------------------------------------


@settings(PROFILE, max_examples=EXAMPLES)
@given(data=st.data())
def test_optimised_graph_matches_the_graph_as_written(data):
    b = make_graph(data.draw)
    chosen = [b.pool[-1]] + [n for n in b.pool[:-1] if data.draw(st.integers(0, 3)) == 0]
    declared = declared_inputs(b)
    inputs = draw_inputs(data.draw, b, declared)
    note(script(b, inputs) + f"\noutputs = [{', '.join(b.ref(n) for n in chosen)}]")
    want = reference(chosen, declared, inputs)
    for backend in backends(data.draw):
        f = sg.compile(chosen, backend=backend, inputs=declared)
        for k, (got, w) in enumerate(zip(f(**inputs), want.values)):
            if w.ndim:  # (a scalar comes back as a Python number)
                assert got.dtype == w.dtype, f"{backend} output {k}: dtype {got.dtype}"
            assert_contract(got, w, want.finite, want.scale, f"{backend} output {k}",
                            narrowest=narrowest(chosen))


@settings(PROFILE, max_examples=EXAMPLES)
@given(data=st.data())
def test_optimised_gradient_matches_the_derived_graph_as_written(data):
    b = make_graph(data.draw)
    chosen = [b.pool[-1]] + [n for n in b.pool[:-1] if data.draw(st.integers(0, 3)) == 0]
    cotangents = [b.float_input(n.shape, prefix="c") for n in chosen]
    loss = sum(sg.sum(n * c) for n, c in zip(chosen, cotangents))
    terms = [f"sg.sum({b.ref(n)} * {b.ref(c)})" for n, c in zip(chosen, cotangents)]
    b.code.append(f"loss = {' + '.join(terms)}")
    declared = declared_inputs(b)
    wrt = list(b.floats.values())
    inputs = draw_inputs(data.draw, b, declared)
    note(script(b, inputs))
    want = reference([loss, *sg.grad(loss, wrt)], declared, inputs)
    for backend in backends(data.draw):
        vg = sg.value_and_grad(loss, wrt, backend=backend, inputs=declared)
        value, grads = vg(**inputs)
        for k, (got, w) in enumerate(zip([value, *grads], want.values)):
            assert_contract(got, w, want.finite, want.scale, f"{backend} output {k}",
                            narrowest=narrowest([loss]))


def test_the_generator_builds_every_op():
    """Every op of the registry appears in the graphs (or their gradients) the generator
    builds, so the reference evaluates, and the tester checks, each of them."""
    seen = set()

    @settings(max_examples=10, derandomize=True, database=None, deadline=None)
    @given(data=st.data())
    def collect(kind, data):
        b = make_graph(data.draw, steps=[kind])
        loss = sum(sg.sum(n) for n in b.pool if n.dtype != "bool")
        wrt = list(b.floats.values())
        seen.update(str(n.op) for n in toposort([loss, *sg.grad(loss, wrt)]))

    for kind in sorted(set(EDGE_STEPS)):  # each kind of step alone, so none is crowded out
        collect(kind)
    missing = sorted(set(OPS) - seen)
    assert not missing, f"ops the differential generator never builds: {missing}"


def test_a_pruned_zero_adjoint_may_turn_the_nan_of_an_overflow_into_0(backend):
    """The long property profile's example: softmax over an axis of size 1 has a zero
    derivative; the adjoint above it overflows to inf, so the graph as written gives
    0 * inf = NaN in d/da1, and an optimised graph that prunes the zero adjoint gives 0
    (main did before issue 7's port; now both are NaN).  Either is the contract."""
    a1, c8 = sg.tensor("a1", (2, 1)), sg.tensor("c8", (2, 1))
    loss = sg.sum(sg.exp(sg.exp(sg.exp(sg.exp(sg.softmax(sg.exp(a1), axis=-1))))) * c8)
    inputs = {"a1": np.array([[0.3], [-1.0]]), "c8": np.array([[1.0], [2.0]])}
    want = reference([loss, *sg.grad(loss, [a1, c8])], [a1, c8], inputs)
    assert not want.finite and np.isnan(want.values[1]).all()  # e**e**e**e = inf
    value, (g1, g8) = sg.value_and_grad(loss, [a1, c8], backend=backend)(**inputs)
    assert value == np.inf and ((g1 == 0) | np.isnan(g1)).all() and (g8 == np.inf).all()
    for got, w in zip([value, g1, g8], want.values):
        assert_contract(got, w, want.finite, want.scale, backend)
    assert_contract(np.zeros((2, 1)), want.values[1], want.finite, want.scale, "pruned")
    with pytest.raises(AssertionError):  # a relaxation, allowed only after an overflow
        assert_contract(np.zeros((2, 1)), want.values[1], False, 1.0, "strict", relaxed=False)


@pytest.mark.parametrize("finite", [True, False])
def test_the_comparison_rejects_the_known_defects(finite):
    """The check fails on each kind of wrong result the tester is for."""
    with pytest.raises(AssertionError):  # a NaN made a number where nothing overflowed
        assert_contract(np.array([1.0, 0.0]), np.array([1.0, np.nan]), True, 1.0, "nan")
    with pytest.raises(AssertionError):  # a number made NaN
        assert_contract(np.array([np.nan]), np.array([1.0]), finite, 1.0, "made nan")
    with pytest.raises(AssertionError):  # an infinity lost
        assert_contract(np.array([1e308]), np.array([np.inf]), finite, 1.0, "inf")
    with pytest.raises(AssertionError):  # folded in exact arithmetic
        assert_contract(np.array([0.0]), np.array([1e-200]), finite, 0.0, "1e-200")
    with pytest.raises(AssertionError):  # a float32 sum in float32
        assert_contract(np.float32(16777216), np.float32(2e7), finite, 1.0, "f32 sum")
    with pytest.raises(AssertionError):  # the wrong branch
        assert_contract(np.array([0.5]), np.array([2.0]), finite, 2.0, "branch")
    assert_contract(np.array([1.0, 2.0 + 4e-16]), np.array([1.0, 2.0]), finite, 2.0, "ok")


def test_a_relaxation_may_give_a_number_only_where_an_intermediate_was_not_finite():
    """0 * inf: the reference's NaN may become the 0 of a pruned adjoint only then."""
    assert_contract(np.array([0.0, 1.0]), np.array([np.nan, 1.0]), False, 1.0, "relaxed")
    with pytest.raises(AssertionError):
        assert_contract(np.array([0.0, 1.0]), np.array([np.nan, 1.0]), True, 1.0, "strict")


# --- each elementwise function, alone and in pairs, on a grid of edge values ---------------
#
# The random graphs above are checked against the graph as *built*; these check what the
# constructors build (the formula of each function, and what SymPy does when formulas meet)
# against what the function means in NumPy.  A function of ``FUNCTIONS`` without a row here
# fails ``test_every_function_has_a_numpy_meaning``.


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


MEANING = {  # row of symgrad.ops.elementwise.FUNCTIONS -> (how sg calls it, NumPy meaning)
    "exp": (sg.exp, np.exp),
    "log": (sg.log, np.log),
    "log1p": (sg.log1p, np.log1p),
    "sqrt": (sg.sqrt, np.sqrt),
    "abs": (sg.abs, np.abs),
    "tanh": (sg.tanh, np.tanh),
    "sin": (sg.sin, np.sin),
    "cos": (sg.cos, np.cos),
    "square": (sg.square, np.square),
    "sigmoid": (sg.sigmoid, _sigmoid),
    "relu": (sg.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (sg.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "elu": (sg.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "softplus": (sg.softplus, lambda x: np.logaddexp(x, 0)),
    "log_sigmoid": (sg.log_sigmoid, lambda x: -np.logaddexp(0, -x)),
    # Python floats (weak) for the constants: np.sqrt(2) is a float64 scalar, which would
    # compute a float32 gelu in float64 (NEP 50)
    "gelu": (sg.gelu, lambda x: x / 2 * (1 + _erf(x / math.sqrt(2)))),
    "gelu_tanh": (
        lambda x: sg.gelu(x, approximate=True),
        lambda x: x / 2 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    ),
    "clip": (lambda x: sg.clip(x, -1.0, 2.0), lambda x: np.clip(x, -1.0, 2.0)),
}
BINARY_MEANING = {
    "maximum": (sg.maximum, np.maximum),
    "minimum": (sg.minimum, np.minimum),
    "add": (sg.add, np.add),
    "subtract": (sg.subtract, np.subtract),
    "multiply": (sg.multiply, np.multiply),
    "divide": (sg.divide, np.divide),
    "power": (sg.power, np.power),
}


def _erf(x):
    from scipy.special import erf

    return erf(x).astype(x.dtype)


GRID = np.array([0.0, -0.0, 1e-310, -3e-300, 1e-8, 0.3, -0.7, 1.0, -1.0, 2.5, -13.0, 40.0,
                 -90.0, 300.0, 700.0, -740.0, 1e300, -1e300, np.inf, -np.inf, np.nan])  # fmt: skip


def ulp_distance(got, want):
    """How many representable values lie between ``got`` and ``want`` (0 where both are
    the same NaN or infinity, or zeros of either sign)."""
    got, want = np.asarray(got), np.asarray(want)
    kind = np.int64 if want.dtype == np.float64 else np.int32
    a, b = got.astype(want.dtype).view(kind), want.view(kind)
    # the sign-magnitude bit patterns mapped to a monotone integer line
    a = np.where(a < 0, np.iinfo(kind).min - a, a).astype(np.int64)
    b = np.where(b < 0, np.iinfo(kind).min - b, b).astype(np.int64)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0, np.abs(a - b))


def test_every_function_has_a_numpy_meaning():
    from symgrad.ops.elementwise import FUNCTIONS

    missing = sorted(set(FUNCTIONS) - set(MEANING) - set(BINARY_MEANING))
    assert not missing, f"elementwise functions without a NumPy meaning here: {missing}"


def test_ulp_distance_counts_representable_values():
    one = np.array([1.0])
    assert ulp_distance(np.nextafter(one, 2), one)[0] == 1
    assert ulp_distance(np.array([-0.0]), np.array([0.0]))[0] == 0
    assert ulp_distance(np.array([5e-324]), np.array([-5e-324]))[0] == 2
    assert ulp_distance(np.array([np.nan]), one)[0] > 4
    f32 = np.array([1.0], np.float32)
    assert ulp_distance(np.nextafter(f32, np.float32(0)), f32)[0] == 1


def _grid(dtype):
    with np.errstate(over="ignore"):
        return GRID.astype(dtype), np.roll(GRID, 5).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_each_function_is_within_4_ulp_of_its_numpy_meaning(backend, dtype):
    """One compiled function of all of them per backend and dtype (one Numba compile)."""
    x, y = _grid(dtype)
    a, b = sg.tensor("a", (x.size,), dtype), sg.tensor("b", (x.size,), dtype)
    names = [*MEANING, *BINARY_MEANING]
    outputs = [f(a) for f, _ in MEANING.values()] + [f(a, b) for f, _ in BINARY_MEANING.values()]
    with np.errstate(all="ignore"):
        want = [m(x) for _, m in MEANING.values()] + [m(x, y) for _, m in BINARY_MEANING.values()]
        got = sg.compile(outputs, backend=backend)(a=x, b=y)
        worst = {n: int(ulp_distance(g, w.astype(dtype)).max()) for n, g, w in zip(names, got, want)}
    bad = {k: v for k, v in worst.items() if v > 4}
    assert not bad, f"ulp distance from NumPy above 4: {bad}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("outer", list(MEANING))
def test_each_pair_of_functions_means_what_numpy_means(outer, dtype):
    """``g(f(x))`` for every function ``f`` and the given ``g``, fused into one formula
    each (``f(x)`` has one user), on the numpy backend; no relaxation applies to a chain of
    one operand, so NaN for NaN and the same infinities.  Elsewhere within the tolerance of
    ``assert_contract`` plus what ``g`` makes of a 4-ulp error in ``f(x)`` (``sin`` of
    ``exp(40)`` in float32 is any number in [-1, 1]: an ulp of 2.4e17 is 1.6e10).
    (Numba runs them in the long profile: a compile per case.)"""
    x, _ = _grid(dtype)
    a = sg.tensor("a", (x.size,), dtype)
    g, mg = MEANING[outer]
    backends_ = ["numpy", "numba"] if LONG else ["numpy"]
    with np.errstate(all="ignore"):
        want, slack = {}, {}
        for name, (_, mf) in MEANING.items():
            y = mf(x).astype(dtype)
            want[name] = mg(y).astype(dtype)
            near = [mg(_ulps_away(y, k)).astype(np.float64) for k in range(-4, 5)]
            slack[name] = np.nan_to_num(np.max(np.abs(np.subtract(near, want[name])), axis=0))
        for backend in backends_:
            got = sg.compile([g(f(a)) for f, _ in MEANING.values()], backend=backend)(a=x)
            for name, out in zip(MEANING, got):
                what = f"{backend}: {outer}({name}(x)) at x = {x}"
                out = np.broadcast_to(out, x.shape).astype(np.float64)
                # the slack moves got towards the reference by what g's conditioning allows
                close = np.clip(want[name], out - slack[name], out + slack[name])
                moved = np.where(np.isfinite(out) & np.isfinite(want[name]), close, out)
                assert_contract(moved.astype(dtype), want[name], False, 0.0, what, relaxed=False)


def _ulps_away(y, k):
    """``y`` moved ``k`` representable values (towards +inf for k > 0)."""
    for _ in range(abs(k)):
        y = np.nextafter(y, np.array(np.inf if k > 0 else -np.inf, y.dtype))
    return y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_each_binary_function_of_one_operand_twice(backend, dtype):
    """``f(x, x)`` as NumPy's ``f(x, x)``: ``x - x`` may be 0 where x is not finite (the
    listed relaxation 1), nothing else may change (``x / x`` at 0 is NaN, not 1)."""
    x, _ = _grid(dtype)
    a = sg.tensor("a", (x.size,), dtype)
    names = list(BINARY_MEANING)
    outputs = [BINARY_MEANING[n][0](a, a) for n in names]
    with np.errstate(all="ignore"):
        got = sg.compile(outputs, backend=backend)(a=x)
        for name, out in zip(names, got):
            want = BINARY_MEANING[name][1](x, x).astype(dtype)
            relaxed = name == "subtract"
            what = f"{backend}: {name}(x, x) at x = {x}"
            assert_contract(np.broadcast_to(out, x.shape), want, False, 0.0, what, relaxed)


# --- defects the tester found (each one regression test, both backends) -------------------


def test_two_dims_bound_to_one_size_stay_apart_when_broadcasts_are_simplified(backend):
    """simplify read ``y`` for an input ``broadcast_to(y, (3,))`` even where that broadcast
    bound y's dim K to 3; two such inputs, (K,) and (M,), then met by name and the pass
    raised a ShapeError on a valid graph."""
    a = sg.tensor("a", (3,))
    t, u = sg.tensor("t", ("K",)), sg.tensor("u", ("M",))
    f = sg.compile(sg.exp(sg.exp(a - a)) * t * u, backend=backend, inputs=[a])
    got = f(a=np.zeros(3), t=np.array([1.0, 2.0, 3.0]), u=np.array([1.0, 1.0, 2.0]))
    np.testing.assert_allclose(got, np.e * np.array([1.0, 2.0, 6.0]), rtol=1e-15)


def test_the_gradient_of_a_power_of_zero_compiles(backend):
    """d/da 0 ** a is 0 ** a * log(0): SymPy folded it to nan and the elementwise
    constructor refused the formula as undefined (an ArgumentError on a valid graph, before
    powers became opaque functions).  As written: 1 * -inf * c."""
    a, c = sg.tensor("a", ()), sg.tensor("c", ())
    loss = sg.sum(sg.power(0.0, a) * c)
    inputs = {"a": 0.0, "c": 1.0}
    want = reference([loss, *sg.grad(loss, [a, c])], [a, c], inputs)
    value, grads = sg.value_and_grad(loss, [a, c], backend=backend)(**inputs)
    assert want.values[1] == -np.inf
    for got, w in zip([value, *grads], want.values):
        assert_contract(got, w, want.finite, want.scale, backend)
