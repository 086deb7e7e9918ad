"""Fusion of elementwise chains into one SymPy formula per chain.

An elementwise node whose only user is another elementwise node of the same shape is
substituted into that user's formula, so ``exp(x) * y + 1`` becomes one node
``ew x0*exp(x1) + 1`` and a backend computes it in one loop without temporaries.  A node
with several users stays (it is computed once and read by each: the saved forward values
of the backward pass).  Fused formulas are then simplified within a bounded cost.

Before and after::

    %2 = ew exp(x0) (%0)        %3 = ew x0*x1 (%2, %1)        %4 = ew x0 + 1 (%3)
    ->  %2 = ew x1*exp(x0) + 1 (%0, %1)
"""

from __future__ import annotations

from functools import cache, lru_cache

import sympy as sp

from ..ir import Node, consumers
from ..ir import dtypes as dt
from ..ir.op import rebuild
from ..ops.core import EW, ew, is_formula
from ..ops.elementwise import sym
from .rewrite import rewrite

MAX_OPS = 120  # a fused formula larger than this is split (keeps SymPy work bounded)
SIMPLIFY_OPS = 60  # only formulas up to this size are run through the simplifier


@lru_cache(maxsize=4096)
def tidy(expr):
    """The smallest of a few cheap rewritings of ``expr`` (bounded-cost simplification)."""
    if sp.count_ops(expr) > SIMPLIFY_OPS or expr.has(sp.Piecewise):
        return expr
    candidates = [expr, sp.factor_terms(expr)]
    return min(candidates, key=sp.count_ops)


def _cheap(node: Node) -> bool:
    # Worth recomputing per element of a larger consumer: a little arithmetic, no calls.
    expr = node.attr("expr")
    return sp.count_ops(expr) <= 2 and not expr.atoms(sp.Function)


def _same_arithmetic(producer: Node, user: Node) -> bool:
    # Inlining is exact only if the producer computes in the user's dtype: a cast
    # (float64 -> float32) must keep its rounding.  Booleans are conditions: always fine.
    def computes_in(node):  # a comparison computes in its operands' float dtype
        natural = dt.result_float([i.dtype for i in node.inputs])
        return natural if node.dtype == "bool" else node.dtype

    natural = dt.result_float([i.dtype for i in producer.inputs])
    return producer.dtype == "bool" or producer.dtype == computes_in(user) == natural


def fuse(outputs) -> list[Node]:
    """Fuse single-use elementwise producers into their elementwise users."""
    uses = consumers(outputs)

    def rule(node: Node, inputs: list[Node]) -> Node:
        if node.op is not EW:
            return rebuild(node, inputs)
        flat, replace = [], {}
        for i, (old, new) in enumerate(zip(node.inputs, inputs)):
            inline = (
                is_formula(new)
                and uses[old] == 1
                and (new.shape == node.shape or _cheap(new))
                and _same_arithmetic(new, node)
            )
            if inline:
                offset = len(flat)
                flat.extend(new.inputs)
                inner = new.attr("expr")
                replace[sym(i)] = inner.xreplace(
                    {sym(j): _slot(offset + j) for j in range(len(new.inputs))}
                )
            else:
                replace[sym(i)] = _slot(len(flat))
                flat.append(new)
        expr = node.attr("expr").xreplace(replace)
        if sp.count_ops(expr) > MAX_OPS:
            return rebuild(node, inputs)
        expr = expr.xreplace({_slot(j): sym(j) for j in range(len(flat))})
        return ew(tidy(expr), flat, node.dtype)

    return rewrite(outputs, rule)


@cache
def _slot(i: int) -> sp.Symbol:
    # placeholders while formulas are spliced, so x-numbers of two formulas cannot clash
    return sp.Symbol(f"_slot{i}", real=True)
