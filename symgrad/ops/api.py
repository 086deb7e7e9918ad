"""The user-facing functions and operators: thin wrappers over the ops.

Array operands are positional, static parameters keyword (``sum(x, axis=0, keepdims=True)``).
Python numbers and NumPy arrays mixed with tensors become constants.  Composites
(softmax, logsumexp, mean, ...) are built from primitives and need no derivative rule.
"""

from __future__ import annotations

import numbers

import numpy as np
import sympy as sp

from ..errors import ArgumentError, DTypeError, ShapeError
from ..ir import Node
from ..ir import dtypes as dt
from ..ir.shapes import axes as norm_axes
from ..ir.shapes import fmt, reduced
from . import core, layout, linalg, reductions
from . import labels as label_ops
from .core import ew
from .elementwise import FUNCTIONS, Div, IsNaN, boolean_as_number, number, relation, sym
from .elementwise import power as elementwise_power

# --- creating tensors --------------------------------------------------------------------


def tensor(name: str, shape=(), dtype="float64") -> Node:
    """A named input tensor; dims are ints or names (``tensor("X", ("N", "D"))``)."""
    return core.input_(name, shape, dtype)


def symbols(names: str, dtype="float64"):
    """Scalar inputs, as in SymPy: ``x, y = symbols("x y")``; one name gives one symbol."""
    if not isinstance(names, str):
        raise ArgumentError(f"symbols() takes a string of names like 'x y z', got {names!r}")
    parts = names.replace(",", " ").split()
    if not parts:
        raise ArgumentError(f"symbols() needs at least one name, got {names!r}")
    nodes = tuple(core.input_(p, (), dtype) for p in parts)
    return nodes[0] if len(nodes) == 1 else nodes


def as_node(value) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, (numbers.Number, np.ndarray, np.generic, list, tuple)):
        return core.const(value)
    raise ArgumentError(f"cannot use {type(value).__name__} {value!r} as a tensor")


# --- elementwise -------------------------------------------------------------------------


def _is_number(value) -> bool:
    """A Python number: weakly typed (NEP 50).  NumPy scalars are not: they keep their dtype."""
    return type(value) in (bool, int, float)  # np.float64 subclasses float: not weak


def _apply(formula, *operands, what: str, conditions=(), integer=False) -> Node:
    """``formula`` applied elementwise to tensors and numbers.

    Dtypes follow NumPy 2 (NEP 50, :func:`symgrad.ir.dtypes.promote`): Python numbers are
    weak and take the dtype of the tensors they meet (``x32 * 0.5`` stays float32); NumPy
    scalars and arrays are tensors.  ``integer`` ops (+, -, *, max, ...) on int64 stay
    int64 with NumPy's wrap-around; the others compute in float64.  ``ew`` folds numbers
    into the formula.  A bool operand is read as 1.0 / 0.0, except at the positions in
    ``conditions``, where it is the condition of a ``Piecewise``.
    """
    values = [v for p, v in enumerate(operands) if p not in conditions]
    strong = [as_node(v).dtype for v in values if not _is_number(v)]
    weak = [int if type(v) is bool else type(v) for v in values if _is_number(v)]
    dtype = dt.promote(strong, weak)
    if not integer and dtype == "int64":
        dtype = "float64"
    nodes = [core.scalar(v, dtype) if _is_number(v) else as_node(v) for v in operands]
    args = []
    for position, node in enumerate(nodes):
        s = sym(position)
        is_flag = node.dtype == "bool" and position not in conditions
        args.append(boolean_as_number(s) if is_flag else s)
    try:
        expr = formula(*args)
    except TypeError as exc:  # SymPy refusing a formula
        raise ArgumentError(f"{what}: {exc}") from None
    except RecursionError:
        raise ArgumentError(f"{what}: the formula is too deeply nested to build") from None
    out_dtype = "bool" if isinstance(expr, sp.logic.boolalg.Boolean) else dtype
    try:
        return ew(expr, nodes, out_dtype)
    except ShapeError as exc:
        names = ", ".join(repr(n) for n in nodes)
        raise ShapeError(f"{what} of {names}: {exc}") from None
    except ArgumentError as exc:  # a formula SymPy cannot build (too deep, undefined)
        raise ArgumentError(f"{what}: {exc}") from None


def _unary(name, integer=False):
    formula = FUNCTIONS[name]

    def f(x):
        return _apply(formula, x, what=name, integer=integer)

    f.__name__ = name
    return f


exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
sqrt = _unary("sqrt")
tanh = _unary("tanh")
relu = _unary("relu", integer=True)
softplus = _unary("softplus")
sin = _unary("sin")
cos = _unary("cos")
sin.__doc__ = "Elementwise sine (radians)."
cos.__doc__ = "Elementwise cosine (radians)."


def square(x):
    """x * x (as ``x**2``)."""
    return _apply(FUNCTIONS["square"], x, what="square", integer=True)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), evaluated per sign: finite value and gradient
    (sigmoid(-x)) for |x| up to 1e4 and beyond."""
    return _apply(FUNCTIONS["log_sigmoid"], x, what="log_sigmoid")


def clip(x, lo, hi):
    """``x`` limited to ``[lo, hi]`` (numbers or tensors, broadcast).

    Gradient convention (PyTorch's): d clip / dx is 1 where ``lo <= x <= hi``, boundaries
    included, and 0 outside; the gradient goes to ``lo`` where ``x < lo`` and to ``hi``
    where ``x > hi``.
    """
    return _apply(FUNCTIONS["clip"], x, lo, hi, what="clip", integer=True)


def abs(x):  # noqa: A001 - the NumPy name, as sg.abs
    """|x|, with the subgradient abs'(0) = 0 (and abs'' = 0: DiracDelta is 0 almost
    everywhere)."""
    return _apply(FUNCTIONS["abs"], x, what="abs", integer=True)


def sigmoid(x):
    """1 / (1 + exp(-x)).  Saturates to exactly 0 or 1 for large |x| without NaN; its
    derivative reuses the saved output as sigmoid * (1 - sigmoid)."""
    return _apply(FUNCTIONS["sigmoid"], x, what="sigmoid")


relu.__doc__ = "max(x, 0) (NaN stays NaN, as np.maximum), with the subgradient relu'(0) = 0."
softplus.__doc__ = "log(1 + exp(x)), evaluated per sign so it never overflows."


def leaky_relu(x, alpha=0.01):
    """x for x > 0, alpha * x otherwise; leaky_relu'(0) = alpha."""
    return _apply(lambda v: FUNCTIONS["leaky_relu"](v, number(alpha)), x, what="leaky_relu")


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise; elu'(0) = alpha."""
    return _apply(lambda v: FUNCTIONS["elu"](v, number(alpha)), x, what="elu")


def gelu(x, approximate=False):
    """x * Phi(x) with the normal CDF through erf; ``approximate=True`` is the tanh form."""
    return _apply(FUNCTIONS["gelu_tanh" if approximate else "gelu"], x, what="gelu")


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return multiply(x, sigmoid(x))


def maximum(a, b):
    """Elementwise max; at ties the gradient goes to ``a``."""
    return _apply(FUNCTIONS["maximum"], a, b, what="maximum", integer=True)


def minimum(a, b):
    """Elementwise min; at ties the gradient goes to ``a``."""
    return _apply(FUNCTIONS["minimum"], a, b, what="minimum", integer=True)


def add(a, b):
    return _apply(lambda x, y: x + y, a, b, what="add", integer=True)


def subtract(a, b):
    return _apply(lambda x, y: x - y, a, b, what="subtract", integer=True)


def multiply(a, b):
    return _apply(lambda x, y: x * y, a, b, what="multiply", integer=True)


def divide(a, b):
    """True division (float64 for int64 operands); ``x / x`` is not 1 where x is 0 or inf."""
    return _apply(Div, a, b, what="divide")


def power(a, b):
    """``a ** b`` as np.power; int64 ** a non-negative Python int stays int64."""
    integer = type(b) is int and b >= 0
    return _apply(elementwise_power, a, b, what="power", integer=integer)


def negative(a):
    return _apply(lambda x: -x, a, what="negative", integer=True)


def _compare(kind, name):
    # SymPy decides x >= x, x <= x and x == x to be True and x != x False; with NaN they
    # are not, so the reflexive relations carry the NaN case along (it costs one compare)
    def compare(x, y):
        return relation(kind, x, y)

    if kind in (sp.Eq, sp.LessThan, sp.GreaterThan):
        formula = lambda x, y: sp.And(compare(x, y), sp.Not(IsNaN(x)))  # noqa: E731
    elif kind is sp.Ne:
        formula = lambda x, y: sp.Or(compare(x, y), IsNaN(x))  # noqa: E731
    else:
        formula = compare

    def f(a, b):
        return _apply(formula, a, b, what=name, integer=True)

    f.__name__ = name
    f.__doc__ = (
        f"Elementwise ``{name}`` in the operands' dtype (a bool tensor, for ``where``); "
        "a comparison with NaN is False (``not_equal``: True), as in NumPy.  No gradient."
    )
    return f


less = _compare(sp.StrictLessThan, "less")
less_equal = _compare(sp.LessThan, "less_equal")
greater = _compare(sp.StrictGreaterThan, "greater")
greater_equal = _compare(sp.GreaterThan, "greater_equal")
equal = _compare(sp.Eq, "equal")
not_equal = _compare(sp.Ne, "not_equal")


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (the gradient flows to the chosen one)."""
    cond = as_node(condition)
    if cond.dtype != "bool":
        raise DTypeError(f"where needs a bool condition (a comparison), got {cond.dtype}")
    formula = lambda c, x, y: sp.Piecewise((x, c), (y, True))  # noqa: E731
    return _apply(formula, cond, a, b, what="where", conditions=(0,), integer=True)


def cast(x, dtype) -> Node:
    """``x`` converted to ``dtype`` (float64 or float32; bools become 1.0 / 0.0)."""
    x, dtype = as_node(x), dt.check(dtype)
    if not dt.is_float(dtype):
        raise DTypeError(f"cast converts to float64 or float32, got {dtype!r}")
    value = boolean_as_number(sym(0)) if x.dtype == "bool" else sym(0)
    return ew(value, [x], dtype)


# --- reductions --------------------------------------------------------------------------


def sum(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (None: all)."""
    return core.reduce_sum(as_node(x), axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all); a named dim divides by its run-time size."""
    x = as_node(x)
    axes = norm_axes(axis, x.ndim)
    dtype = dt.result_float([x.dtype])
    return divide(core.reduce_sum(x, axes, keepdims), core.size([x.shape[a] for a in axes], dtype))


def max(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Max over ``axis``; at ties the gradient goes to the first maximal element."""
    return reductions.reduce_max(as_node(x), axis, keepdims)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over ``axis``: ``sum((x - mean)**2) / (n - ddof)`` (NumPy's ``ddof``; the
    default 0 is the population variance, ``ddof=1`` the sample variance)."""
    x = as_node(x)
    if not isinstance(ddof, int) or isinstance(ddof, bool) or ddof < 0:
        raise ArgumentError(f"ddof must be an int >= 0, got {ddof!r}")
    axes = norm_axes(axis, x.ndim)
    dtype = dt.result_float([x.dtype])
    centred = subtract(x, mean(x, axes, keepdims=True))
    count = core.size([x.shape[a] for a in axes], dtype)
    return divide(core.reduce_sum(multiply(centred, centred), axes, keepdims), count - ddof)


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation over ``axis``: ``sqrt(var(x, axis, ddof=ddof))``.  Its gradient is
    infinite (NaN after the chain rule) where the variance is 0, as in NumPy's formula."""
    return sqrt(var(x, axis, keepdims, ddof))


def argmax(x, axis=None):
    """The int64 index of the first maximum along ``axis`` (None: of the flattened array).
    Not differentiable: ``grad`` raises if a gradient must flow through it."""
    return reductions.argmax(as_node(x), axis)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, shifted by the max so it never overflows.

    The shift is a ``stop_gradient``: the result does not depend on it, so its
    derivative is exactly softmax, with no max-selection term.  A row that is all -inf (a
    fully masked row) is shifted by 0, so it gives -inf, not nan; a row with +inf gives nan
    (inf - inf, as the max-shifted formula of PyTorch and JAX's softmax).
    """
    x = as_node(x)
    top = reductions.reduce_max(x, axis, keepdims=True)
    shift = core.stop_gradient(where(greater(top, -np.inf), top, 0))
    total = sum(exp(subtract(x, shift)), axis, keepdims=True)
    out = add(log(total), shift)
    return (
        out if keepdims else core.reshape(out, reduced(out.shape, norm_axes(axis, x.ndim), False))
    )


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis`` (stable for scores of any size)."""
    x = as_node(x)
    return subtract(x, logsumexp(x, axis, keepdims=True))


def softmax(x, axis=-1):
    """exp(log_softmax(x)) along ``axis``."""
    return exp(log_softmax(x, axis))


# --- structure ---------------------------------------------------------------------------


def matmul(a, b):
    return linalg.matmul(as_node(a), as_node(b))


def transpose(x, axes=None):
    return layout.transpose(as_node(x), axes)


def reshape(x, shape):
    return core.reshape(as_node(x), shape)


def broadcast_to(x, shape):
    return core.broadcast_to(as_node(x), shape)


def pick(scores, labels):
    """``scores[i, labels[i]]`` for each row (last axis); labels must be int64 in [0, C)."""
    return label_ops.pick(as_node(scores), as_node(labels))


def one_hot(labels, num_classes, dtype="float64"):
    """Rows of ``num_classes`` zeros with a 1 at each label."""
    return label_ops.one_hot(as_node(labels), num_classes, dtype)


def stop_gradient(x):
    """``x`` whose derivative is taken to be zero."""
    return core.stop_gradient(as_node(x))


def concatenate(xs, axis=0):
    """``xs`` joined along an existing ``axis``; the other dims must agree.

    Named and fixed dims add up: ``(N, D)`` and ``(N, 1)`` along axis 1 give ``(N, D + 1)``.
    A number is a scalar that is broadcast to the others' shape with one entry along
    ``axis``: ``concatenate([X, 1.0], axis=1)`` appends a column of ones (the bias trick).
    """
    if isinstance(xs, Node) or not isinstance(xs, (list, tuple)):
        raise ArgumentError(f"concatenate takes a list of tensors, got {type(xs).__name__}")
    return layout.concatenate([as_node(x) for x in xs], axis)


def stack(xs, axis=0):
    """``xs`` (all of one shape) joined along a new ``axis``: n tensors of shape S give
    shape ``S[:axis] + (n,) + S[axis:]``."""
    if isinstance(xs, Node) or not isinstance(xs, (list, tuple)) or not xs:
        raise ArgumentError("stack takes a non-empty list of tensors")
    nodes = [as_node(x) for x in xs]
    shape = nodes[0].shape
    if any(n.shape != shape for n in nodes):
        raise ShapeError(
            "stack needs tensors of one shape, got " + ", ".join(fmt(n.shape) for n in nodes)
        )
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ArgumentError(f"stack needs an int axis, got {axis!r}")
    (at,) = norm_axes(axis, len(shape) + 1)
    new = shape[:at] + (1,) + shape[at:]
    return layout.concatenate([core.reshape(n, new) for n in nodes], at)


def getitem(x: Node, index) -> Node:
    """NumPy's basic indexing: ints (negative from the end), slices with steps and negative
    bounds, ``None`` (a new axis of 1) and one ``...``.  ``x[0]``, ``x[:, 1:3]``, ``x[::-1]``,
    ``x[..., None]``.  The gradient scatters into zeros.  On a named dim the window is an
    expression (``x[1:]`` of ``N`` rows has ``N - 1``) that must fit at call time."""
    index = index if isinstance(index, tuple) else (index,)
    for item in index:
        ok = (
            item is None
            or item is Ellipsis
            or isinstance(item, slice)
            or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))
        )
        if not ok:
            raise ArgumentError(
                f"indexing supports ints, slices, None and '...', got {item!r} in {index!r}"
            )
    if [i is Ellipsis for i in index].count(True) > 1:
        raise ArgumentError(f"an index can have only one '...', got {index!r}")
    if Ellipsis not in index:
        index = index + (Ellipsis,)
    at = index.index(Ellipsis)
    n_rest = x.ndim - len([i for i in index if i is not None and i is not Ellipsis])
    if n_rest < 0:
        raise ArgumentError(f"too many indices in {index!r} for {x.ndim} dims")
    expanded = index[:at] + (slice(None),) * n_rest + index[at + 1 :]
    starts, steps, window_shape, final = [], [], [], []
    axis = 0
    for item in expanded:
        if item is None:
            final.append(1)
            continue
        start, step, count = layout.window(x.shape[axis], item, axis)
        starts.append(start)
        steps.append(step)
        window_shape.append(count)
        if isinstance(item, slice):
            final.append(count)
        axis += 1
    window = layout.slice_(x, starts, steps, window_shape)
    return core.reshape(window, tuple(final))


# --- operators on tensors ----------------------------------------------------------------
# Attached here, next to their meaning, so that ir/ depends on nothing above it.

Node.__add__ = add
Node.__radd__ = lambda self, other: add(other, self)
Node.__sub__ = subtract
Node.__rsub__ = lambda self, other: subtract(other, self)
Node.__mul__ = multiply
Node.__rmul__ = lambda self, other: multiply(other, self)
Node.__truediv__ = divide
Node.__rtruediv__ = lambda self, other: divide(other, self)
Node.__pow__ = power
Node.__rpow__ = lambda self, other: power(other, self)
Node.__neg__ = negative
Node.__pos__ = lambda self: self
Node.__matmul__ = matmul
Node.__rmatmul__ = lambda self, other: matmul(other, self)
Node.__lt__ = less
Node.__le__ = less_equal
Node.__gt__ = greater
Node.__ge__ = greater_equal
Node.__getitem__ = getitem
Node.__abs__ = abs
Node.T = property(transpose)
# the NumPy methods users reach for; each is the function of the same name
Node.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
Node.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)
Node.max = lambda self, axis=None, keepdims=False: max(self, axis, keepdims)
Node.argmax = lambda self, axis=None: argmax(self, axis)
Node.var = lambda self, axis=None, keepdims=False, ddof=0: var(self, axis, keepdims, ddof)
Node.std = lambda self, axis=None, keepdims=False, ddof=0: std(self, axis, keepdims, ddof)
Node.clip = lambda self, lo, hi: clip(self, lo, hi)


def _method_reshape(self, *shape):
    """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``, as in NumPy."""
    return reshape(self, shape[0] if len(shape) == 1 else shape)


Node.reshape = _method_reshape
