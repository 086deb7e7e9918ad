"""The shape every pass shares: rebuild a graph bottom-up through a per-node rule."""

from __future__ import annotations

from ..ir import Node, toposort


def rewrite(outputs, rule) -> list[Node]:
    """Rebuild ``outputs`` with ``rule(old_node, new_inputs) -> new_node`` in topological order.

    Nodes no output reaches are dropped (dead-code removal comes for free), and rebuilt
    nodes are interned, so duplicates created by a rewrite merge again (CSE).
    """
    new: dict[Node, Node] = {}
    for node in toposort(outputs):
        new[node] = rule(node, [new[i] for i in node.inputs])
    return [new[o] for o in outputs]
