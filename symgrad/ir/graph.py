"""Walking graphs: topological order, consumer counts, and the readable text form."""

from __future__ import annotations

from collections import Counter

from .node import Node
from .shapes import fmt


def toposort(outputs, stop=frozenset()) -> list[Node]:
    """Every node reachable from ``outputs``, inputs before users.

    Nodes in ``stop`` are included but not looked through (they are given values).
    Iterative, so a chain of any length does not hit Python's recursion limit.
    The order depends only on the graph, which makes generated code deterministic.
    """
    order, done = [], set()
    stack = [(n, False) for n in reversed(list(outputs))]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if expanded:
            done.add(node)
            order.append(node)
            continue
        stack.append((node, True))
        for child in () if node in stop else reversed(node.inputs):
            if child not in done:
                stack.append((child, False))
    return order


def consumers(outputs) -> Counter:
    """How many times each node is used: as an input of another node or as an output."""
    count = Counter(outputs)
    for node in toposort(outputs):
        count.update(node.inputs)
    return count


def inputs_of(outputs) -> list[Node]:
    """The ``input`` nodes the outputs depend on, sorted by name."""
    return sorted((n for n in toposort(outputs) if n.op.leaf == "input"), key=lambda n: n.name)


# attributes that are the node's content, printed bare (``ew x0*x1``, ``const [1. 2.]``)
_CONTENT = ("expr", "value")


def _describe(node: Node) -> str:
    if node.op.leaf == "input":
        return f"input {node.name!r}"
    attrs = {k: v for k, v in node.attrs if k != "dtype"}
    if len(attrs) == 1 and next(iter(attrs)) in _CONTENT:
        return f"{node.op} {next(iter(attrs.values()))}"
    shown = ", ".join(f"{k}={v}" for k, v in attrs.items())
    return node.op + (f" [{shown}]" if shown else "")


def to_text(outputs) -> str:
    """The graph as numbered lines, one node a line, inputs before users.

    >>> import symgrad as sg
    >>> x, y = sg.symbols("x y")
    >>> print(to_text([x * y]))  # doctest: +NORMALIZE_WHITESPACE
    %0 = input 'x'           : float64()
    %1 = input 'y'           : float64()
    %2 = ew x0*x1 (%0, %1)   : float64()
    return %2
    """
    outputs = list(outputs)
    names, lines = {}, []
    for node in toposort(outputs):
        names[node] = f"%{len(names)}"
        args = " (" + ", ".join(names[i] for i in node.inputs) + ")" if node.inputs else ""
        lhs = f"{names[node]} = {_describe(node)}{args}"
        lines.append(f"{lhs:<60} : {node.dtype}{fmt(node.shape)}")
    lines.append("return " + ", ".join(names[o] for o in outputs))
    return "\n".join(lines)
