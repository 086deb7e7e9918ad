"""Property-based tests over random expression graphs (hypothesis).

A generator, :func:`make_case`, builds a random graph over the whole op set -- elementwise
functions, broadcasting between shapes such as ``()``, ``(3,)``, ``(2, 3)``, ``(2, 1)`` and
``("N", 3)`` (``N`` bound when the function is called), reductions with axes and keepdims,
matmul, transpose, reshape, logsumexp / softmax / log_softmax, ``where`` over comparisons,
``pick`` / ``one_hot`` with integer labels and the losses, basic indexing, concatenate,
stack, var / std and the one-hot of an argmax -- on inputs of random small shapes,
and reduces it to a scalar loss through random cotangent inputs (``sum(node * c)``), so that
every vector-Jacobian product is exercised, not only its sum.  Every construction the
strategy makes is valid by the shape rules of docs/design.md: a ``SymgradError`` while building,
differentiating or calling is a failure.

Properties:

(a) ``sg.value_and_grad`` matches central finite differences along a random direction.
    Functions with restricted domains get safe arguments (``log(softplus(x) + 0.1)``,
    ``sqrt(abs(x) + 1)``, ...).  Kinks (relu, abs, max, where) are hit with probability ~0
    at random float inputs; a point too close to one is detected by two step sizes that
    disagree, and discarded (``assume(False)``).
(b) the numpy and numba backends agree to 1e-12 relative (normwise per output).  This test
    turns itself on when ``symgrad.backends.numba_backend`` exists.
(c) optimisation preserves values: the unoptimised graph (value and raw derived gradients)
    evaluated as written by ``symgrad.backends.reference`` equals the compiled, optimised
    function -- NaN for NaN, except that where an intermediate value of the graph as written
    overflowed, a listed relaxation may give a number where it gives NaN (docs/semantics.md).

Budget: profiles ``ci`` (the default; ~30 examples per test, numba limited to 10 because
each example costs a Numba compile of ~1 s) and ``long`` (2000 examples), selected by the
environment variable ``SYMGRAD_HYPOTHESIS_PROFILE``::

    SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py tests/test_properties.py

The profiles are registered here but not loaded globally (that would change the defaults of
other test modules); each test takes its settings from :data:`PROFILE`.  ``ci`` stops at the
first failure it finds; ``long`` reports every distinct one.  To look past a known bug,
``SYMGRAD_PROPERTY_EXCLUDE=where,loss`` leaves those kinds of steps out of the generator.

A failing example prints (``note``) a script that rebuilds the graph and its inputs.
``test_the_gradient_checker_rejects_a_wrong_gradient`` shows that the finite-difference
oracle fails on slightly wrong gradients.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import symgrad as sg
from symgrad.backends.inputs import Signature
from symgrad.backends.reference import run as reference_run

# --- budget --------------------------------------------------------------------------------

_COMMON = dict(
    deadline=None,
    # no "explain" phase: it re-runs failing examples many times, for little news here
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
# "ci" shrinks only the first failure it finds (several distinct ones cost minutes to shrink)
# and draws the same examples on every run, so a CI result does not depend on luck; "long"
# draws new ones each time and reports every distinct failure (that is where bugs are found).
settings.register_profile(
    "ci", max_examples=30, report_multiple_bugs=False, derandomize=True, **_COMMON
)
settings.register_profile("long", max_examples=2000, report_multiple_bugs=True, **_COMMON)
PROFILE_NAME = os.environ.get("SYMGRAD_HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)
# Examples that compile with Numba (~1 s each): few in CI, more in a long run.
NUMBA_EXAMPLES = 10 if PROFILE.max_examples <= 100 else max(10, PROFILE.max_examples // 8)


def numba_available() -> bool:
    """Whether the numba backend has been written yet (the tests turn on by themselves)."""
    return importlib.util.find_spec("symgrad.backends.numba_backend") is not None


# --- a small model of the shape rules, so the strategy only builds valid graphs ----------


def broadcastable(*shapes) -> bool:
    """NumPy broadcasting where a named dim matches only itself or 1 (a stricter model than
    docs/design.md, "Dims": the generator never relies on a fixed size binding a name)."""
    ndim = max((len(s) for s in shapes), default=0)
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            return False
    return True


def broadcast_shape(*shapes):
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def resolve(shape, dims):
    return tuple(sg.ir.shapes.evaluate(d, dims) for d in shape)


SHAPES = [(), (3,), (2, 3), (2, 1), (1, 3), ("N",), ("N", 3), ("N", 1), (3, 2), (2, "N")]

UNARY = [
    "exp",
    "tanh",
    "sigmoid",
    "relu",
    "abs",
    "softplus",
    "gelu",
    "gelu_tanh",
    "silu",
    "leaky_relu",
    "elu",
    "log",
    "log1p",
    "sqrt",
    "negative",
    "square",
    "cube",
    "reciprocal",
    "pow_float",
    "scale",
    "sin",
    "cos",
    "square_fn",
    "log_sigmoid",
    "builtin_abs",
    "clip",
]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "pow_tensor", "add_const"]
STEPS = [
    "unary",
    "binary",
    "reduce",
    "matmul",
    "transpose",
    "reshape",
    "softmax",
    "where",
    "pick",
    "one_hot",
    "loss",
    "stop_gradient",
    "index",
    "concatenate",
    "stack",
    "var",
    "argmax",
]
_EXCLUDE = set(os.environ.get("SYMGRAD_PROPERTY_EXCLUDE", "").split(","))
COMPARISONS = ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"]


@dataclass
class Case:
    """A random graph reduced to a scalar, with values for every input."""

    loss: sg.Tensor
    wrt: list
    inputs: dict  # name -> value (float arrays, int64 labels)
    dims: dict  # named dim -> size in this call
    code: list = field(default_factory=list)  # Python that rebuilds the graph (failure reports)

    def kwargs(self, compiled) -> dict:
        """The inputs a compiled function takes (simplification may drop unused ones)."""
        return {k: v for k, v in self.inputs.items() if k in compiled.input_names}

    def describe(self) -> str:
        """A runnable script that rebuilds the graph and its inputs."""
        with np.printoptions(precision=17, threshold=10**6):
            values = ", ".join(
                f"{k}=np.array({np.asarray(v).tolist()!r})" for k, v in self.inputs.items()
            )
        return "\n".join(
            ["import numpy as np, symgrad as sg"]
            + self.code
            + [
                f"wrt = [{', '.join(w.name for w in self.wrt)}]",
                f"inputs = dict({values})  # dims {self.dims}",
            ]
        )


class Builder:
    """Draws operations one at a time; keeps a pool of the nodes built so far.

    Every op method returns ``(node, code)``: the node and the Python expression that builds
    it from the names of its operands, so a failing example prints as a runnable script.
    """

    def __init__(self, draw, dims, stop_gradient=False, steps=None):
        self.draw, self.dims, self.pool, self.code = draw, dims, [], []
        self.names: dict = {}  # node -> variable name in self.code
        self.floats, self.labels = {}, {}  # name -> declared input node
        self.stop_gradient = stop_gradient
        self.steps = [k for k in (steps or STEPS) if k not in _EXCLUDE]
        self._serial = 0

    # -- bookkeeping
    def fresh(self, prefix):
        self._serial += 1
        return f"{prefix}{self._serial}"

    def ref(self, x) -> str:
        return self.names[x] if isinstance(x, sg.Tensor) else repr(x)

    def emit(self, node, code, prefix="v"):
        name = self.fresh(prefix)
        self.code.append(f"{name} = {code}  # {node.shape}")
        self.names[node] = name
        return node

    def float_input(self, shape, prefix="a"):
        name = self.fresh(prefix)
        node = sg.tensor(name, shape)
        self.floats[name] = node
        self.names[node] = name
        self.code.append(f"{name} = sg.tensor({name!r}, {shape!r})")
        return node

    def label_input(self, shape, classes):
        name = self.fresh("lab")
        node = sg.tensor(name, shape, dtype="int64")
        self.labels[name] = (node, classes)
        self.names[node] = name
        self.code.append(
            f"{name} = sg.tensor({name!r}, {shape!r}, dtype='int64')  # in [0, {classes})"
        )
        return node

    def choose(self, seq):
        return self.draw(st.sampled_from(seq))

    def choose_node(self, nodes):
        # by index: a drawn value is printed in failure reports, and a Node prints badly
        return nodes[self.draw(st.integers(0, len(nodes) - 1))]

    def operand(self, want_ndim=None):
        nodes = [n for n in self.pool if want_ndim is None or n.ndim in want_ndim]
        if not nodes:
            shapes = [s for s in SHAPES if want_ndim is None or len(s) in want_ndim]
            return self.float_input(self.choose(shapes))
        # prefer recent nodes so graphs get deep, not just wide
        return nodes[-1 - self.draw(st.integers(0, len(nodes) - 1))]

    def partner(self, shape):
        """A pool node broadcastable with ``shape``, or a fresh input that is."""
        options = [n for n in self.pool if broadcastable(n.shape, shape)]
        if options and self.draw(st.booleans()):
            return self.choose_node(options)
        kind = self.draw(st.integers(0, 3))
        if kind == 0:
            new = shape
        elif kind == 1:
            new = shape[self.draw(st.integers(0, len(shape))) :]
        elif kind == 2:
            new = tuple(1 if self.draw(st.booleans()) else d for d in shape)
        else:
            new = self.choose([s for s in SHAPES if broadcastable(s, shape)])
        return self.float_input(new)

    def positive(self, x):
        """A strictly positive function of ``x`` (domain of log, sqrt, division, powers)."""
        kind = self.choose(["softplus", "abs", "square", "exp"])
        r = self.ref(x)
        if kind == "softplus":
            node, code = sg.softplus(x) + 0.1, f"sg.softplus({r}) + 0.1"
        elif kind == "abs":
            node, code = sg.abs(x) + 1, f"sg.abs({r}) + 1"
        elif kind == "square":
            node, code = x * x + 0.5, f"{r} * {r} + 0.5"
        else:
            node, code = sg.exp(sg.tanh(x)), f"sg.exp(sg.tanh({r}))"
        return self.emit(node, code, "p")

    def axis(self, ndim):
        if ndim == 0:
            return None
        kind = self.draw(st.integers(0, 2))
        if kind == 0:
            return None
        if kind == 1:
            a = self.draw(st.integers(0, ndim - 1))
            return a - ndim if self.draw(st.booleans()) else a
        axes = self.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        return tuple(axes)

    # -- one step
    def step(self):
        kind = self.choose(self.steps)
        if kind == "stop_gradient" and not self.stop_gradient:
            kind = "unary"
        try:
            node, code = getattr(self, "op_" + kind)()
        except BaseException:
            note(
                "\n".join(
                    ["import numpy as np, symgrad as sg"] + self.code + [f"# failed: op_{kind}"]
                )
            )
            raise
        self.pool.append(self.emit(node, code))

    def op_unary(self):
        x = self.operand()
        r = self.ref(x)
        f = self.choose(UNARY)
        if f in ("log", "sqrt", "log1p", "reciprocal", "pow_float"):
            p = self.positive(x)
            rp = self.ref(p)
            if f == "log":
                return sg.log(p), f"sg.log({rp})"
            if f == "sqrt":
                return sg.sqrt(p), f"sg.sqrt({rp})"
            if f == "log1p":
                return sg.log1p(p - 0.05), f"sg.log1p({rp} - 0.05)"
            if f == "reciprocal":
                return 1.0 / p, f"1.0 / {rp}"
            e = self.choose([0.5, 1.5, -0.5, 2.5])
            return p**e, f"{rp} ** {e}"
        if f in ("leaky_relu", "elu"):
            alpha = self.choose([0.01, 0.2] if f == "leaky_relu" else [1.0, 0.5])
            return getattr(sg, f)(x, alpha=alpha), f"sg.{f}({r}, alpha={alpha})"
        if f == "gelu_tanh":
            return sg.gelu(x, approximate=True), f"sg.gelu({r}, approximate=True)"
        if f == "negative":
            return -x, f"-{r}"
        if f == "square":
            return x**2, f"{r} ** 2"
        if f == "cube":
            return x**3, f"{r} ** 3"
        if f == "scale":
            c = self.choose([0.5, -1.5, 3.0, 0.1])
            return c * x, f"{c} * {r}"
        if f == "square_fn":
            return sg.square(x), f"sg.square({r})"
        if f == "builtin_abs":
            return abs(x), f"abs({r})"
        if f == "clip":
            lo, hi = self.choose([(-0.5, 0.5), (-1.0, 2.0), (0.0, 0.3)])
            return sg.clip(x, lo, hi), f"sg.clip({r}, {lo}, {hi})"
        return getattr(sg, f)(x), f"sg.{f}({r})"

    def op_binary(self):
        a = self.operand()
        ra = self.ref(a)
        f = self.choose(BINARY)
        if f == "add_const":  # a NumPy array constant (int dims only)
            if not all(isinstance(d, int) for d in a.shape):
                return a + 0.25, f"{ra} + 0.25"
            n = math.prod(a.shape)
            const = np.round(np.linspace(-1, 1, n), 3).reshape(a.shape)
            return a * const, f"{ra} * np.round(np.linspace(-1, 1, {n}), 3).reshape({a.shape!r})"
        b = self.partner(a.shape)
        rb = self.ref(b)
        if f == "divide":
            p = self.positive(b)
            return a / p, f"{ra} / {self.ref(p)}"
        if f == "pow_tensor":
            p = self.positive(a)
            return p ** sg.tanh(b), f"{self.ref(p)} ** sg.tanh({rb})"
        if f in ("maximum", "minimum"):
            return getattr(sg, f)(a, b), f"sg.{f}({ra}, {rb})"
        op = {"add": "+", "subtract": "-", "multiply": "*"}[f]
        node = {"+": a.__add__, "-": a.__sub__, "*": a.__mul__}[op](b)
        return node, f"{ra} {op} {rb}"

    def op_reduce(self):
        x = self.operand()
        f = self.choose(["sum", "mean", "max", "logsumexp"])
        axis = self.axis(x.ndim)
        keepdims = self.draw(st.booleans())
        node = getattr(sg, f)(x, axis=axis, keepdims=keepdims)
        return node, f"sg.{f}({self.ref(x)}, axis={axis!r}, keepdims={keepdims})"

    def op_matmul(self):
        a = self.operand(want_ndim=(1, 2))
        r = self.ref(a)
        form = self.draw(st.integers(0, 3))
        if form == 0:  # a @ W
            k = a.shape[-1]
            w = self.float_input(
                self.choose([(k, 2), (k,), (k, "N") if a.ndim == 2 else (k, 3)]), "w"
            )
            return a @ w, f"{r} @ {self.ref(w)}"
        if form == 1:  # W @ a
            w = self.float_input(self.choose([(2, a.shape[0]), (a.shape[0],)]), "w")
            return w @ a, f"{self.ref(w)} @ {r}"
        if a.ndim == 1:
            return a @ a, f"{r} @ {r}"
        if form == 2:
            return a @ a.T, f"{r} @ {r}.T"
        return a.T @ a, f"{r}.T @ {r}"

    def op_transpose(self):
        x = self.operand()
        if x.ndim < 2 or self.draw(st.booleans()):
            return x.T, f"{self.ref(x)}.T"
        perm = tuple(self.draw(st.permutations(range(x.ndim))))
        return sg.transpose(x, perm), f"sg.transpose({self.ref(x)}, {perm!r})"

    def op_reshape(self):
        x = self.operand()
        r = self.ref(x)
        kind = self.draw(st.integers(0, 3))
        if kind == 0:  # add a unit axis through indexing
            index, text = self.choose(
                [((None,), "None"), ((Ellipsis, None), "..., None")]
                + ([((slice(None), None), ":, None")] if x.ndim else [])
            )
            return x[index], f"{r}[{text}]"
        if kind == 1:  # drop unit axes
            shape = tuple(d for d in x.shape if d != 1)
        elif kind == 2 and all(isinstance(d, int) for d in x.shape):
            n = math.prod(x.shape)
            shape = self.choose(
                [
                    s
                    for s in [(n,), (1, n), (n, 1), (2, n // 2), (3, n // 3), (-1,)]
                    if -1 in s or math.prod(s) == n
                ]
            )
        else:  # the same dims in another order: a valid reshape even with named dims
            shape = tuple(self.draw(st.permutations(x.shape)))
        return sg.reshape(x, shape), f"sg.reshape({r}, {shape!r})"

    def op_softmax(self):
        x = self.operand(want_ndim=(1, 2))
        f = self.choose(["softmax", "log_softmax"])
        axis = self.choose(list(range(-x.ndim, x.ndim)))
        return getattr(sg, f)(x, axis=axis), f"sg.{f}({self.ref(x)}, axis={axis})"

    def op_where(self):
        a = self.operand()
        b = self.partner(a.shape)
        rel = self.choose(COMPARISONS)
        shape = broadcast_shape(a.shape, b.shape)
        condition, text = getattr(sg, rel)(a, b), f"sg.{rel}({self.ref(a)}, {self.ref(b)})"
        if self.draw(st.integers(0, 3)) == 0:  # two conditions met: their xor
            c = self.partner(shape)
            rel2 = self.choose(COMPARISONS)
            condition = sg.not_equal(condition, getattr(sg, rel2)(a, c))
            text = f"sg.not_equal({text}, sg.{rel2}({self.ref(a)}, {self.ref(c)}))"
            shape = broadcast_shape(shape, c.shape)
        x = self.partner(shape)
        y = self.partner(broadcast_shape(shape, x.shape)) if self.draw(st.booleans()) else 0.5
        node = sg.where(condition, x, y)
        return node, f"sg.where({text}, {self.ref(x)}, {self.ref(y)})"

    def op_pick(self):
        scores = self.operand(want_ndim=(1, 2))
        labels = self.label_input(scores.shape[:-1], scores.shape[-1])
        return sg.pick(scores, labels), f"sg.pick({self.ref(scores)}, {self.ref(labels)})"

    def op_one_hot(self):
        x = self.operand(want_ndim=(1, 2))
        classes = x.shape[-1] if x.shape[-1] != 1 else 3
        labels = self.label_input(x.shape[:-1] if x.ndim == 2 else self.choose([(), (2,)]), classes)
        hot = sg.one_hot(labels, classes)
        other = x if broadcastable(x.shape, hot.shape) else self.partner(hot.shape)
        return hot * other, f"sg.one_hot({self.ref(labels)}, {classes!r}) * {self.ref(other)}"

    def op_loss(self):
        scores = self.operand(want_ndim=(2,))
        labels = self.label_input(scores.shape[:-1], scores.shape[-1])
        f = self.choose(["softmax_cross_entropy", "multiclass_hinge"])
        reduction = self.choose(["mean", "sum", "none"])
        node = getattr(sg.losses, f)(scores, labels, reduction=reduction)
        return (
            node,
            f"sg.losses.{f}({self.ref(scores)}, {self.ref(labels)}, reduction={reduction!r})",
        )

    def _index_item(self, d):
        """An index for an axis of size ``d`` that keeps at least one element."""
        if isinstance(d, int):
            items = [slice(None), slice(None, None, -1), slice(None, None, 2), 0, d - 1, -1]
            if d >= 2:
                items += [slice(1, None), slice(-2, None), slice(None, -1), slice(d - 1, 0, -1)]
            if d >= 3:
                items += [slice(0, d, 2), 1, -2]
            return self.choose(items)
        return self.choose([slice(None), slice(None, None, -1), 0, -1])

    def op_index(self):
        x = self.operand(want_ndim=(1, 2))
        index = tuple(self._index_item(d) for d in x.shape)
        if self.draw(st.booleans()):
            index = index[:-1] + (None, index[-1])
        text = ", ".join(
            "None" if i is None else repr(i) if not isinstance(i, slice)
            else f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}"
            f"{'' if i.step is None else ':' + str(i.step)}"
            for i in index
        )
        return x[index], f"{self.ref(x)}[{text}]"

    def op_concatenate(self):
        x = self.operand(want_ndim=(1, 2))
        axis = self.draw(st.integers(-x.ndim, x.ndim - 1))
        if x.ndim == 2 and self.draw(st.integers(0, 3)) == 0:  # a column or row of a number
            return sg.concatenate([x, 0.5], axis=axis), f"sg.concatenate([{self.ref(x)}, 0.5], axis={axis})"
        shape = list(x.shape)
        shape[axis] = self.choose([1, 2, "N", shape[axis]])
        same = [n for n in self.pool if n.shape == tuple(shape)]
        y = self.choose_node(same) if same and self.draw(st.booleans()) else self.float_input(tuple(shape))
        parts = [x, y] if self.draw(st.booleans()) else [y, x, y]
        refs = ", ".join(self.ref(p) for p in parts)
        return sg.concatenate(parts, axis=axis), f"sg.concatenate([{refs}], axis={axis})"

    def op_stack(self):
        x = self.operand(want_ndim=(0, 1, 2))
        y = self.float_input(x.shape) if self.draw(st.booleans()) else x
        axis = self.draw(st.integers(0, x.ndim))
        return sg.stack([x, y], axis=axis), f"sg.stack([{self.ref(x)}, {self.ref(y)}], axis={axis})"

    def op_var(self):
        x = self.operand(want_ndim=(1, 2))
        axis = self.axis(x.ndim)
        axes = tuple(range(x.ndim)) if axis is None else (
            tuple(a % x.ndim for a in axis) if isinstance(axis, tuple) else (axis % x.ndim,))
        count = [x.shape[a] for a in axes]
        fixed = all(isinstance(d, int) for d in count) and math.prod(count) >= 2
        f = self.choose(["var", "std"] if fixed else ["var"])
        ddof = self.choose([0, 1] if fixed else [0])
        keepdims = self.draw(st.booleans())
        node = getattr(sg, f)(x, axis=axis, keepdims=keepdims, ddof=ddof)
        return node, f"sg.{f}({self.ref(x)}, axis={axis!r}, keepdims={keepdims}, ddof={ddof})"

    def op_argmax(self):
        # the one-hot of the row-wise argmax (no gradient through argmax: its input is
        # stopped) times the values: the max of each row, kept in place
        x = self.operand(want_ndim=(1, 2))
        r = self.ref(x)
        hot = sg.one_hot(sg.argmax(sg.stop_gradient(x), axis=-1), x.shape[-1])
        return hot * x, f"sg.one_hot(sg.argmax(sg.stop_gradient({r}), axis=-1), {x.shape[-1]!r}) * {r}"

    def op_stop_gradient(self):
        x = self.operand()
        return sg.stop_gradient(x), f"sg.stop_gradient({self.ref(x)})"


def make_case(draw, max_steps=6, stop_gradient=False, min_n=1, steps=None) -> Case:
    """A random valid graph reduced to a scalar, with input values (see module docstring).

    ``draw`` is ``data.draw`` of ``st.data()``: the graph is built inside the test body, so
    an exception the library raises while building it is a test failure like any other
    (inside a strategy it would be reported as an error of the data generation).
    """
    dims = {"N": draw(st.integers(min_n, 4))}
    b = Builder(draw, dims, stop_gradient=stop_gradient, steps=steps)
    for _ in range(draw(st.integers(1, 3))):
        b.pool.append(b.float_input(b.choose(SHAPES)))
    for _ in range(draw(st.integers(1, max_steps))):
        b.step()

    # Scalar loss: sum(node * c) with a random cotangent input c for the last node and
    # maybe some earlier ones; sometimes a nonlinear reduction instead.
    chosen = [b.pool[-1]] + [n for n in b.pool[:-1] if draw(st.booleans()) and draw(st.booleans())]
    terms = []
    for node in chosen:
        how = draw(st.sampled_from(["cotangent", "cotangent", "mean", "sum_tanh"]))
        r = b.ref(node)
        if how == "cotangent" and node.ndim:
            c = b.float_input(node.shape, prefix="c")
            terms.append((sg.sum(node * c), f"sg.sum({r} * {b.ref(c)})"))
        elif how == "sum_tanh":
            terms.append((sg.sum(sg.tanh(node)), f"sg.sum(sg.tanh({r}))"))
        else:
            terms.append((sg.mean(node), f"sg.mean({r})"))
    loss = terms[0][0]
    for t, _ in terms[1:]:
        loss = loss + t
    b.code.append("loss = " + " + ".join(code for _, code in terms))

    names = sorted(b.floats)
    wrt = [b.floats[n] for n in names if not n.startswith("c") or draw(st.booleans())]
    if draw(st.integers(0, 4)) == 0:  # a tensor the loss does not use: zero gradient
        wrt.append(b.float_input(b.choose(SHAPES), prefix="unused"))
    if not wrt:
        wrt = [b.floats[names[0]]]

    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.5, 1.0, 2.0]))
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, node in b.floats.items():
        inputs[name] = scale * rng.standard_normal(resolve(node.shape, dims))
    for name, (node, classes) in b.labels.items():
        (c,) = resolve((classes,), dims)
        inputs[name] = rng.integers(0, c, size=resolve(node.shape, dims))
    return Case(loss, wrt, inputs, dims, b.code)


# --- helpers -------------------------------------------------------------------------------


def as_list(grads):
    return list(grads) if isinstance(grads, (list, tuple)) else [grads]


def close_normwise(actual, expected, rtol, what="", floor=1.0):
    """max|a - e| <= rtol * max(max|e|, floor), with NaN/Inf required at the same places.

    Normwise per output: an element that is zero in exact arithmetic may come out as 1e-18
    on one side; ``floor`` makes the test absolute below that magnitude.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bad_a, bad_e = ~np.isfinite(actual), ~np.isfinite(expected)
    assert np.array_equal(bad_a, bad_e) and np.array_equal(
        actual[bad_e], expected[bad_e], equal_nan=True
    ), f"{what}: non-finite values differ:\nactual:\n{actual}\nexpected:\n{expected}"
    a, e = actual[~bad_e], expected[~bad_e]
    if e.size == 0:
        return
    scale = float(np.max(np.abs(e)))
    err = float(np.max(np.abs(a - e)))
    assert err <= rtol * max(scale, floor), (
        f"{what}: max |diff| = {err:.3e} > {rtol:g} * max({scale:.3e}, {floor:g})"
        f"\nactual:\n{actual}\nexpected:\n{expected}"
    )


def finite_and_moderate(value, grads, bound=1e6) -> bool:
    arrays = [np.asarray(value)] + [np.asarray(g) for g in grads]
    return all(np.all(np.isfinite(a)) and np.all(np.abs(a) < bound) for a in arrays)


def value_and_grad(case: Case, backend="numpy"):
    vg = sg.value_and_grad(case.loss, case.wrt, backend=backend)
    value, grads = vg(**case.kwargs(vg))
    return vg, value, as_list(grads)


def check_finite_differences(case: Case, vg, grads, h=1e-5, rtol=1e-6, atol=1e-9, unstable=assume):
    """Directional derivative <g, v> against central differences with steps h and 2h.

    A kink within reach of the steps shows as two difference quotients that disagree; then
    there is no oracle and ``unstable(False)`` is called (``assume``: discard the example).
    Returns whether the comparison was made.
    """
    rng = np.random.default_rng(0)
    # one gradient per tensor: a tensor listed twice in wrt gets its gradient twice
    by_name = {}
    for w, g in zip(case.wrt, grads):
        by_name.setdefault(w.name, np.asarray(g, dtype=np.float64))
    wrt_names = list(by_name)
    base = {n: np.asarray(case.inputs[n], dtype=np.float64) for n in wrt_names}
    direction = {n: rng.standard_normal(a.shape) for n, a in base.items()}
    norm = math.sqrt(sum(float(np.sum(d * d)) for d in direction.values())) or 1.0
    direction = {n: d / norm for n, d in direction.items()}
    predicted = sum(float(np.sum(by_name[n] * direction[n])) for n in wrt_names)

    def f(t):
        moved = dict(case.inputs)
        for n in wrt_names:
            moved[n] = base[n] + t * direction[n]
        kwargs = case.kwargs(vg)
        kwargs.update({n: moved[n] for n in wrt_names if n in kwargs})
        return float(vg(**kwargs)[0])

    def central(step):
        plus, minus = f(step), f(-step)
        return (plus - minus) / (2 * step), 4e-16 * (abs(plus) + abs(minus)) / (2 * step)

    fd1, round1 = central(h)
    fd2, round2 = central(2 * h)
    # Two step sizes that disagree mean a kink (or huge curvature) within reach: no oracle.
    stable = (
        math.isfinite(fd1)
        and math.isfinite(fd2)
        and (abs(fd1 - fd2) <= 1e-6 * max(abs(fd1), abs(fd2)) + 10 * (round1 + round2) + atol)
    )
    if currently_in_test_context():
        note(f"fd(h)={fd1!r} fd(2h)={fd2!r} predicted={predicted!r}")
    if not stable:
        unstable(False)
        return False
    tol = rtol * max(abs(predicted), abs(fd1)) + 10 * round1 + atol
    assert abs(predicted - fd1) <= tol, (
        f"<grad, v> = {predicted!r} but central difference = {fd1!r} (h={h}); "
        f"|diff| = {abs(predicted - fd1):.3e} > {tol:.3e}\n{case.describe()}"
    )
    return True


def evaluate_unoptimised(outputs, wrt, inputs):
    """``outputs`` evaluated as written, without any pass, by the reference interpreter
    (``symgrad.backends.reference``): returns the signature and the reference's ``Run``
    (the values, and whether every intermediate value was finite)."""
    signature = Signature(outputs, wrt)
    bound = signature.bind({k: v for k, v in inputs.items() if k in signature.names})
    return signature, reference_run(outputs, signature.names, *bound)


# --- the properties ------------------------------------------------------------------------


@settings(PROFILE)
@given(data=st.data())
def test_gradients_match_finite_differences(data):
    case = make_case(data.draw)
    note(case.describe())
    vg, value, grads = value_and_grad(case)
    assert len(grads) == len(case.wrt)
    for w, g in zip(case.wrt, grads):
        assert np.shape(g) == np.shape(case.inputs[w.name]), (
            f"gradient of {w.name} has shape {np.shape(g)}"
        )
        if w.name.startswith("unused"):
            assert np.all(np.asarray(g) == 0), f"{w.name} is not used but its gradient is {g}"
    assume(finite_and_moderate(value, grads))
    check_finite_differences(case, vg, grads)


@settings(PROFILE)
@given(data=st.data())
def test_optimisation_preserves_values(data):
    case = make_case(data.draw, stop_gradient=True)
    note(case.describe())
    raw = [case.loss] + sg.grad(case.loss, case.wrt)
    signature, expected = evaluate_unoptimised(raw, case.wrt, case.inputs)
    note(f"every intermediate finite: {expected.finite} (first not: {expected.first})")

    vg, value, grads = value_and_grad(case)
    assert vg.input_names == signature.names
    for i, (got, want) in enumerate(zip([value] + grads, expected.values)):
        if not expected.finite:
            # docs/semantics.md: where an intermediate overflowed, a relaxation (a pruned
            # zero adjoint: 0 * inf -> 0) may give a number where the graph as written
            # gives NaN; nowhere else may the values differ
            got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
            relaxed = np.isnan(want) & np.isfinite(got)
            got, want = got[~relaxed], want[~relaxed]
        close_normwise(got, want, 1e-9, what=f"output {i} (0 = loss, then gradients)")


@pytest.mark.skipif(
    not numba_available(), reason="symgrad.backends.numba_backend is not written yet"
)
@settings(PROFILE, max_examples=NUMBA_EXAMPLES)
@given(data=st.data())
def test_numpy_and_numba_backends_agree(data):
    case = make_case(data.draw, stop_gradient=True)
    note(case.describe())
    _, value, grads = value_and_grad(case, "numpy")
    vg, value_nb, grads_nb = value_and_grad(case, "numba")
    assert isinstance(value_nb, float)
    for i, (got, want) in enumerate(zip([value_nb] + grads_nb, [value] + grads)):
        assert np.shape(got) == np.shape(want)
        close_normwise(got, want, 1e-12, what=f"output {i} (0 = loss, then gradients)")


def test_the_gradient_checker_rejects_a_wrong_gradient():
    """The oracle itself: it accepts the right gradient and refuses slightly wrong ones."""
    x, c = sg.tensor("chk_x", (3,)), sg.tensor("chk_c", (3,))
    loss = sg.sum(sg.tanh(x) * c + x**3)
    inputs = {"chk_x": np.array([0.3, -1.2, 0.8]), "chk_c": np.array([1.5, -0.5, 2.0])}
    case = Case(loss, [x], inputs, {})
    vg = sg.value_and_grad(loss, [x], backend="numpy")
    right = (1 - np.tanh(inputs["chk_x"]) ** 2) * inputs["chk_c"] + 3 * inputs["chk_x"] ** 2
    assert check_finite_differences(case, vg, [right], unstable=lambda ok: None)
    for wrong in (
        right * (1 + 1e-4),
        right + np.array([0.0, 1e-3, 0.0]),
        right[::-1],
        np.tanh(inputs["chk_x"]),
    ):
        with pytest.raises(AssertionError):
            check_finite_differences(case, vg, [wrong], unstable=lambda ok: None)
