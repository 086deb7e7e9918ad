"""Reductions other than sum (which is a core op): max, the mask of its first maximum, and
argmax.  Conventions: at ties the gradient of ``max`` goes to the first maximal element in
row-major order (a subgradient, as in PyTorch); ``argmax`` gives the first maximal index,
and a NaN counts as the maximum, as in NumPy.
"""

from __future__ import annotations

import sympy as sp

from ..errors import ArgumentError, ShapeError
from ..ir import Node, intern
from ..ir.op import Op
from ..ir.shapes import axes as norm_axes
from ..ir.shapes import fmt, is_named, reduced
from .core import ew, expand, numeric, reshape
from .elementwise import sym

_EMPTY_MAX = "the function takes a max over it (of nothing)"


def _nonempty(node):
    """The named dims a max-like reduction reads along: they must not be 0."""
    (x,) = node.inputs
    return tuple((d, 1, _EMPTY_MAX) for d in (x.shape[a] for a in node.attr("axes")) if is_named(d))


def _check_nonempty(x: Node, axes, what: str):
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"{what} over an axis of size 0 of {fmt(x.shape)} has no value")


def reduce_max(x: Node, axis=None, keepdims: bool = False) -> Node:
    axes = norm_axes(axis, x.ndim)
    x = numeric(x)
    if not axes:
        return x
    _check_nonempty(x, axes, "max")
    return intern(
        MAX,
        (x,),
        {"axes": axes, "keepdims": bool(keepdims)},
        reduced(x.shape, axes, keepdims),
        x.dtype,
    )


def _vjp_max(node, g):
    # The gradient goes to the first maximal element only (a subgradient, as in PyTorch).
    (x,) = node.inputs
    mask = argmax_mask(x, node.attr("axes"))
    g = expand(g, node.attr("axes"), node.attr("keepdims"))
    return (ew(sp.Piecewise((sym(1), sym(0)), (0, True)), [mask, g]),)


MAX = Op(
    "max",
    vjp=_vjp_max,
    rebuild=lambda node, inputs: reduce_max(inputs[0], node.attr("axes"), node.attr("keepdims")),
    fresh=True,
    loop="reduce",
    requires=_nonempty,
    scalar_identity=True,
)


def argmax_mask(x: Node, axes: tuple[int, ...]) -> Node:
    """True at the first maximal element along ``axes`` (row-major order), else False."""
    return intern(ARGMAX_MASK, (x,), {"axes": axes}, x.shape, "bool")


ARGMAX_MASK = Op(
    "argmax_mask",
    vjp=lambda node, g: (None,),
    rebuild=lambda node, inputs: argmax_mask(inputs[0], node.attr("axes")),
    fresh=True,
    requires=_nonempty,
)


def argmax(x: Node, axis=None) -> Node:
    """The index (int64) of the first maximum along ``axis``; ``None``: of the flattened x.

    A NaN counts as the maximum (its first index is returned), as in NumPy.  The result is
    not differentiable: ``grad`` raises if a gradient must flow through it.
    """
    x = numeric(x)
    if axis is not None and not isinstance(axis, int) or isinstance(axis, bool):
        # as NumPy: one axis or the flattened array (a tuple of axes has no single index)
        raise ArgumentError(f"argmax takes one axis (an int) or None, got {axis!r}")
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    (axis,) = norm_axes(axis, x.ndim)
    _check_nonempty(x, (axis,), "argmax")
    return intern(ARGMAX, (x,), {"axes": (axis,)}, reduced(x.shape, (axis,), False), "int64")


ARGMAX = Op(
    "argmax",
    vjp=None,  # integer-valued: no derivative
    rebuild=lambda node, inputs: argmax(inputs[0], node.attr("axes")[0]),
    fresh=True,
    requires=_nonempty,
    indices_below=lambda node: node.inputs[0].shape[node.attr("axes")[0]],
)
