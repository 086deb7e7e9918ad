"""Scalar graphs as SymPy expressions."""

from __future__ import annotations

import sympy as sp

from ..errors import GraphError
from ..ir import Node, toposort
from .core import EW
from .elementwise import sym, to_native


def to_sympy(node: Node) -> sp.Expr:
    """The SymPy expression of a graph of scalars; inputs become plain symbols by name.

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> sg.to_sympy(sg.grad((x + y) * z, z))
    x + y
    """
    if not isinstance(node, Node):
        raise GraphError(f"to_sympy takes a symgrad tensor, got {type(node).__name__}")
    values = {}
    for n in toposort([node]):
        if n.shape != ():
            raise GraphError(f"to_sympy converts scalar graphs only; {n!r} has shape {n.shape}")
        if n.op.leaf == "input":
            values[n] = sp.Symbol(n.name)
        elif n.op.leaf == "dim":
            values[n] = sp.Symbol(n.attr("name"), positive=True, integer=True)
        elif n.op is EW:
            expr = n.attr("expr")
            values[n] = expr.xreplace({sym(i): values[x] for i, x in enumerate(n.inputs)})
        elif n.op.scalar_identity:
            values[n] = values[n.inputs[0]]  # the identity on scalars
        else:
            raise GraphError(f"to_sympy cannot convert op {n.op!r}")
    return to_native(values[node])
