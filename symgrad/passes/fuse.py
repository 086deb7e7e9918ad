"""Fusion of elementwise chains into one SymPy formula per chain.

An elementwise node whose only user is another elementwise node of the same shape is
substituted into that user's formula, so ``exp(x) * y + 1`` becomes one node
``ew (x1*Exp(x0)) + 1`` and a backend computes it in one loop without temporaries.  A
node with several users stays (it is computed once and read by each: the saved forward
values of the backward pass).

The producer's formula goes in as ``Paren(formula)`` (see ``ops.elementwise.Paren``): the
fused formula computes exactly the ops as written, in the same order and dtype, only in one
loop.  SymPy may still merge equal subexpressions and drop a dependency (``p - p`` is 0),
the relaxations listed in docs/semantics.md.  A formula that would exceed :data:`MAX_OPS`
operations, or that SymPy cannot build (too deep: a ``RecursionError``), is not fused.

Before and after::

    %2 = ew Exp(x0) (%0)        %3 = ew x0*x1 (%2, %1)        %4 = ew x0 + 1 (%3)
    ->  %2 = ew Paren(x1*Exp(x0)) + 1 (%0, %1)
"""

from __future__ import annotations

from functools import cache

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..errors import SymgradError
from ..ir import Node, consumers
from ..ir import dtypes as dt
from ..ir.op import rebuild
from ..ops.core import EW, ew, is_formula
from ..ops.elementwise import Div, IsNaN, Paren, sym
from .rewrite import rewrite

MAX_OPS = 120  # a fused formula larger than this is split (keeps SymPy work bounded)


def _cheap(node: Node) -> bool:
    # Worth recomputing per element of a larger consumer: a little arithmetic, no calls.
    expr = node.attr("expr")
    calls = {f for f in expr.atoms(sp.Function) if not isinstance(f, (Div, Paren))}
    return sp.count_ops(expr) <= 2 and not calls


def _in_condition(expr, s: sp.Symbol) -> bool:
    """Whether the symbol ``s`` is read by a comparison (or NaN test) in ``expr``."""
    tests = expr.atoms(sp.core.relational.Relational, IsNaN)
    return any(s in t.free_symbols for t in tests)


def _folds_into_condition(producer: Node, user: Node, i: int) -> bool:
    # A piecewise value compared inside a Piecewise condition is "piecewise-folded" by
    # SymPy into ITE conditions whose simplification negates comparisons (not a <= b is
    # a > b), which is false where an operand is NaN: such a producer stays a node.
    return producer.attr("expr").has(sp.Piecewise) and _in_condition(user.attr("expr"), sym(i))


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
                and not _folds_into_condition(new, node, i)
            )
            if inline:
                offset = len(flat)
                flat.extend(new.inputs)
                inner = new.attr("expr")
                inner = inner.xreplace({sym(j): _slot(offset + j) for j in range(len(new.inputs))})
                # a condition is spliced as it is: logic has no rounding to keep apart
                replace[sym(i)] = inner if isinstance(inner, Boolean) else Paren(inner)
            else:
                replace[sym(i)] = _slot(len(flat))
                flat.append(new)
        try:
            expr = node.attr("expr").xreplace(replace)
            if sp.count_ops(expr) > MAX_OPS:
                return rebuild(node, inputs)
            expr = expr.xreplace({_slot(j): sym(j) for j in range(len(flat))})
            return ew(expr, flat, node.dtype)
        except (RecursionError, SymgradError, TypeError, ValueError, NotImplementedError):
            # SymPy out of its depth (or refusing a combination): keep the nodes apart
            return rebuild(node, inputs)

    return rewrite(outputs, rule)


@cache
def _slot(i: int) -> sp.Symbol:
    # placeholders while formulas are spliced, so x-numbers of two formulas cannot clash
    return sp.Symbol(f"_slot{i}", real=True)
