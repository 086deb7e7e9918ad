"""The core ops every other op is built from: leaves, elementwise nodes, broadcasting,
reshape and sum.

They are one module because their rules refer to each other: an elementwise node over
inputs of different shapes is broadcast, the adjoint of a broadcast is a sum, the adjoint
of a sum is a broadcast, and summing a broadcast is a multiplication.  Every other op
module (``layout``, ``reductions``, ``linalg``, ``labels``) builds on this one, and this one
imports none of them.

Each op is one :class:`~symgrad.ir.op.Op` declared after its constructor: its chain-rule
rule, its rebuild, and its facts (docs/design.md, "The op object").  A VJP rule gets the
node and the adjoint ``g`` of its output and returns one adjoint per input (``None`` where
no gradient flows); it builds graph nodes, never numbers.

Constructors apply local identities (reshape to the same shape is the input, summing a
broadcast is a multiplication, ...) so that the simplifier, which rebuilds graphs through
these constructors, gets them for free.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import sympy as sp

from ..errors import ArgumentError, DTypeError, ShapeError
from ..ir import Node, intern
from ..ir import dtypes as dt
from ..ir.op import Op
from ..ir.shapes import Shape, bindings, broadcast, fmt, is_named, normalize, reduced, size_expr
from ..ir.shapes import axes as norm_axes
from ..ir.shapes import reshape as check_reshape
from .elementwise import (
    Const,
    Paren,
    boolean_as_number,
    constant_expr,
    is_number,
    partial,
    result_dtype,
    spliced,
    sym,
    undefined,
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

    def __reduce__(self):  # rebuilt from the array: read-only again, the same key
        return ConstArray, (self.array,)


# --- leaves ------------------------------------------------------------------------------


def _leaf_vjp(node, g):
    return ()


def _same(node, inputs):
    return node


def input_(name: str, shape, dtype="float64") -> Node:
    if not isinstance(name, str) or not name.isidentifier():
        raise ArgumentError(f"a tensor name must be an identifier, got {name!r}")
    shape = normalize(shape, f"shape of tensor {name!r}")
    dtype = dt.check(dtype)
    return intern(INPUT, (), {"name": name, "shape": shape, "dtype": dtype}, shape, dtype)


INPUT = Op("input", vjp=_leaf_vjp, rebuild=_same, fresh=False, leaf="input")


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
    return intern(CONST, (), {"value": ConstArray(array)}, array.shape, array.dtype.name)


CONST = Op("const", vjp=_leaf_vjp, rebuild=_same, fresh=False, leaf="const")


def scalar(value, dtype="float64") -> Node:
    """A scalar constant of ``dtype``: folded into formulas, or kept as a value if it is not
    finite in ``dtype`` (1e200 as float32 is inf, as NumPy rounds it)."""
    # keyed by type and repr too: 0.0 and -0.0, or 1 and True, are equal keys
    return _scalar(type(value), repr(value), value, dtype)


@lru_cache(maxsize=1 << 10)  # the numbers of a program come back at every step of a chain
def _scalar(kind, text, value, dtype) -> Node:
    if isinstance(value, (float, np.floating)) and dtype in dt.FLOATS:
        with np.errstate(over="ignore"):
            rounded = np.asarray(value, dtype=dtype)
        if not np.isfinite(rounded):
            return _opaque(float(rounded), dtype)
    return constant(value, dtype)


def opaque(scalar: Node) -> Node:
    """A scalar constant that formulas read as a value instead of folding it in."""
    return _opaque(_value(scalar), scalar.dtype)


def _value(scalar: Node) -> float:
    """The value of a scalar constant node, as a Python number."""
    value = as_number(scalar)
    return value.value if isinstance(value, Const) else float(value)


def _opaque(value: float, dtype: str) -> Node:
    array = np.asarray(value, dtype=dtype)
    return intern(CONST, (), {"value": ConstArray(array)}, (), dtype)


def dim(name: str, dtype="float64") -> Node:
    """The run-time size of the named dim ``name``, as a scalar of ``dtype``."""
    return intern(DIM, (), {"name": name, "dtype": dtype}, (), dtype)


DIM = Op("dim", vjp=_leaf_vjp, rebuild=_same, fresh=False, leaf="dim")


def size(dims: Shape, dtype="float64") -> Node:
    """The number of elements of a shape with these dims (a scalar node)."""
    expr, names = size_expr(dims)
    if not names:
        return constant(int(expr), dtype)
    symbols = {sp.Symbol(n, integer=True, nonnegative=True): sym(i) for i, n in enumerate(names)}
    return ew(expr.xreplace(symbols), [dim(n, dtype) for n in names], dtype)


# --- elementwise nodes -------------------------------------------------------------------


def ew(expr, inputs, dtype: str | None = None) -> Node:
    """The canonical elementwise node computing ``expr`` over ``inputs``.

    Canonical means: scalar constants folded into the formula, repeated inputs merged,
    unused inputs dropped, inputs in canonical order (``Node.order_key``), and ``x0`` over
    one input of the same shape and dtype is that input.  So ``ew(x0 + x1, (a, b))`` and
    ``ew(x0 + x1, (b, a))`` are one node.  The result has the broadcast shape of all given
    inputs, even those the formula no longer uses (``0 * x`` keeps the shape of ``x``).
    """
    inputs = list(inputs)
    if not isinstance(expr, sp.Basic):
        expr = sp.sympify(expr)
    shape = broadcast(*[i.shape for i in inputs])
    dtype = dtype or result_dtype(expr, inputs)
    if _folding_narrows(dtype, inputs):
        # A comparison of float32 values with a float64 constant computes in float64, as
        # in NumPy (v32 > np.float64(0.1) is True at 0.1f).  Folded in, the constant would
        # be a literal of a float32 comparison; read as a value, the node keeps the float64
        # operand that makes every backend convert (dtypes.widens).
        return ew(expr, [opaque(n) if _is_scalar(n) else n for n in inputs], dtype)

    replace, kept, folded_any = {}, [], False
    free, _ = _facts(expr)
    for i, node in enumerate(inputs):
        if node.op is EW and not node.inputs:  # a scalar constant: fold it in
            replace[sym(i)] = node.attr("expr")
            folded_any = True
        elif sym(i) in free:
            kept.append(node)
    unique = set(kept)
    merged = len(unique) < len(kept)
    kept = sorted(unique, key=lambda n: n.order_key)
    position = {node: sym(j) for j, node in enumerate(kept)}
    for i, node in enumerate(inputs):
        if sym(i) not in replace:
            replace[sym(i)] = position.get(node, sp.S.Zero)
    if all(new is old for old, new in replace.items() if old in free):
        # canonical already (fusion numbers what it composes so): xreplace would rebuild
        # every term of a long formula for nothing
        folded = expr
    else:
        try:
            folded = _replaced(expr, tuple(replace.items()))
        except RecursionError:
            raise ArgumentError(f"the formula {expr} is too deeply nested to build") from None
    if _facts(folded)[1]:
        if _facts(expr)[1] or not _has_constants(inputs):
            # undefined whatever the inputs (log(0) in a branch, say): nothing to print
            raise ArgumentError(f"the formula {expr} is undefined (it divides by zero)")
        # Folding a constant in would divide by zero (SymPy's zoo/nan); keep the constants
        # as values instead, so the backends compute NumPy's inf or nan.
        return ew(expr, [opaque(n) if _is_scalar(n) else n for n in inputs], dtype)
    # a grouping at the root (g * Paren(2*x) with g folded to 1) groups nothing: the
    # node's value is computed on its own anyway
    expr = folded.args[0] if isinstance(folded, Paren) else folded
    # only merging or folding can make a kept input unused: renaming cancels nothing
    if (merged or folded_any) and kept and not set(position.values()) <= _facts(expr)[0]:
        # merging repeated inputs made one unused (where(c, x, x) is x): drop it too
        node = ew(expr, kept, dtype)
        return node if node.shape == shape else broadcast_to(node, shape)
    if folded_any and not kept and not is_number(expr):
        # a formula of constants only: its value as NumPy computes it in the node's dtype,
        # never SymPy's exact or unbounded arithmetic (1e-200 * 1e-200 is 0.0, not 1e-400)
        from . import numeric

        operands = [n.dtype for n in inputs] or [dtype]
        value = numeric.evaluate(expr, dtype, _computes_in(dtype, operands))
        return broadcast_to(scalar(value, dtype), shape)

    if len(kept) == 1 and kept[0].dtype == dtype and expr == sym(0):
        node = kept[0]
    else:
        # every input kept (the common case): the same shapes, so the same broadcast
        own = shape if len(kept) == len(inputs) else broadcast(*(k.shape for k in kept))
        node = intern(EW, tuple(kept), {"expr": expr, "dtype": dtype}, own, dtype)
    if node.shape != shape:
        node = broadcast_to(node, shape)
    return node


# The formulas of a chain's steps are the same few objects again and again (built by the
# same API calls and rules), so what ew() derives from a formula alone is cached.
@lru_cache(maxsize=1 << 12)
def _facts(expr) -> tuple[frozenset, bool]:
    """A formula's free symbols and whether it is undefined (each a walk of all of it)."""
    return frozenset(expr.free_symbols), undefined(expr)


@lru_cache(maxsize=1 << 12)
def _replaced(expr, replace: tuple):
    """``expr`` with the ``(symbol, value)`` pairs of ``replace`` substituted at once."""
    free = _facts(expr)[0]
    renames = {k: v for k, v in replace if k in free}
    values = set(renames.values())
    renaming = len(values) == len(renames) and all(isinstance(v, sp.Symbol) for v in values)
    if renaming and values.isdisjoint(free - renames.keys()):  # distinct names stay distinct
        return _renamed(expr, renames)
    return expr.xreplace(dict(replace))


def _renamed(expr, renames: dict):
    """``expr.xreplace(renames)`` for a renaming of its symbols to distinct symbols, but
    that a relation is not decided again.  SymPy left it undecided between these symbols,
    and every symbol has the same assumptions, so it is undecided after the renaming too;
    deciding it again costs SymPy's assumption system about a millisecond for each new pair
    of symbols (``x1 > x0`` where ``x0 > x1`` was), much of building a graph with a few
    comparisons.  Recursive, as ``xreplace``."""
    if expr in renames:
        return renames[expr]
    if not expr.args:
        return expr
    args, changed = [], False
    for a in expr.args:  # (a loop: a comprehension's frame would halve the depth it reaches)
        new = _renamed(a, renames) if isinstance(a, sp.Basic) else a
        changed |= new is not a
        args.append(new)
    if not changed:
        return expr
    if isinstance(expr, sp.core.relational.Relational):
        return expr.func(*args, evaluate=False)
    return expr.func(*args)


def _computes_in(dtype: str, operands) -> str:
    """The dtype a node of ``dtype`` over operands of dtypes ``operands`` computes in (a
    comparison computes in its operands' dtype)."""
    if dtype != "bool":
        return dtype
    kinds = [d for d in operands if d != "bool"]
    if kinds and all(d == "int64" for d in kinds):
        return "int64"
    return dt.result_float(kinds)


def _is_scalar(node: Node) -> bool:
    """Whether ``node`` is a scalar constant (an ``ew`` without inputs: folded into formulas)."""
    return node.op is EW and not node.inputs


def _has_constants(inputs) -> bool:
    """Whether any input is a scalar constant (folded into formulas)."""
    return any(_is_scalar(n) for n in inputs)


def _folding_narrows(dtype: str, inputs) -> bool:
    """Whether folding the scalar constants of ``inputs`` into a comparison would change
    what it computes: float32 values compared with a float64 constant that float32 does not
    hold exactly (0.1, not 0.5), where no other float64 value makes the comparison convert
    anyway.  Only a comparison's dtype can change: its result, bool, does not say, while an
    arithmetic formula computes in its result's dtype, whatever dtype its constants had.
    (The comparisons users build are one relation, so a constant exact in float32 compares
    alike in either dtype.)"""
    if dtype != "bool":
        return False
    values = [n.dtype for n in inputs if not _is_scalar(n)]
    if "float32" not in values or "float64" in values:
        return False
    return any(
        _is_scalar(n) and n.dtype == "float64" and not _exact_in_float32(_value(n))
        for n in inputs
    )


def _exact_in_float32(value: float) -> bool:
    with np.errstate(over="ignore"):  # 1e300 is inf in float32: not exact
        return float(np.float32(value)) == value


def constant(value, dtype: str = "float64") -> Node:
    """A scalar constant node."""
    return ew(constant_expr(value, dtype), (), dtype)


def is_constant(node: Node, value=None) -> bool:
    """Whether ``node`` is a scalar constant (broadcast or not), optionally equal to ``value``."""
    while node.op is BROADCAST_TO:
        node = node.inputs[0]
    if node.op is not EW or node.inputs:
        return False
    return value is None or node.attr("expr") == value


def is_formula(node: Node) -> bool:
    """Whether ``node`` is an elementwise node over at least one input (not a constant)."""
    return node.op is EW and bool(node.inputs)


def as_number(node: Node) -> sp.Expr:
    """The value of a scalar-constant node as a SymPy number."""
    while node.op is BROADCAST_TO:
        node = node.inputs[0]
    return node.attr("expr")


def _vjp_ew(node, g):
    """Chain rule for any formula: adjoint_i = g * d expr/d x_i, summed down to x_i's shape.

    The derivative is computed first, then multiplied by ``g`` (``Paren``): a flat product
    of three or more factors has no order of its own (SymPy orders them by the inputs'
    numbers, which optimisation changes, and the Numba backend by its variables' names),
    and ``(2*g)*x`` overflows where ``g*(2*x)`` does not."""
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
            contribution = ew(sym(1) * Paren(deriv), [node, g])
        else:
            contribution = ew(sym(k) * Paren(deriv), [*inputs, g])
        out.append(unbroadcast(contribution, x.shape))
    return tuple(out)


def _broadcast_binds(node):
    """A named dim of an input meeting a fixed size of the output is that size."""
    return tuple(pair for x in node.inputs for pair in bindings(x.shape, node.shape))


EW = Op(
    "ew",
    vjp=_vjp_ew,
    rebuild=lambda node, inputs: ew(node.attr("expr"), inputs, node.dtype),
    fresh=True,
    loop="map",
    binds=_broadcast_binds,
)


# --- broadcasting and reshaping ----------------------------------------------------------


def reshape(x: Node, shape) -> Node:
    shape = check_reshape(x.shape, tuple(shape) if isinstance(shape, (tuple, list)) else (shape,))
    if shape == x.shape:
        return x
    if x.op is RESHAPE:
        return reshape(x.inputs[0], shape)
    if is_constant(x) or x.op is BROADCAST_TO and x.inputs[0].shape == ():
        return broadcast_to(x.inputs[0] if x.op is BROADCAST_TO else x, shape)
    return intern(RESHAPE, (x,), {"shape": shape}, shape, x.dtype)


RESHAPE = Op(
    "reshape",
    vjp=lambda node, g: (reshape(g, node.inputs[0].shape),),
    rebuild=lambda node, inputs: reshape(inputs[0], node.shape),
    fresh=False,  # NumPy's reshape is a view where it can be
    moves_values=True,
    scalar_identity=True,
)


def broadcast_to(x: Node, shape) -> Node:
    shape = normalize(shape, "broadcast target")
    if broadcast(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast {fmt(x.shape)} to {fmt(shape)}")
    if shape == x.shape:
        return x
    if x.op is BROADCAST_TO:
        return broadcast_to(x.inputs[0], shape)
    if x.op is RESHAPE and x.shape and all(d == 1 for d in x.shape):
        return broadcast_to(reshape(x.inputs[0], ()), shape)  # one value, whatever its dims
    return intern(BROADCAST_TO, (x,), {"shape": shape}, shape, x.dtype)


BROADCAST_TO = Op(
    "broadcast_to",
    vjp=lambda node, g: (unbroadcast(g, node.inputs[0].shape),),
    rebuild=lambda node, inputs: broadcast_to(inputs[0], node.shape),
    fresh=True,  # a loop group writes it; NumPy's read-only broadcast is copied on the way out
    loop="map",
    moves_values=True,
    binds=_broadcast_binds,
)


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
    g = reduce_sum(g, kept, keepdims=True)
    if any(a != b for a, b in zip(g.shape, shape) if b != 1):
        return relabel(reshape(g, tuple(1 if b == 1 else a for a, b in zip(g.shape, shape))), shape)
    return reshape(g, shape)


def _relabelled(old: Shape, new: Shape):
    """The (named dim, size) pairs where ``old`` and ``new`` differ, or None if they differ
    otherwise (a relabelling renames only named dims bound to fixed sizes)."""
    if len(old) != len(new):
        return None
    pairs = []
    for a, b in zip(old, new):
        if a == b:
            continue
        if is_named(a) == is_named(b):
            return None
        pairs.append((a, b) if is_named(a) else (b, a))
    return tuple(pairs)


def relabel(x: Node, shape) -> Node:
    """``x`` under the dims ``shape``, which differ from its own only where broadcasting
    bound a named dim to a fixed size (``C`` and ``3``); the binding is checked at call time.
    The adjoint of a broadcast that bound a dim is a sum and a relabel."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    if _relabelled(x.shape, shape) is None:
        raise ShapeError(f"cannot relabel {fmt(x.shape)} as {fmt(shape)}")
    if x.op is RELABEL:
        return relabel(x.inputs[0], shape)
    return intern(RELABEL, (x,), {"shape": shape}, shape, x.dtype)


RELABEL = Op(
    "relabel",
    vjp=lambda node, g: (relabel(g, node.inputs[0].shape),),
    rebuild=lambda node, inputs: relabel(inputs[0], node.shape),
    fresh=False,  # the same array
    moves_values=True,
    binds=lambda node: _relabelled(node.inputs[0].shape, node.shape),
    scalar_identity=True,
)


# --- sum ---------------------------------------------------------------------------------


def numeric(x: Node) -> Node:
    """Booleans as 1.0 / 0.0, so that reductions count and compare numbers."""
    return ew(boolean_as_number(sym(0)), [x], "float64") if x.dtype == "bool" else x


def reduce_sum(x: Node, axis=None, keepdims: bool = False) -> Node:
    axes = norm_axes(axis, x.ndim)
    x = numeric(x)
    if not axes:
        return x
    out_shape = reduced(x.shape, axes, keepdims)
    if is_constant(x, 0):
        return broadcast_to(constant(0, x.dtype), out_shape)
    if all(x.shape[a] == 1 for a in axes):
        return reshape(x, out_shape)
    if x.op is BROADCAST_TO and dt.is_float(x.dtype):
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
            return reshape(ew(sym(0) * sym(1), [y_kept, count]), out_shape)
    return intern(SUM, (x,), {"axes": axes, "keepdims": bool(keepdims)}, out_shape, x.dtype)


def _vjp_sum(node, g):
    (x,) = node.inputs
    return (broadcast_to(expand(g, node.attr("axes"), node.attr("keepdims")), x.shape),)


SUM = Op(
    "sum",
    vjp=_vjp_sum,
    rebuild=lambda node, inputs: reduce_sum(inputs[0], node.attr("axes"), node.attr("keepdims")),
    fresh=True,
    loop="reduce",
    scalar_identity=True,
)


def _inline(x: Node, depth: int = 4):
    """``x``'s formula with its elementwise producers substituted, down to ``depth`` levels.

    Returns ``(expr, leaves)``: the formula over the leaves (non-elementwise nodes).
    """
    expr, leaves, replace = x.attr("expr"), [], {}
    for i, node in enumerate(x.inputs):
        if node.op is EW and node.inputs and depth > 0:
            inner, inner_leaves = _inline(node, depth - 1)
            subs = {}
            for j, leaf in enumerate(inner_leaves):
                if leaf not in leaves:
                    leaves.append(leaf)
                subs[sym(j)] = _leaf(leaves.index(leaf))
            replace[sym(i)] = spliced(inner.xreplace(subs))  # (as fusion splices it)
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
    if node.op is not SUM or node.inputs[0].op is not EW:
        return None
    x, keepdims = node.inputs[0], node.attr("keepdims")
    if node.attr("axes") != (x.ndim - 1,) or not _reads_hot_rows(x):
        return None
    try:
        expr, leaves = _inline(x)
    except (RecursionError, TypeError, ValueError):  # SymPy out of its depth: keep the sum
        return None
    last = x.ndim - 1
    for k, h in enumerate(leaves):
        others = [i for j, i in enumerate(leaves) if j != k]
        # every other operand must be constant along the last axis (operands align right)
        if not h.op.hot_rows or any(i.ndim and i.shape[-1] != 1 for i in others):
            continue
        if sp.diff(expr, sym(k), 2) == 0 and expr.xreplace({sym(k): sp.Integer(0)}) == 0:
            inputs = [constant(0, x.dtype) if j == k else i for j, i in enumerate(leaves)]
            rest = ew(expr.xreplace({sym(k): sp.Integer(1)}), inputs, x.dtype)
            shape = x.shape[:last] + ((1,) if keepdims else ())
            return reshape(broadcast_to(rest, broadcast(rest.shape, x.shape[:last] + (1,))), shape)
    return None


def _reads_hot_rows(x: Node, depth: int = 4) -> bool:
    """Whether ``x`` reads a one-hot within the ``depth`` levels that ``_inline`` sees."""
    return any(
        i.op.hot_rows or (i.op is EW and depth > 0 and _reads_hot_rows(i, depth - 1))
        for i in x.inputs
    )


# --- stop_gradient -----------------------------------------------------------------------


def stop_gradient(x: Node) -> Node:
    """The value of ``x`` with a zero derivative (removed before lowering)."""
    if x.op.leaf in ("const", "dim") or is_constant(x):  # nothing to stop
        return x
    return intern(STOP_GRADIENT, (x,), {}, x.shape, x.dtype)


STOP_GRADIENT = Op(
    "stop_gradient",
    vjp=lambda node, g: (None,),
    rebuild=lambda node, inputs: stop_gradient(inputs[0]),
    fresh=False,
    moves_values=True,
    scalar_identity=True,
    stops_gradient=True,
)
