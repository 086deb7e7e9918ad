"""Sharing of function calls between elementwise formulas.

After fusion, the forward formula of an activation and the backward formula of its
derivative often call the same function on the same values: GELU's forward and backward
both compute ``erf(z / sqrt(2))``.  Each such call that appears in two or more formulas
becomes a node of its own, computed once and read by both (the backward pass then reuses
the forward's value instead of calling ``erf`` again).

Before and after::

    %5 = ew x0*(erf(sqrt(2)*x0/2) + 1)/2 (%4)                       forward
    %9 = ew x1*(x0*exp(-x0**2/2)/sqrt(2*pi) + erf(sqrt(2)*x0/2)/2 + 1/2) (%4, %8)
    ->  %5' = ew erf(sqrt(2)*x0/2) (%4)
        %5 = ew x0*(x1 + 1)/2 (%4, %5')      %9 = ew x2*(... + x1/2 + 1/2) (%4, %5', %8)
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import sympy as sp

from ..ir import Node, toposort
from ..ir import dtypes as dt
from ..ir.op import rebuild
from ..ops.core import ew, is_formula
from ..ops.elementwise import Const, Div, Paren, sym
from .rewrite import rewrite


@lru_cache(maxsize=1 << 12)  # a walk of the whole formula; a chain's steps repeat theirs
def _calls(expr) -> frozenset:
    """The function calls in ``expr`` (exp, log, erf, tanh, ...), outermost and inner."""
    # recomputing these costs less than a load (a Paren is grouping, not a call)
    cheap = (sp.Piecewise, sp.Abs, sp.sign, Paren, Div)
    return frozenset(
        e
        for e in sp.preorder_traversal(expr)
        if isinstance(e, sp.Function) and not isinstance(e, cheap)
    )


def _by_node(call, inputs):
    """A call written over the input nodes themselves (so formulas can be compared), and the
    nodes it reads.

    The key is a nested tuple, not a SymPy expression: building the call again over new
    symbols would run SymPy's evaluation and assumptions anew for every formula (5 ms a
    call).  Arguments of commutative operations are sorted, so the key does not depend on
    the order the formula's numbering gave them.
    """
    used = set()

    def key(e):
        if e.is_Symbol and not isinstance(e, Const):
            node = inputs[int(e.name[1:])]
            used.add(node)
            return node
        if not e.args:
            return e
        args = [key(a) for a in e.args]
        if e.is_commutative and (e.is_Add or e.is_Mul):
            args.sort(key=hash)
        return (e.func, *args)

    k = key(call)
    return k, tuple(sorted(used, key=lambda n: n.digest))


def _call_dtype(node: Node) -> str | None:
    """The dtype of a call taken out of ``node``'s formula: float64 where the formula
    converts its float32 values first (``dtypes.widens``), else None (its operands')."""
    return "float64" if dt.widens(node.dtype, [i.dtype for i in node.inputs]) else None


def share_calls(outputs) -> list[Node]:
    """Give each call that several elementwise formulas make a node of its own."""
    seen = defaultdict(set)  # (call over nodes, its input nodes, dtype) -> formulas making it
    for node in toposort(outputs):
        if is_formula(node):
            for call in _calls(node.attr("expr")):
                seen[(*_by_node(call, node.inputs), _call_dtype(node))].add(node)
    shared = {(key, dtype) for (key, _, dtype), users in seen.items() if len(users) > 1}
    if not shared:
        return list(outputs)

    def rule(node: Node, inputs: list[Node]) -> Node:
        if not is_formula(node):
            return rebuild(node, inputs)
        expr, extra, dtype = node.attr("expr"), [], _call_dtype(node)
        # larger calls first: a call inside a shared call is then shared only if still repeated
        for call in sorted(_calls(expr), key=lambda c: -sp.count_ops(c)):
            key, used = _by_node(call, node.inputs)
            if (key, dtype) in shared and call in _calls(expr):
                # the call as a node over the rebuilt inputs (interned: one node per call)
                positions = [node.inputs.index(u) for u in used]
                over = {sym(p): sym(i) for i, p in enumerate(positions)}
                extra.append(ew(call.xreplace(over), [inputs[p] for p in positions], dtype))
                expr = expr.xreplace({call: sym(len(inputs) + len(extra) - 1)})
        if not extra:
            return rebuild(node, inputs)
        return ew(expr, list(inputs) + extra, node.dtype)

    return rewrite(outputs, rule)
