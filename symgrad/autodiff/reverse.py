"""Symbolic reverse mode: one sweep over the graph in reverse topological order.

Each node's adjoint is the sum of the contributions of its users; each contribution comes
from the VJP rule of the user's op (``node.op.vjp``, declared with the op in ``ops/``).
Everything built is an ordinary graph, so gradients can be printed, simplified, compiled
and differentiated again.  An op without a derivative (``argmax``) on a path from the output
to a ``wrt`` tensor is an error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import DTypeError, GraphError
from ..ir import Node, toposort
from ..ir import dtypes as dt
from ..ir.shapes import fmt
from ..ops import api
from ..ops.core import broadcast_to, constant, ew
from ..ops.elementwise import Paren, sym


def _zeros(node: Node) -> Node:
    return broadcast_to(constant(0, node.dtype), node.shape)


def _total(parts: list[Node]) -> Node:
    """Sum of adjoint contributions, as one elementwise node adding them in pairs.

    Each pair is summed before it is added (``Paren``), halves of the list first: a flat
    sum of three or more terms has no order of its own (SymPy orders them by the inputs'
    numbers, which optimisation changes), and ``(a + b) + c`` overflows where ``a + (b +
    c)`` does not.  Pairs keep the formula's depth at log2 of the number of parts."""
    if len(parts) == 1:
        return parts[0]
    return ew(_pairwise([sym(i) for i in range(len(parts))]), parts)


def _pairwise(terms: list):
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return Paren(_pairwise(terms[:half])) + Paren(_pairwise(terms[half:]))


def on_gradient_path(order: list[Node], wrt: list[Node]) -> set[Node]:
    """The nodes of ``order`` (a topological order) that depend on some ``wrt`` node through
    ops that pass a gradient: only they get an adjoint (``stop_gradient`` passes none). An op
    without a derivative (``argmax``, comparisons) on such a path is a ``GraphError``; its
    input is what takes ``stop_gradient``."""
    wrt_set = set(wrt)
    depends = set()
    for node in order:
        flows = not node.op.stops_gradient and any(i in depends for i in node.inputs)
        if node in wrt_set or flows:
            depends.add(node)
            if not node.op.differentiable and node not in wrt_set:
                raise GraphError(
                    f"cannot differentiate through {node.op.name} ({node!r}): it has no "
                    "derivative; apply it to sg.stop_gradient(x) where no gradient should flow"
                )
    return depends


def vjp(outputs: list[Node], cotangents: list[Node], wrt: list[Node]) -> list[Node]:
    """Adjoints of ``wrt`` for the given output cotangents (graphs, not numbers)."""
    order = toposort(outputs)
    depends = on_gradient_path(order, wrt)
    adjoints: dict[Node, list[Node]] = {}
    for out, ct in zip(outputs, cotangents):
        adjoints.setdefault(out, []).append(ct)
    for node in reversed(order):
        parts = adjoints.get(node)
        if not parts or node not in depends:
            continue
        g = _total(parts)
        adjoints[node] = [g]
        for x, gx in zip(node.inputs, node.op.vjp(node, g)):
            if gx is not None and x in depends:
                adjoints.setdefault(x, []).append(gx)
    return [_total(adjoints[w]) if adjoints.get(w) else _zeros(w) for w in wrt]


def grad(f, wrt):
    """The gradient of the scalar ``f`` with respect to ``wrt``, as graphs.

    ``wrt`` is one tensor (returns one graph), a list (returns a list) or a dict
    ``{name: tensor}`` (returns a dict with the same keys, in the same order).  A tensor
    ``f`` does not depend on gets zeros of its shape.

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> dx, dy, dz = sg.grad((x + y) * z, [x, y, z])
    >>> sg.to_sympy(dz)
    x + y
    >>> {k: sg.to_sympy(g) for k, g in sg.grad(x * y, {"a": x, "b": y}).items()}
    {'a': y, 'b': x}
    """
    if isinstance(wrt, Mapping):
        return dict(zip(wrt, grad(f, list(wrt.values()))))
    f = api.as_node(f)
    single = not isinstance(wrt, (list, tuple))
    targets = [wrt] if single else list(wrt)
    if f.shape != ():
        raise GraphError(
            f"grad needs a scalar f, got shape {fmt(f.shape)}; reduce it first (sg.sum, sg.mean)"
        )
    if not dt.is_float(f.dtype):
        raise DTypeError(f"grad needs a float f, got {f.dtype}")
    for w in targets:
        if not isinstance(w, Node):
            raise GraphError(
                f"grad differentiates with respect to tensors, got {type(w).__name__} {w!r}"
            )
        if not dt.is_float(w.dtype):
            raise DTypeError(
                f"cannot differentiate with respect to {w!r}: it is {w.dtype}, not a float tensor"
            )
    grads = vjp([f], [constant(1, f.dtype)], targets)
    # a float32 tensor in a float64 graph gets a float32 gradient, like its value
    grads = [g if g.dtype == w.dtype else api.cast(g, w.dtype) for g, w in zip(grads, targets)]
    return grads[0] if single else grads
