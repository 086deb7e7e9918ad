"""Matrix products: ``matmul`` of 1-D and 2-D operands (BLAS in the Numba backend)."""

from __future__ import annotations

from ..errors import DTypeError, ShapeError
from ..ir import Node, intern
from ..ir import dtypes as dt
from ..ir.op import Op
from ..ir.shapes import fmt
from .core import broadcast_to, constant, ew, is_constant, reshape
from .elementwise import sym
from .layout import transpose


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
    return intern(MATMUL, (a, b), {}, shape, dtype)


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


MATMUL = Op(
    "matmul",
    vjp=_vjp_matmul,
    rebuild=lambda node, inputs: matmul(*inputs),
    fresh=True,
)
