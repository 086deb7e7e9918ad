"""Ops that move values without computing new ones: transpose, basic slicing, the scatter
that is its adjoint, and concatenate.

Slicing follows NumPy's basic indexing (``x[1:]``, ``x[::-2]``, ``x[-1]``), built by
``api.getitem`` from :func:`slice_` (strided windows) and ``reshape`` (integer indices drop
an axis, ``None`` adds one).  On an int dim the window is NumPy's, computed when the graph
is built; on a named dim it is an expression (``x[1:]`` of ``N`` rows has ``N - 1``) and the
window must lie inside the dim at call time, which the compiled function checks (the op's
``requires`` fact) before any kernel runs.  The adjoint of a slice scatters into zeros.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import ArgumentError, DTypeError, ShapeError
from ..ir import Node, intern
from ..ir import dtypes as dt
from ..ir.op import Op
from ..ir.shapes import Dim, as_expr, dim_of, fmt, is_named
from .core import broadcast_to, ew
from .elementwise import sym

# --- transpose ---------------------------------------------------------------------------


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
    if x.op is TRANSPOSE:
        inner = x.attr("perm")
        return transpose(x.inputs[0], tuple(inner[p] for p in perm))
    shape = tuple(x.shape[p] for p in perm)
    return intern(TRANSPOSE, (x,), {"perm": perm}, shape, x.dtype)


TRANSPOSE = Op(
    "transpose",
    vjp=lambda node, g: (transpose(g, tuple(int(i) for i in np.argsort(node.attr("perm")))),),
    rebuild=lambda node, inputs: transpose(inputs[0], node.attr("perm")),
    fresh=False,  # a view
    moves_values=True,
)

# --- strided windows ---------------------------------------------------------------------


def window(length: Dim, item, axis: int) -> tuple[Dim, int, Dim]:
    """``(start, step, size)`` of the slice or integer ``item`` on an axis of ``length``.

    An integer index is a window of size 1 (the caller drops the axis).
    """
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        i = int(item)
        if not is_named(length):
            if not -length <= i < length:
                raise ShapeError(f"index {i} is out of range for axis {axis} of size {length}")
            return i % length, 1, 1
        return dim_of(as_expr(length) + i if i < 0 else i), 1, 1
    parts = (item.start, item.stop, item.step)
    if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
        raise ArgumentError(f"slice bounds must be ints or None, got {item!r}")
    if item.step == 0:
        raise ArgumentError("slice step cannot be zero")
    if not is_named(length):
        r = range(*item.indices(length))
        return (r.start if len(r) else 0), r.step, len(r)
    step = 1 if item.step is None else int(item.step)
    n = as_expr(length)

    def bound(b, default):
        if b is None:
            return default
        return n + int(b) if b < 0 else sp.Integer(int(b))

    if step > 0:
        start, stop = bound(item.start, sp.Integer(0)), bound(item.stop, n)
        count = stop - start if step == 1 else sp.floor((stop - start + step - 1) / step)
    else:
        start, stop = bound(item.start, n - 1), bound(item.stop, sp.Integer(-1))
        count = sp.floor((start - stop - step - 1) / -step)
    return dim_of(start), step, dim_of(count)


def slice_(x: Node, starts, steps, shape) -> Node:
    """The window of ``x`` with per-axis ``starts``, ``steps`` and result ``shape``."""
    starts, steps, shape = tuple(starts), tuple(steps), tuple(shape)
    if shape == x.shape and all(s == 0 for s in starts) and all(k == 1 for k in steps):
        return x
    attrs = {"starts": starts, "steps": steps, "shape": shape}  # the shape is part of the key
    return intern(SLICE, (x,), attrs, shape, x.dtype)


def _window_requires(node, length_shape, out_shape):
    """The windows of a slice (or its scatter) lie inside the dims they index."""
    need = []
    for d, start, step, count in zip(
        length_shape, node.attr("starts"), node.attr("steps"), out_shape
    ):
        if not (is_named(d) or is_named(start) or is_named(count)):
            continue  # all ints: checked when the graph was built
        first, last = as_expr(start), as_expr(start) + step * (as_expr(count) - 1)
        low, high = (first, last) if step > 0 else (last, first)
        for expr in (low, as_expr(d) - 1 - high):
            bound = dim_of(expr)
            if is_named(bound):
                need.append((bound, 0, f"a slice of a dim of size {d} must lie inside it"))
    return tuple(need)


SLICE = Op(
    "slice",
    vjp=lambda node, g: (
        slice_scatter(g, node.attr("starts"), node.attr("steps"), node.inputs[0].shape),
    ),
    rebuild=lambda node, inputs: slice_(
        inputs[0], node.attr("starts"), node.attr("steps"), node.shape
    ),
    fresh=False,  # NumPy's basic slicing is a view
    moves_values=True,
    requires=lambda node: _window_requires(node, node.inputs[0].shape, node.shape),
)


def slice_scatter(g: Node, starts, steps, shape) -> Node:
    """Zeros of ``shape`` with ``g`` written into the window (the adjoint of a slice)."""
    starts, steps, shape = tuple(starts), tuple(steps), tuple(shape)
    if shape == g.shape and all(s == 0 for s in starts) and all(k == 1 for k in steps):
        return g
    attrs = {"starts": starts, "steps": steps, "shape": shape}
    return intern(SLICE_SCATTER, (g,), attrs, shape, g.dtype)


SLICE_SCATTER = Op(
    "slice_scatter",
    vjp=lambda node, g: (slice_(g, node.attr("starts"), node.attr("steps"), node.inputs[0].shape),),
    rebuild=lambda node, inputs: slice_scatter(
        inputs[0], node.attr("starts"), node.attr("steps"), node.shape
    ),
    fresh=True,
    requires=lambda node: _window_requires(node, node.shape, node.inputs[0].shape),
)

# --- concatenate -------------------------------------------------------------------------


def concatenate(xs, axis: int = 0) -> Node:
    """``xs`` joined along ``axis``; the other dims must agree (a scalar is broadcast to
    the others' shape with one entry along ``axis``, so ``concatenate([X, 1.0], axis=1)``
    appends a column of ones).  Along ``axis`` the sizes add up: ``(N, D)`` and ``(N, 1)``
    give ``(N, D + 1)``."""
    xs = list(xs)
    if not xs:
        raise ArgumentError("concatenate needs at least one tensor")
    ranked = [x for x in xs if x.ndim]
    if not ranked:
        raise ShapeError("concatenate needs at least one tensor with a dim")
    ndim = ranked[0].ndim
    if not isinstance(axis, int) or isinstance(axis, bool) or not -ndim <= axis < ndim:
        raise ArgumentError(f"axis {axis!r} is out of range for {ndim} dims")
    axis %= ndim
    like = ranked[0].shape[:axis] + (1,) + ranked[0].shape[axis + 1 :]
    xs = [broadcast_to(x, like) if x.ndim == 0 else x for x in xs]
    for x in xs:
        if x.ndim != ndim or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis
        ):
            raise ShapeError(
                f"concatenate along axis {axis}: shapes "
                + ", ".join(fmt(x.shape) for x in xs)
                + " differ in another axis"
            )
    dtypes = {x.dtype for x in xs}
    if len(dtypes) > 1:
        if not all(dt.is_float(d) for d in dtypes):
            raise DTypeError(f"concatenate needs one dtype or floats only, got {sorted(dtypes)}")
        dtype = dt.result_float(dtypes)
        xs = [x if x.dtype == dtype else ew(sym(0), [x], dtype) for x in xs]
    if len(xs) == 1:
        return xs[0]
    total = dim_of(sum((as_expr(x.shape[axis]) for x in xs), start=sp.Integer(0)))
    shape = xs[0].shape[:axis] + (total,) + xs[0].shape[axis + 1 :]
    return intern(CONCATENATE, tuple(xs), {"axis": axis}, shape, xs[0].dtype)


def offsets(node: Node) -> list[Dim]:
    """Where each input of a concatenate starts along its axis."""
    axis, at, out = node.attr("axis"), sp.Integer(0), []
    for x in node.inputs:
        out.append(dim_of(at))
        at += as_expr(x.shape[axis])
    return out


def _vjp_concatenate(node, g):
    axis, out = node.attr("axis"), []
    for x, start in zip(node.inputs, offsets(node)):
        starts = tuple(start if i == axis else 0 for i in range(x.ndim))
        out.append(slice_(g, starts, (1,) * x.ndim, x.shape))
    return tuple(out)


CONCATENATE = Op(
    "concatenate",
    vjp=_vjp_concatenate,
    rebuild=lambda node, inputs: concatenate(inputs, node.attr("axis")),
    fresh=True,
)
