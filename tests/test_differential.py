"""Differential testing: random graphs against a NumPy reference that runs them as written.

A program is a list of steps over a pool of values (two input tensors to start with); each
step applies one op of ``symgrad.ops.reference`` (the op tables are imported, so an op with
a row there joins the tester) to values of the pool or to a Python number.  The reference
runs the program op by op with those NumPy functions, no rewriting; symgrad builds the
graph, optimises and compiles it on both backends.  The two must agree as
docs/semantics.md says:

* the result dtype is NumPy's (NEP 50 promotion);
* NaN exactly where the reference has NaN, the same infinities;
* elsewhere within a tolerance of ``RTOL`` relative to the value, or to the largest finite
  magnitude the program went through (cancellation of values that the C library and NumPy
  round differently by an ulp).  The wrong results this tester exists for (a NaN turned
  into a number, ``1e-200`` into 0, ``2e7`` into ``16777216``) are far outside it.

Inputs are drawn to include 0, -0, negatives, +-inf, NaN, subnormals, 1e+-300 and float32
extremes.  A second test checks derived gradients: the raw ``sg.grad`` graph run node by
node by the NumPy interpreter (no optimisation) against the optimised, compiled gradient.

Budget: ``SYMGRAD_HYPOTHESIS_PROFILE`` as in test_properties.py (``ci``: 40 examples, of which
12 compile with Numba; ``long``: 2000, of which 250)::

    SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_differential.py
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.backends.inputs import Signature
from symgrad.backends.numpy_backend import NumpyProgram
from symgrad.ops import reference as ref
from symgrad.ops.elementwise import FUNCTIONS, is_constant

LONG = os.environ.get("SYMGRAD_HYPOTHESIS_PROFILE", "ci") == "long"
EXAMPLES = 2000 if LONG else 40
NUMBA_EXAMPLES = 250 if LONG else 12
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    report_multiple_bugs=LONG,
)
RTOL = {"float64": 1e-9, "float32": 1e-4}
SIZE = 5

F32 = np.finfo(np.float32)
SPECIAL = [
    0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-8, 20.0, -30.0,
    1e-300, -1e-300, 1e300, -1e300, 5e-324, -2.5e-310,  # float64 tiny, huge, subnormal
    float(F32.max), -float(F32.max), float(F32.tiny), 1e-45, 88.0, -104.0,  # float32 edges
    709.0, -745.0, np.inf, -np.inf, np.nan,
]
CONSTANTS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, 1e-200, 1e200, 1e-30, 2, 3, -1, 0]

# --- the op set, from the code ---------------------------------------------------------


def test_every_formula_has_a_reference():
    """A new elementwise op must say what it means (a row of symgrad/ops/reference.py)."""
    named = set(ref.UNARY) | set(ref.BINARY) | set(ref.OTHER) | set(ref.FORMULA_ROWS)
    missing = sorted(set(FUNCTIONS) - named)
    assert not missing, f"ops without a NumPy reference: {missing}"
    for table in (ref.UNARY, ref.BINARY, ref.COMPARE, ref.REDUCE):
        for name in table:
            assert callable(getattr(sg, name)), name


UNARY = sorted(ref.UNARY)
BINARY = sorted(ref.BINARY)
COMPARE = sorted(ref.COMPARE)
REDUCE = sorted(ref.REDUCE)


# --- programs --------------------------------------------------------------------------


def values(dtype):
    pool = st.one_of(
        st.sampled_from(SPECIAL), st.floats(-50, 50, allow_nan=False, width=32)
    )
    return st.lists(pool, min_size=SIZE, max_size=SIZE).map(lambda v: np.array(v, dtype=dtype))


@st.composite
def programs(draw):
    dtypes = draw(st.sampled_from([("float64",) * 2, ("float32",) * 2, ("float32", "float64")]))
    inputs = {f"a{k}": draw(values(d)) for k, d in enumerate(dtypes)}
    steps = []
    n_values = len(inputs)
    for _ in range(draw(st.integers(1, 6))):
        operand = st.integers(0, n_values - 1)
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "const", "where",
                                     "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(UNARY)), draw(operand)))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(BINARY)), draw(operand), draw(operand)))
        elif kind == "const":
            c = draw(st.sampled_from(CONSTANTS))
            steps.append(("const", draw(st.sampled_from(BINARY)), draw(operand), c,
                          draw(st.booleans())))
        elif kind == "where":
            steps.append(("where", draw(st.sampled_from(COMPARE)),
                          *(draw(operand) for _ in range(4))))
        else:
            steps.append(("reduce", draw(st.sampled_from(REDUCE)), draw(operand)))
        n_values += 1
    return inputs, steps


def run(steps, start, unary, binary, compare, where, reduce):
    pool = list(start)
    for step in steps:
        kind, name, *args = step
        if kind == "unary":
            pool.append(unary(name, pool[args[0]]))
        elif kind == "binary":
            pool.append(binary(name, pool[args[0]], pool[args[1]]))
        elif kind == "const":
            i, c, left = args
            pool.append(binary(name, c, pool[i]) if left else binary(name, pool[i], c))
        elif kind == "where":
            p, q, r, s = (pool[i] for i in args)
            pool.append(where(compare(name, p, q), r, s))
        else:
            pool.append(reduce(name, pool[args[0]]))
    return pool


ADDITIVE = {"add", "subtract", "sum", "mean", "logsumexp"}


def reference(inputs, steps, nodes):
    """The program as written, op by op in NumPy: ``(result, scale)``, where ``scale`` is
    the largest finite magnitude an addition or a sum of the program met (the size of a
    rounding difference that cancellation can leave).

    The listed relaxations of docs/semantics.md are applied where they apply: ``p - p`` is
    0 and ``0 * p`` is 0 (``nodes``, symgrad's graph of the same program, says which
    operands are the same value or the constant 0: it is hash-consed).
    """
    met = []
    position = iter(range(len(inputs), len(inputs) + len(steps)))
    zero = {i for i, n in enumerate(nodes) if is_constant(n, 0)}

    def seen(name, *operands):
        if name in ADDITIVE:
            met.extend(np.asarray(o, dtype=np.float64).reshape(-1) for o in operands)

    def step_operands():
        k = next(position)
        kind, name, *args = steps[k - len(inputs)]
        return kind, name, args

    def binary(n, a, b):
        kind, name, args = step_operands()
        out = ref.BINARY[n](a, b)
        pair = [args[0], args[1]] if kind == "binary" else [args[0]]
        same = kind == "binary" and nodes[args[0]] is nodes[args[1]]
        if (n == "subtract" and same) or (n == "multiply" and zero & set(pair)):
            return np.zeros_like(out)  # relaxations 1 and 2
        seen(n, a, b)
        return out

    def reduce(n, x):
        step_operands()
        seen(n, x)
        return ref.REDUCE[n](x, axis=0, keepdims=True)

    def other(f):
        def g(*a):
            step_operands()
            return f(*a)
        return g

    with np.errstate(all="ignore"):
        pool = run(
            steps,
            list(inputs.values()),
            unary=other(lambda n, x: ref.UNARY[n](x)),
            binary=binary,
            compare=lambda n, a, b: ref.COMPARE[n](a, b),
            where=other(ref.OTHER["where"]),
            reduce=reduce,
        )
    return pool[-1], scale_of(met)


def graph(inputs, steps):
    tensors = [sg.tensor(k, (SIZE,), str(v.dtype)) for k, v in inputs.items()]
    return run(
        steps,
        tensors,
        unary=lambda n, x: getattr(sg, n)(x),
        binary=lambda n, a, b: getattr(sg, n)(a, b),
        compare=lambda n, a, b: getattr(sg, n)(a, b),
        where=sg.where,
        reduce=lambda n, x: getattr(sg, n)(x, axis=0, keepdims=True),
    )


def script(inputs, steps) -> str:
    lines = [f"{k} = np.array({v.tolist()!r}, dtype={str(v.dtype)!r})" for k, v in inputs.items()]
    return "\n".join(lines + [f"steps = {steps!r}"])


# --- comparison ------------------------------------------------------------------------


def scale_of(pool) -> float:
    finite = [np.abs(v[np.isfinite(v)]).max() for v in pool if np.isfinite(v).any()]
    return float(min(max(finite, default=0.0), 1e300))


def assert_matches(got, want, scale, what, pruned=False):
    """``got`` is ``want`` as docs/semantics.md says.  With ``pruned`` (a derived gradient,
    whose zero adjoints the optimiser prunes: relaxation 2, so ``inf * 0`` may have become
    0), a non-finite reference value may be anything but a number may not change, and a
    NaN must be a NaN of the reference."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    nan, inf = np.isnan(want), np.isinf(want)
    if pruned:
        assert not (np.isnan(got) & ~nan).any(), f"{what}: reference {want}, got {got}"
        keep = ~(nan | inf)
        got, want = got[keep], want[keep]
        nan, inf = np.isnan(want), np.isinf(want)
    msg = f"{what}: reference {want}, got {got}"
    assert (np.isnan(got) == nan).all(), msg
    assert (got[inf] == want[inf]).all(), msg
    rtol = RTOL[want.dtype.name if want.dtype.name in RTOL else "float64"]
    ok = ~(nan | inf)
    err = np.abs(got[ok].astype(np.float64) - want[ok].astype(np.float64))
    tol = rtol * np.maximum(np.abs(want[ok].astype(np.float64)), rtol * scale) + 1e-300
    assert (np.isfinite(got[ok]) & (err <= tol)).all(), f"{what}: reference {want}, got {got}"


_compiled = {"numba": 0}


def backends():
    if _compiled["numba"] < NUMBA_EXAMPLES:
        _compiled["numba"] += 1
        return ["numpy", "numba"]
    return ["numpy"]


@SETTINGS
@given(programs())
def test_optimised_graph_matches_numpy_as_written(program):
    inputs, steps = program
    note(script(inputs, steps))
    nodes = graph(inputs, steps)
    want, scale = reference(inputs, steps, nodes)
    out = nodes[-1]
    assert out.dtype == want.dtype.name, f"dtype {out.dtype}, NumPy {want.dtype}"
    for backend in backends():
        f = sg.compile(out, backend=backend, inputs=[sg.tensor(k, (SIZE,), str(v.dtype))
                                                   for k, v in inputs.items()])
        got = f(**inputs)
        assert_matches(got, want, scale, f"{backend} value")


@SETTINGS
@given(programs())
def test_optimised_gradient_matches_the_derived_graph_as_written(program):
    inputs, steps = program
    note(script(inputs, steps))
    pool = graph(inputs, steps)
    tensors = pool[: len(inputs)]
    loss = sg.sum(pool[-1])
    grads = sg.grad(loss, tensors)
    outputs = [loss, *grads]
    signature = Signature(outputs, tensors)
    with np.errstate(all="ignore"):
        values = signature.bind(inputs)
    want = NumpyProgram(outputs, signature.names)(*values)  # raw graph, node by node
    scale = scale_of([np.asarray(w, dtype=np.float64).reshape(-1) for w in want])
    for backend in backends():
        f = sg.compile(outputs, backend=backend, inputs=tensors)
        got = f(**inputs)
        for k, (g, w) in enumerate(zip(got, want)):
            assert_matches(np.asarray(g), np.asarray(w), scale, f"{backend} output {k}", True)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_comparison_rejects_the_known_defects(backend):
    """The checker fails on each kind of wrong result the tester is for."""
    x = np.array([1.0, np.nan, 2.0])
    with pytest.raises(AssertionError):
        assert_matches(np.array([1.0, 0.0, 2.0]), x, 1.0, backend)  # a NaN made a number
    with pytest.raises(AssertionError):
        assert_matches(np.array([0.0]), np.array([1e-200]), 0.0, backend)
    with pytest.raises(AssertionError):
        assert_matches(np.float32(16777216), np.float32(2e7), 2e7, backend)
    assert_matches(np.array([1.0, np.nan, 2.0 + 4e-16]), x, 2.0, backend)


# --- one op at a time: the ulp bound of docs/semantics.md ------------------------------

GRID = np.array([0.0, -0.0, 1e-310, -3e-300, 1e-8, 0.3, -0.7, 1.0, -1.0, 2.5, -13.0, 40.0,
                 -90.0, 300.0, 700.0, -740.0, 1e300, -1e300, np.inf, -np.inf, np.nan])


def ulp_distance(got, want):
    """How many representable values lie between ``got`` and ``want`` (0 where both are
    the same NaN or infinity)."""
    got, want = np.asarray(got), np.asarray(want)
    kind = np.int64 if want.dtype == np.float64 else np.int32
    a, b = got.astype(want.dtype).view(kind), want.view(kind)
    # map the sign-magnitude bit patterns to a monotone integer line
    a = np.where(a < 0, np.iinfo(kind).min - a, a).astype(np.int64)
    b = np.where(b < 0, np.iinfo(kind).min - b, b).astype(np.int64)
    out = np.abs(a - b)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0, out)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_each_op_is_within_4_ulp_of_numpy(backend, dtype):
    x = GRID.astype(dtype)
    y = np.roll(GRID, 5).astype(dtype)
    a, b = sg.tensor("a", (x.size,), dtype), sg.tensor("b", (x.size,), dtype)
    worst = {}
    with np.errstate(all="ignore"):
        for name, f in ref.UNARY.items():
            got = sg.compile(getattr(sg, name)(a), backend=backend)(a=x)
            worst[name] = ulp_distance(got, f(x)).max()
        for name, f in ref.BINARY.items():
            got = sg.compile(getattr(sg, name)(a, b), backend=backend)(a=x, b=y)
            worst[name] = ulp_distance(got, f(x, y)).max()
    bad = {k: int(v) for k, v in worst.items() if v > 4}
    assert not bad, f"ulp distance from NumPy above 4: {bad}"


def test_ulp_distance_counts_representable_values():
    one = np.array([1.0])
    assert ulp_distance(np.nextafter(one, 2), one)[0] == 1
    assert ulp_distance(np.array([-0.0]), np.array([0.0]))[0] == 0
    assert ulp_distance(np.array([5e-324]), np.array([-5e-324]))[0] == 2
    assert ulp_distance(np.array([np.nan]), one)[0] > 4
    f32 = np.array([1.0], np.float32)
    assert ulp_distance(np.nextafter(f32, np.float32(0)), f32)[0] == 1
