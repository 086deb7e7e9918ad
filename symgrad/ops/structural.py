"""Structural ops: the closed set of non-elementwise ops.

Each op has here its constructor (argument checks and shape rule) and its vector-Jacobian
rule in :data:`VJP`.  A VJP rule gets the node and the adjoint ``g`` of its output and
returns one adjoint per input (``None`` where no gradient flows); it builds graph nodes,
never numbers.  Each backend has one lowering per op; ``tests/test_ops.py`` walks the table.

Constructors apply local identities (reshape to the same shape is the input, a transpose of
a transpose is one transpose, ...) so that the simplifier, which rebuilds graphs through
these constructors, gets them for free.
"""

from __future__ import annotations

import hashlib

import numpy as np
import sympy as sp

from ..errors import ArgumentError, DTypeError, ShapeError
from ..ir import Node, intern
from ..ir import dtypes as dt
from ..ir.shapes import Shape, broadcast, fmt, normalize, reduced
from ..ir.shapes import axes as norm_axes
from ..ir.shapes import reshape as check_reshape
from .elementwise import (
    Const,
    as_number,
    boolean_as_number,
    constant,
    ew,
    is_constant,
    partial,
    sym,
)


class ConstArray:
    """A NumPy array as a hashable node attribute (hashed and compared by content)."""

    def __init__(self, array: np.ndarray):
        self.array = np.array(array)  # a private copy: later changes by the caller do not leak
        self.array.setflags(write=False)
        self.key = (
            self.array.dtype.str,
            self.array.shape,
            hashlib.sha1(self.array.tobytes()).hexdigest(),
        )

    @property
    def digest_text(self) -> str:
        return repr(self.key)

    def __eq__(self, other):
        return isinstance(other, ConstArray) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return np.array2string(self.array, threshold=6, precision=4).replace("\n", "")


# --- leaves ------------------------------------------------------------------------------


def input_(name: str, shape, dtype="float64") -> Node:
    if not isinstance(name, str) or not name.isidentifier():
        raise ArgumentError(f"a tensor name must be an identifier, got {name!r}")
    shape = normalize(shape, f"shape of tensor {name!r}")
    dtype = dt.check(dtype)
    return intern("input", (), {"name": name, "shape": shape, "dtype": dtype}, shape, dtype)


def const(value) -> Node:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ArgumentError(f"cannot use {value!r} as a constant array: {exc}") from None
    if array.dtype.kind == "f":
        array = array.astype(np.float32 if array.dtype == np.float32 else np.float64)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    elif array.dtype.kind != "b":
        raise DTypeError(f"cannot use an array of dtype {array.dtype} as a constant")
    if array.ndim == 0 and array.dtype.kind in "fiu":
        return scalar(array.item(), "float64" if array.dtype.kind != "f" else array.dtype.name)
    return intern("const", (), {"value": ConstArray(array)}, array.shape, array.dtype.name)


def scalar(value, dtype="float64") -> Node:
    """A scalar constant of ``dtype``: folded into formulas, or kept as a value if it is not
    finite in ``dtype`` (1e200 as float32 is inf, as NumPy rounds it)."""
    if isinstance(value, (float, np.floating)) and dtype in ("float64", "float32"):
        with np.errstate(over="ignore"):
            rounded = np.asarray(value, dtype=dtype)
        if not np.isfinite(rounded):
            return _opaque(float(rounded), dtype)
    return constant(value, dtype)


def opaque(scalar: Node) -> Node:
    """A scalar constant that formulas read as a value instead of folding it in."""
    value = as_number(scalar)
    return _opaque(value.value if isinstance(value, Const) else float(value), scalar.dtype)


def _opaque(value: float, dtype: str) -> Node:
    array = np.asarray(value, dtype=dtype)
    return intern("const", (), {"value": ConstArray(array)}, (), dtype)


def dim(name: str, dtype="float64") -> Node:
    """The run-time size of the named dim ``name``, as a scalar of ``dtype``."""
    return intern("dim", (), {"name": name, "dtype": dtype}, (), dtype)


def size(dims: Shape, dtype="float64") -> Node:
    """The number of elements of a shape with these dims (a scalar node)."""
    n = int(np.prod([d for d in dims if isinstance(d, int)]))
    names = [dim(d, dtype) for d in dims if isinstance(d, str)]
    expr = sp.Integer(n) * sp.Mul(*(sym(i) for i in range(len(names))))
    return ew(expr, names, dtype) if names else constant(n, dtype)


# --- shape manipulation ------------------------------------------------------------------


def reshape(x: Node, shape) -> Node:
    shape = check_reshape(x.shape, tuple(shape) if isinstance(shape, (tuple, list)) else (shape,))
    if shape == x.shape:
        return x
    if x.op == "reshape":
        return reshape(x.inputs[0], shape)
    if is_constant(x) or x.op == "broadcast_to" and x.inputs[0].shape == ():
        return broadcast_to(x.inputs[0] if x.op == "broadcast_to" else x, shape)
    return intern("reshape", (x,), {"shape": shape}, shape, x.dtype)


def transpose(x: Node, perm=None) -> Node:
    if perm is None:
        perm = tuple(reversed(range(x.ndim)))
    elif not isinstance(perm, (tuple, list)) or not all(isinstance(p, int) for p in perm):
        raise ArgumentError(f"transpose axes must be a tuple of ints, got {perm!r}")
    perm = tuple(perm)
    if sorted(perm) != list(range(x.ndim)):
        raise ArgumentError(f"transpose axes {perm} are not a permutation of {x.ndim} dims")
    if perm == tuple(range(x.ndim)):
        return x
    if x.op == "transpose":
        inner = x.attr("perm")
        return transpose(x.inputs[0], tuple(inner[p] for p in perm))
    shape = tuple(x.shape[p] for p in perm)
    return intern("transpose", (x,), {"perm": perm}, shape, x.dtype)


def broadcast_to(x: Node, shape) -> Node:
    shape = normalize(shape, "broadcast target")
    if broadcast(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast {fmt(x.shape)} to {fmt(shape)}")
    if shape == x.shape:
        return x
    if x.op == "broadcast_to":
        return broadcast_to(x.inputs[0], shape)
    if x.op == "reshape" and x.shape and all(d == 1 for d in x.shape):
        return broadcast_to(reshape(x.inputs[0], ()), shape)  # one value, whatever its dims
    return intern("broadcast_to", (x,), {"shape": shape}, shape, x.dtype)


def expand(g: Node, axes: tuple[int, ...], keepdims: bool) -> Node:
    """Put back the reduced ``axes`` as size-1 dims (the inverse of keepdims=False)."""
    if keepdims or not axes:
        return g
    shape = list(g.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(g, tuple(shape))


def unbroadcast(g: Node, shape: Shape) -> Node:
    """Sum ``g`` down to ``shape``: the adjoint of broadcasting ``shape`` to ``g.shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    g = reduce_sum(g, tuple(range(lead)))
    kept = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return reshape(reduce_sum(g, kept, keepdims=True), shape)


# --- reductions --------------------------------------------------------------------------


def _reduced(x: Node, axes, keepdims: bool) -> Shape:
    return reduced(x.shape, axes, keepdims)


def _numeric(x: Node) -> Node:
    """Booleans as 1.0 / 0.0, so that reductions count and compare numbers."""
    return ew(boolean_as_number(sym(0)), [x], "float64") if x.dtype == "bool" else x


def reduce_sum(x: Node, axis=None, keepdims: bool = False) -> Node:
    axes = norm_axes(axis, x.ndim)
    x = _numeric(x)
    if not axes:
        return x
    if is_constant(x, 0):
        return broadcast_to(constant(0, x.dtype), _reduced(x, axes, keepdims))
    if all(x.shape[a] == 1 for a in axes):
        return reshape(x, _reduced(x, axes, keepdims))
    if x.op == "broadcast_to" and dt.is_float(x.dtype):
        # Summing copies made by a broadcast is a multiplication by their count.
        y = x.inputs[0]
        lead = x.ndim - y.ndim
        made = [a for a in axes if a < lead or y.shape[a - lead] == 1]
        if made == list(axes):
            y_full = reshape(y, (1,) * lead + y.shape)
            kept = tuple(d if i not in axes else 1 for i, d in enumerate(x.shape))
            y_kept = (
                broadcast_to(y_full, broadcast(y_full.shape, kept))
                if y_full.shape != kept
                else y_full
            )
            count = size([x.shape[a] for a in axes], x.dtype)
            return reshape(ew(sym(0) * sym(1), [y_kept, count]), _reduced(x, axes, keepdims))
    return intern(
        "sum",
        (x,),
        {"axes": axes, "keepdims": bool(keepdims)},
        _reduced(x, axes, keepdims),
        x.dtype,
    )


def _inline(x: Node, depth: int = 4):
    """``x``'s formula with its elementwise producers substituted, down to ``depth`` levels.

    Returns ``(expr, leaves)``: the formula over the leaves (non-elementwise nodes).
    """
    expr, leaves, replace = x.attr("expr"), [], {}
    for i, node in enumerate(x.inputs):
        if node.op == "ew" and node.inputs and depth > 0:
            inner, inner_leaves = _inline(node, depth - 1)
            subs = {}
            for j, leaf in enumerate(inner_leaves):
                if leaf not in leaves:
                    leaves.append(leaf)
                subs[sym(j)] = _leaf(leaves.index(leaf))
            replace[sym(i)] = inner.xreplace(subs)
        else:
            if node not in leaves:
                leaves.append(node)
            replace[sym(i)] = _leaf(leaves.index(node))
    expr = expr.xreplace(replace)
    return expr.xreplace({_leaf(j): sym(j) for j in range(len(leaves))}), leaves


def _leaf(i: int) -> sp.Symbol:
    return sp.Symbol(f"_leaf{i}", real=True)


def sum_of_one_hot(node: Node) -> Node | None:
    """sum(one_hot(labels) * r, axis=-1) is r when r is constant along that axis (or None).

    A rewrite of the simplify pass, not of the constructor: it drops the labels from the
    graph, and the signature (built before optimisation) must still see and check them.

    Each row of a one-hot holds exactly one 1 (labels are checked to be in [0, C)), so the
    sum keeps the one term where it is 1.  This is what turns the derived softmax
    cross-entropy gradient into (softmax - onehot) / N.
    """
    if node.op != "sum" or node.inputs[0].op != "ew":
        return None
    x, keepdims = node.inputs[0], node.attr("keepdims")
    if node.attr("axes") != (x.ndim - 1,) or not _reads_one_hot(x):
        return None
    try:
        expr, leaves = _inline(x)
    except (RecursionError, TypeError, ValueError):  # SymPy out of its depth: keep the sum
        return None
    last = x.ndim - 1
    for k, h in enumerate(leaves):
        others = [i for j, i in enumerate(leaves) if j != k]
        # every other operand must be constant along the last axis (operands align right)
        if h.op != "one_hot" or any(i.ndim and i.shape[-1] != 1 for i in others):
            continue
        if sp.diff(expr, sym(k), 2) == 0 and expr.xreplace({sym(k): sp.Integer(0)}) == 0:
            inputs = [constant(0, x.dtype) if j == k else i for j, i in enumerate(leaves)]
            rest = ew(expr.xreplace({sym(k): sp.Integer(1)}), inputs, x.dtype)
            shape = x.shape[:last] + ((1,) if keepdims else ())
            return reshape(broadcast_to(rest, broadcast(rest.shape, x.shape[:last] + (1,))), shape)
    return None


def _reads_one_hot(x: Node, depth: int = 4) -> bool:
    return any(
        i.op == "one_hot" or (i.op == "ew" and depth > 0 and _reads_one_hot(i, depth - 1))
        for i in x.inputs
    )


def reduce_max(x: Node, axis=None, keepdims: bool = False) -> Node:
    axes = norm_axes(axis, x.ndim)
    x = _numeric(x)
    if not axes:
        return x
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"max over an axis of size 0 of {fmt(x.shape)} has no value")
    return intern(
        "max",
        (x,),
        {"axes": axes, "keepdims": bool(keepdims)},
        _reduced(x, axes, keepdims),
        x.dtype,
    )


def argmax_mask(x: Node, axes: tuple[int, ...]) -> Node:
    """True at the first maximal element along ``axes`` (row-major order), else False."""
    return intern("argmax_mask", (x,), {"axes": axes}, x.shape, "bool")


# --- linear algebra ----------------------------------------------------------------------


def matmul(a: Node, b: Node) -> Node:
    for side, x in (("left", a), ("right", b)):
        if x.ndim not in (1, 2):
            raise ShapeError(
                f"matmul takes 1-D or 2-D operands; the {side} one has shape {fmt(x.shape)}"
            )
        if not dt.is_float(x.dtype):
            raise DTypeError(f"matmul needs float operands; the {side} one is {x.dtype}")
    k_a, k_b = a.shape[-1], b.shape[0]
    if k_a != k_b:
        raise ShapeError(
            f"matmul of {fmt(a.shape)} and {fmt(b.shape)}: inner dims {k_a} and {k_b} differ"
        )
    shape = a.shape[:-1] + b.shape[1:]
    dtype = dt.result_float([a.dtype, b.dtype])
    if is_constant(a, 0) or is_constant(b, 0):
        return broadcast_to(constant(0, dtype), shape)
    return intern("matmul", (a, b), {}, shape, dtype)


# --- integer labels ----------------------------------------------------------------------


def _check_labels(labels: Node, what: str) -> None:
    if labels.dtype != "int64":
        raise DTypeError(f"{what} needs int64 labels, got {labels.dtype} {labels!r}")


def pick(scores: Node, labels: Node) -> Node:
    """``scores[i..., labels[i...]]``: one entry of the last axis per row."""
    _check_labels(labels, "pick")
    if scores.ndim < 1 or scores.shape[:-1] != labels.shape:
        raise ShapeError(
            f"pick needs labels of shape scores.shape[:-1]; got scores {fmt(scores.shape)} "
            f"and labels {fmt(labels.shape)}"
        )
    return intern("pick", (scores, labels), {}, labels.shape, scores.dtype)


def one_hot(labels: Node, num_classes, dtype="float64") -> Node:
    """1.0 at ``[..., labels[...]]`` along a new last axis of size ``num_classes``."""
    _check_labels(labels, "one_hot")
    (num_classes,) = normalize((num_classes,), "num_classes")
    dtype = dt.check(dtype)
    return intern(
        "one_hot",
        (labels,),
        {"num_classes": num_classes, "dtype": dtype},
        labels.shape + (num_classes,),
        dtype,
    )


def stop_gradient(x: Node) -> Node:
    """The value of ``x`` with a zero derivative (removed before lowering)."""
    if x.op in ("const", "dim") or is_constant(x):  # nothing to stop
        return x
    return intern("stop_gradient", (x,), {}, x.shape, x.dtype)


# --- vector-Jacobian rules ---------------------------------------------------------------


def _vjp_sum(node, g):
    (x,) = node.inputs
    return (broadcast_to(expand(g, node.attr("axes"), node.attr("keepdims")), x.shape),)


def _vjp_max(node, g):
    # The gradient goes to the first maximal element only (a subgradient, as in PyTorch).
    (x,) = node.inputs
    mask = argmax_mask(x, node.attr("axes"))
    g = expand(g, node.attr("axes"), node.attr("keepdims"))
    return (ew(sp.Piecewise((sym(1), sym(0)), (0, True)), [mask, g]),)


def _vjp_matmul(node, g):
    a, b = node.inputs
    if a.ndim == 2 and b.ndim == 2:
        return matmul(g, transpose(b)), matmul(transpose(a), g)
    if a.ndim == 1 and b.ndim == 2:
        return matmul(b, g), ew(
            sym(0) * sym(1), [reshape(a, a.shape + (1,)), reshape(g, (1,) + g.shape)]
        )
    if a.ndim == 2:  # b is 1-D
        return ew(
            sym(0) * sym(1), [reshape(g, g.shape + (1,)), reshape(b, (1,) + b.shape)]
        ), matmul(transpose(a), g)
    return ew(sym(0) * sym(1), [g, b]), ew(sym(0) * sym(1), [g, a])


def _vjp_pick(node, g):
    scores, labels = node.inputs
    hot = one_hot(labels, scores.shape[-1], g.dtype)
    return ew(sym(0) * sym(1), [hot, reshape(g, g.shape + (1,))]), None


def _vjp_transpose(node, g):
    return (transpose(g, tuple(int(i) for i in np.argsort(node.attr("perm")))),)


def _vjp_ew(node, g):
    """Chain rule for any formula: adjoint_i = g * d expr/d x_i, summed down to x_i's shape."""
    expr, inputs, k = node.attr("expr"), node.inputs, len(node.inputs)
    out = []
    for i, x in enumerate(inputs):
        if not dt.is_float(x.dtype):
            out.append(None)
            continue
        deriv, uses_output = partial(expr, i, k)
        if deriv == 0:
            out.append(None)
            continue
        if uses_output:  # d/dx written over the saved output (sigmoid' = y*(1 - y))
            contribution = ew(sym(1) * deriv, [node, g])
        else:
            contribution = ew(sym(k) * deriv, [*inputs, g])
        out.append(unbroadcast(contribution, x.shape))
    return tuple(out)


VJP = {
    "ew": _vjp_ew,
    "input": lambda node, g: (),
    "const": lambda node, g: (),
    "dim": lambda node, g: (),
    "sum": _vjp_sum,
    "max": _vjp_max,
    "argmax_mask": lambda node, g: (None,),
    "matmul": _vjp_matmul,
    "transpose": _vjp_transpose,
    "reshape": lambda node, g: (reshape(g, node.inputs[0].shape),),
    "broadcast_to": lambda node, g: (unbroadcast(g, node.inputs[0].shape),),
    "pick": _vjp_pick,
    "one_hot": lambda node, g: (None,),
    "stop_gradient": lambda node, g: (None,),
}


# --- rebuilding a node from its op, new inputs and attributes ----------------------------

BUILD = {
    "input": lambda node, inputs: node,
    "const": lambda node, inputs: node,
    "dim": lambda node, inputs: node,
    "ew": lambda node, inputs: ew(node.attr("expr"), inputs, node.dtype),
    "sum": lambda node, inputs: reduce_sum(inputs[0], node.attr("axes"), node.attr("keepdims")),
    "max": lambda node, inputs: reduce_max(inputs[0], node.attr("axes"), node.attr("keepdims")),
    "argmax_mask": lambda node, inputs: argmax_mask(inputs[0], node.attr("axes")),
    "matmul": lambda node, inputs: matmul(*inputs),
    "transpose": lambda node, inputs: transpose(inputs[0], node.attr("perm")),
    "reshape": lambda node, inputs: reshape(inputs[0], node.shape),
    "broadcast_to": lambda node, inputs: broadcast_to(inputs[0], node.shape),
    "pick": lambda node, inputs: pick(*inputs),
    "one_hot": lambda node, inputs: one_hot(inputs[0], node.attr("num_classes"), node.dtype),
    "stop_gradient": lambda node, inputs: stop_gradient(inputs[0]),
}


def rebuild(node: Node, inputs) -> Node:
    """The node with the same op and attributes over ``inputs`` (identities applied)."""
    if all(a is b for a, b in zip(node.inputs, inputs)):
        return node
    return BUILD[node.op](node, list(inputs))
