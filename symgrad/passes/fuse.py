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

The pass is linear in the size of the graph: it first decides, node by node and with no
SymPy work beyond each node's own (small) formula, which producers are inlined where (a
group grows while its size, the sum of its members' operation counts, stays within
``MAX_OPS``); then it composes each group's formula once.  Splicing a chain step by step
instead rewrites the whole growing formula at every step (30-70 ms a node on a long
backward pass, minutes for a chain of 10,000 steps).  A group's formula is built over its
final input numbers (``ew()``'s canonical order, ``Node.order_key``), so nothing renames it
afterwards; groups of the same layout (the steps of a chain) share one composed formula.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from ..errors import SymgradError
from ..ir import Node, consumers, toposort
from ..ir import dtypes as dt
from ..ir.op import rebuild
from ..ops.core import EW, ew
from ..ops.elementwise import Div, IsNaN, Paren, spliced, sym

MAX_OPS = 120  # a fused formula larger than this is split (keeps SymPy work bounded)
_GIVE_UP = (RecursionError, SymgradError, TypeError, ValueError, NotImplementedError)


@lru_cache(maxsize=1 << 14)
def _facts(expr) -> tuple[int, int, bool, bool]:
    """A formula's operation count (at least 1, so a group's size bounds its depth), the
    count its ``Paren`` adds when it is spliced into a user (as ``count_ops`` counts it),
    whether it calls a function, and whether it is piecewise."""
    calls = {f for f in expr.atoms(sp.Function) if not isinstance(f, (Div, Paren))}
    grouped = isinstance(spliced(expr), Paren)
    return max(1, sp.count_ops(expr)), int(grouped), bool(calls), expr.has(sp.Piecewise)


def _in_condition(expr, s: sp.Symbol) -> bool:
    """Whether the symbol ``s`` is read by a comparison (or NaN test) in ``expr``, or is
    itself (part of) a ``Piecewise`` condition (``where``'s)."""
    tests = expr.atoms(sp.core.relational.Relational, IsNaN)
    conditions = [c for p in expr.atoms(sp.Piecewise) for _, c in p.args]
    return any(s in t.free_symbols for t in [*tests, *conditions])


class _Group:
    """An elementwise node with the producers inlined into it, not yet composed.

    For input ``i``, ``parts[i]`` is the group inlined there, or None and ``reads[i]`` is
    the (rebuilt) node read as it is.  ``dtypes`` are the dtypes of every node the composed
    formula reads; ``size`` its operation count (the sum of its members' and of the
    ``Paren`` around each inlined one), ``calls`` whether it calls a function,
    ``piecewise`` whether it has a piecewise part, ``grouped`` whether it is spliced into a
    user inside a ``Paren``.
    """

    __slots__ = ("node", "parts", "reads", "dtypes", "size", "calls", "piecewise", "built",
                 "grouped")

    def __init__(self, node, parts, reads, dtypes, size, calls, piecewise, grouped):
        self.node, self.parts, self.reads, self.dtypes = node, parts, reads, dtypes
        self.size, self.calls, self.piecewise, self.grouped = size, calls, piecewise, grouped
        self.built = None

    def cheap(self) -> bool:
        # Worth recomputing per element of a larger consumer: a little arithmetic, no calls.
        return self.size <= 2 and not self.calls


def _same_arithmetic(producer: _Group, user: Node) -> bool:
    # Inlining is exact only if the producer computes in the user's dtype: a cast
    # (float64 -> float32) must keep its rounding.
    if producer.node.dtype == "bool":
        return _condition_computes_as_written(producer, user)

    def computes_in(node):  # a comparison computes in its operands' float dtype
        natural = dt.result_float([i.dtype for i in node.inputs])
        return natural if node.dtype == "bool" else node.dtype

    natural = dt.result_float(producer.dtypes)
    return producer.node.dtype == computes_in(user) == natural


def _condition_computes_as_written(producer: _Group, user: Node) -> bool:
    # A condition computes in its operands' dtype.  Inlined, it is part of the user's
    # formula, which converts float32 values to float64 if any value it reads is float64
    # (dtypes.widens): that must be so for the condition alone and for the user alone too,
    # or a float32 condition would compare in float64, or a float64 operand of the condition
    # would widen the user's float32 arithmetic.
    own = [i.dtype for i in user.inputs]
    fused = dt.widens(user.dtype, [*own, *producer.dtypes])
    condition_changes = "float32" in producer.dtypes and fused != dt.widens(
        "bool", producer.dtypes
    )
    user_changes = "float32" in own and fused != dt.widens(user.dtype, own)
    return not (condition_changes or user_changes)


def _converting_alike(user: Node, parts: list) -> list:
    """``parts`` (the groups to inline into ``user``, None where an input is read as it is)
    less those that would convert their float32 values otherwise than alone.  Each was
    checked against the user alone (:func:`_same_arithmetic`), but two conditions can meet
    in a user that reads only bools, one with a float64 operand and one comparing float32
    values: together they would widen the float32 comparison."""
    parts = list(parts)
    while True:
        dtypes = set().union(
            *(p.dtypes if p is not None else {i.dtype} for p, i in zip(parts, user.inputs))
        )
        fused = dt.widens(user.dtype, dtypes)
        wrong = [
            k for k, p in enumerate(parts)
            if p is not None
            and "float32" in p.dtypes
            and dt.widens(p.node.dtype, p.dtypes) != fused
        ]
        if not wrong:
            return parts
        for k in wrong:  # read as nodes: a bool read converts nothing
            parts[k] = None


def _folds_into_condition(producer: _Group, user: Node, i: int) -> bool:
    # A piecewise value compared inside a Piecewise condition is "piecewise-folded" by
    # SymPy into ITE conditions whose simplification negates comparisons (not a <= b is
    # a > b), which is false where an operand is NaN: such a producer stays a node.  So
    # does a piecewise condition of where: not_equal(a < b, c) of a bool node c, inlined,
    # was simplified to ~(c & (a < b)), not the xor (long differential run)
    return producer.piecewise and _in_condition(user.attr("expr"), sym(i))


def fuse(outputs) -> list[Node]:
    """Fuse single-use elementwise producers into their elementwise users."""
    outputs = list(outputs)
    uses = consumers(outputs)
    groups: dict[Node, _Group] = {}  # old elementwise node -> its group
    new: dict[Node, Node] = {}  # old node -> rebuilt node (groups: once composed)
    formulas: dict = {}  # a group's layout -> its composed formula (see _compose)

    def built(old: Node) -> Node:
        group = groups.get(old)
        return new[old] if group is None else _compose(group, formulas)

    for node in toposort(outputs):
        if node.op is not EW or not node.inputs:
            new[node] = rebuild(node, [built(i) for i in node.inputs])
            continue
        own, grouped, calls, piecewise = _facts(node.attr("expr"))
        parts = []
        for i, old in enumerate(node.inputs):
            part = groups.get(old)
            ok = (
                part is not None
                and uses[old] == 1
                and (old.shape == node.shape or part.cheap())
                and _same_arithmetic(part, node)
                and not _folds_into_condition(part, node, i)
            )
            parts.append(part if ok else None)
        parts = _converting_alike(node, parts)
        size = own + sum(p.size + p.grouped for p in parts if p is not None)
        if size > MAX_OPS:  # split here: the producers become nodes of their own
            parts, size = [None] * len(parts), own
        inlined = [p for p in parts if p is not None]
        reads = [None if p is not None else built(i) for i, p in zip(node.inputs, parts)]
        dtypes = frozenset(r.dtype for r in reads if r is not None).union(
            *(p.dtypes for p in inlined)
        )
        calls = calls or any(p.calls for p in inlined)
        piecewise = piecewise or any(p.piecewise for p in inlined)
        groups[node] = _Group(node, parts, reads, dtypes, size, calls, piecewise, grouped)
    return [built(o) for o in outputs]


def _compose(group: _Group, formulas: dict) -> Node:
    """The fused node of ``group``: its formula composed once and canonicalised.

    ``formulas`` maps a group's layout (``_layout``) to its composed formula, or to the
    exception SymPy raised composing it: the steps of a long chain fuse into groups of the
    same few layouts over other nodes, each composed by SymPy once.
    """
    if group.built is None:
        node = group.node
        if all(p is None for p in group.parts) and tuple(group.reads) == node.inputs:
            group.built = node  # nothing inlined or changed: ew() would give the node again
            return node
        try:
            # the nodes read, numbered as ew() orders them (``order_key``), so that the formula
            # is built once over its final symbols and ew() need not rename it
            order = sorted(set(_reads(group)), key=lambda n: n.order_key)
            number = {read: sym(i) for i, read in enumerate(order)}
            layout = _layout(group, number)
            formula = formulas.get(layout)
            if formula is None:
                try:
                    formula = _force(_splice(group, number))
                except _GIVE_UP as exc:
                    formula = exc
                formulas[layout] = formula
            if isinstance(formula, Exception):
                raise formula
            group.built = ew(formula, order, node.dtype)
        except _GIVE_UP:
            # SymPy out of its depth (or refusing a combination): keep the nodes apart
            reads = [
                r if p is None else _compose(p, formulas) for p, r in zip(group.parts, group.reads)
            ]
            group.built = rebuild(node, reads)
    return group.built


def _layout(group: _Group, number: dict) -> tuple:
    """What the composed formula of ``group`` depends on: each member's own formula and,
    for each of its inputs, the layout of the member inlined there or the symbol of the
    node read (a nested tuple: hashed and compared in time linear in the group's size)."""
    return (
        group.node.attr("expr"),
        tuple(
            number[read] if part is None else _layout(part, number)
            for part, read in zip(group.parts, group.reads)
        ),
    )


def _reads(group: _Group):
    """The nodes the composed formula of ``group`` reads (with repeats)."""
    stack = [group]
    while stack:
        member = stack.pop()
        for part, read in zip(member.parts, member.reads):
            if part is None:
                yield read
            else:
                stack.append(part)


def _splice(group: _Group, number: dict):
    # The group's formula over the symbols ``number`` gives the nodes it reads.  One
    # simultaneous substitution per member, so the numbers of two formulas cannot clash;
    # the recursion is at most MAX_OPS deep, as each member counts 1 or more.
    replace = {}
    for i, (part, read) in enumerate(zip(group.parts, group.reads)):
        if part is None:
            replace[sym(i)] = number[read]
        else:
            replace[sym(i)] = spliced(_force(_splice(part, number)))
    return _subst(group.node.attr("expr"), replace)


class _Sum:
    """A sum or product being composed: its arguments, not yet given to SymPy.

    Built link by link, a chain of sums or products would be flattened and sorted again by
    SymPy at every link; collected, it is built once.
    """

    __slots__ = ("func", "args", "built")

    def __init__(self, func, args):
        self.func, self.args, self.built = func, args, None


def _force(value):
    if isinstance(value, _Sum):
        if value.built is None:
            value.built = value.func(*value.args)
        return value.built
    return value


def _subst(expr, replace):
    """``expr`` with its symbols replaced at once (values may be :class:`_Sum`)."""
    if expr.is_Symbol:
        return replace.get(expr, expr)
    if expr.is_Atom:
        return expr
    if expr.is_Add or expr.is_Mul:
        args = []
        for arg in expr.args:
            value = _subst(arg, replace)
            if isinstance(value, _Sum) and value.func is expr.func:
                args.extend(value.args)
            else:
                args.append(_force(value))
        return _Sum(expr.func, args)
    return expr.func(*(_force(_subst(arg, replace)) for arg in expr.args))
