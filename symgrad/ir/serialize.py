"""Graphs as flat data, and back: how a graph (and a compiled function) travels to another
process.

A graph is written as a list of node records in topological order (inputs before users),
one record per node::

    (op name, input positions, attributes, shape, dtype, digest)

where the input positions index earlier records.  Attributes are kept as values (SymPy
expressions, NumPy constants in ``ConstArray``, dims, tuples), which pickle exactly.  Loading
rebuilds each node through :func:`~symgrad.ir.node.intern` with the same op, inputs and
attributes, so a loaded graph is made of the *same* nodes as the original in this process
(identity is equality) and has the same structural digests in any process.  The digest of
every rebuilt node is checked against the recorded one: a graph written by another version
of symgrad whose nodes would mean something else is refused, not silently run.

Both directions are loops over the list (never recursion), so a chain of any length
travels.  No machine code is ever written: a compiled function travels as its graph and is
compiled (or loaded from the kernel cache) where it lands.

``pickle`` uses this for nodes (``Node.__reduce__``), so ``pickle.dumps(graph)`` works and
``pickle.loads`` gives back interned nodes.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence

from ..errors import GraphError
from .graph import toposort
from .node import Node, intern
from .op import OPS

FORMAT = 2  # bump when a record changes meaning (2: digests hash formulas by structure)


def dump(outputs) -> tuple:
    """The graph of ``outputs`` (a list of nodes) as plain data: ``(format, records, roots)``.

    >>> import symgrad as sg
    >>> x, y = sg.symbols("x y")
    >>> fmt, records, roots = dump([x * y])
    >>> [r[0] for r in records], roots
    (['input', 'input', 'ew'], [2])
    """
    outputs = list(outputs)
    position, records = {}, []
    for node in toposort(outputs):
        position[node] = len(records)
        records.append(
            (
                node.op.name,
                tuple(position[i] for i in node.inputs),
                node.attrs,
                node.shape,
                node.dtype,
                node.digest,
            )
        )
    return FORMAT, records, [position[o] for o in outputs]


def load(data) -> list[Node]:
    """The output nodes of a graph written by :func:`dump` (rebuilt through interning)."""
    try:
        version, records, roots = data
    except (TypeError, ValueError):
        raise GraphError("not a serialized symgrad graph") from None
    if version != FORMAT:
        raise GraphError(
            f"the graph was written in format {version}; this symgrad reads format {FORMAT}"
        )
    nodes: list[Node] = []
    for op_name, inputs, attrs, shape, dtype, digest in records:
        op = OPS.get(op_name)
        if op is None:
            raise GraphError(f"the graph uses the op {op_name!r}, which this symgrad lacks")
        node = intern(op, tuple(nodes[i] for i in inputs), dict(attrs), shape, dtype)
        if node.digest != digest:
            raise GraphError(
                f"a {op_name} node of the graph does not rebuild to the same node here "
                "(written by another version of symgrad?)"
            )
        nodes.append(node)
    return [nodes[i] for i in roots]


def dumps(outputs) -> bytes:
    """:func:`dump` as bytes (pickled plain data)."""
    return pickle.dumps(dump(outputs), protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> list[Node]:
    """The output nodes of :func:`dumps`."""
    return load(pickle.loads(data))


class Deferred(Sequence):
    """The output nodes of :func:`dumps` bytes, as a sequence rebuilt on first use.

    Unpickling a graph builds its SymPy formulas again, milliseconds for a network's
    gradient; a warm start (``compile.py``) that finds its kernel without reading the graph
    need not pay that until something asks for a node (``graph_text``, the split kernels,
    the interpreter).  Loading is done once, by whichever thread asks first.
    """

    def __init__(self, data: bytes):
        self._data = data
        self._nodes: list[Node] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> list[Node]:
        if self._nodes is None:
            with self._lock:
                if self._nodes is None:
                    self._nodes = loads(self._data)
        return self._nodes

    def __getitem__(self, index):
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())


def _load_one(data) -> Node:
    return load(data)[0]


def _reduce_node(node: Node):
    # a node pickles as its whole graph, flat (the default would recurse through inputs
    # and bypass interning, giving look-alike nodes that are not equal to anything)
    return _load_one, (dump([node]),)


Node.__reduce__ = _reduce_node
