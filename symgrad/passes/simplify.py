"""Algebraic simplification: identities, constant folding and zero-adjoint pruning.

Most identities live in the op constructors (``reshape`` to the same shape is the input,
``sum`` of a zero is a zero, ``matmul`` with a zero is a zero, scalar constants fold into
elementwise formulas, SymPy simplifies ``0*x + y`` to ``y``), so rebuilding the graph
through them applies the identities everywhere.  This pass adds those that need context:

* ``stop_gradient(x)`` is ``x`` once derivatives are taken;
* ``sum(one_hot(labels) * r, axis=-1)`` is ``r`` when ``r`` is constant along that axis
  (this turns the derived softmax cross-entropy gradient into (softmax - onehot) / N).  It
  drops the labels, so it lives here and not in the constructor: the signature is built
  from the graph as written and still checks every label;
* an elementwise node reads ``y`` instead of an input ``broadcast_to(y, S)`` (unless the
  broadcast binds a named dim of ``y`` to a size of ``S``): its own broadcasting does the
  rest, and where every input was broadcast the formula is computed once on the small
  shape and the result broadcast (``-broadcast_to(c)`` is ``broadcast_to(-c)``).

Before and after, for the gradient of ``sum(x * 0 + y)`` with respect to ``x``::

    %1 = ew 0 : float64()   %2 = broadcast_to %1 (N,)   %3 = ew x0*x1 (%2, %4) ...
    ->  %2 = broadcast_to (ew 0) (N,)
"""

from __future__ import annotations

from ..ir import Node
from ..ir.op import rebuild
from ..ir.shapes import bindings
from ..ops.core import BROADCAST_TO, EW, SUM, broadcast_to, ew, sum_of_one_hot
from .rewrite import rewrite


def _simplify_node(node: Node, inputs: list[Node]) -> Node:
    if node.op.stops_gradient:
        return inputs[0]
    if node.op is EW:
        # compute on the unbroadcast inputs; broadcast the (smaller) result if still needed.
        # A broadcast that binds a named dim to a size stays: (K,) bound to 3 and (M,)
        # bound to 3 are equal only through their broadcasts, not by name.
        inputs = [_unbroadcast(x) for x in inputs]
        if all(a is b for a, b in zip(node.inputs, inputs)):
            return node  # built by ew(), so canonical already (and SymPy work is the cost)
        return broadcast_to(ew(node.attr("expr"), inputs, node.dtype), node.shape)
    new = rebuild(node, inputs)
    if new.op is SUM:
        picked = sum_of_one_hot(new)
        return new if picked is None else picked
    return new


def _unbroadcast(x: Node) -> Node:
    if x.op is BROADCAST_TO and not bindings(x.inputs[0].shape, x.shape):
        return x.inputs[0]
    return x


def simplify(outputs) -> list[Node]:
    """Apply identities, fold constants and prune zero adjoints (see the module docstring)."""
    return rewrite(outputs, _simplify_node)
