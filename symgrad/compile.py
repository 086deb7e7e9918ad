"""The pipeline: graph -> (grad) -> passes -> backend -> a callable.

``compile`` and ``value_and_grad`` return a :class:`Compiled`: call it with keyword
arguments named after the input tensors; it checks them (``backends/inputs.py``), runs the
backend program, and returns a float for a scalar output and fresh arrays otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import backends
from .autodiff import grad
from .errors import ArgumentError
from .ir import Node, to_text
from .ops.api import as_node
from .passes import optimize
from .backends.inputs import Signature


@dataclass
class Stats:
    """Where compile time went, in seconds."""

    derive: float = 0.0
    simplify: float = 0.0
    codegen: float = 0.0
    numba: float = 0.0
    cache_hit: bool = False
    nodes_before: int = 0
    nodes_after: int = 0

    @property
    def total(self) -> float:
        return self.derive + self.simplify + self.codegen + self.numba


@dataclass
class Compiled:
    """A compiled function of the graph's input tensors (keyword arguments by name)."""

    outputs: list[Node]  # optimised graph the backend runs
    signature: Signature
    program: object
    backend: str
    pack: object  # turns the list of output values into what the call returns
    stats: Stats = field(default_factory=Stats)

    @property
    def source(self) -> str:
        """What runs: generated kernel source (numba) or the graph as text (numpy)."""
        return self.program.source

    @property
    def graph_text(self) -> str:
        """The optimised graph, one node a line."""
        return to_text(self.outputs)

    @property
    def input_names(self) -> list[str]:
        return list(self.signature.names)

    def __call__(self, **inputs):
        arrays, dims = self.signature.bind(inputs)
        values = self.program(arrays, dims)
        results = []
        for node, value in zip(self.outputs, values):
            if node.shape == ():
                results.append(float(value) if node.dtype != "int64" else int(value))
            else:
                # fresh and owned: never a view of an input or a buffer reused by later calls
                results.append(np.array(value, dtype=node.dtype, order="C", copy=True))
        return self.pack(results)

    def __repr__(self):
        return f"<symgrad.Compiled backend={self.backend!r} inputs={self.input_names}>"


def _build(outputs, pack, backend, extra_inputs, options, stats) -> Compiled:
    signature = Signature(outputs, extra_inputs)
    started = time.perf_counter()
    from .ir import toposort

    stats.nodes_before = len(toposort(outputs))
    optimised = optimize(outputs)
    stats.nodes_after = len(toposort(optimised))
    stats.simplify = time.perf_counter() - started
    program = backends.get(backend)(optimised, signature, dict(options, stats=stats))
    return Compiled(optimised, signature, program, backend, pack, stats)


def _as_outputs(outputs):
    if isinstance(outputs, (list, tuple)):
        if not outputs:
            raise ArgumentError("compile needs at least one output")
        return [as_node(o) for o in outputs], tuple
    return [as_node(outputs)], lambda values: values[0]


def compile(outputs, backend: str = "numba", **options) -> Compiled:  # noqa: A001
    """Compile the forward computation of one graph or a list of graphs.

    ``sg.compile(f)`` returns a callable giving ``f``'s value; ``sg.compile([a, b])`` one
    giving a tuple.  ``backend`` is ``"numba"`` (default) or ``"numpy"``.

    >>> fwd = compile((x + y) * z)
    >>> fwd(x=-2.0, y=5.0, z=-4.0)
    -12.0
    """
    nodes, pack = _as_outputs(outputs)
    return _build(nodes, pack, backend, (), options, Stats())


def value_and_grad(f, wrt, backend: str = "numba", **options) -> Compiled:
    """Compile ``f`` together with its gradient with respect to ``wrt``.

    The call returns ``(value, grad)`` for one tensor in ``wrt`` and ``(value, [grads])``
    for a list, as in ``sg.grad``.  Every tensor in ``wrt`` is accepted as an input even if
    ``f`` does not use it.

    >>> vg = value_and_grad((x + y) * z, wrt=[x, y, z])
    >>> vg(x=-2.0, y=5.0, z=-4.0)
    (-12.0, [-4.0, -4.0, 3.0])
    """
    stats = Stats()
    started = time.perf_counter()
    f = as_node(f)
    grads = grad(f, wrt)
    stats.derive = time.perf_counter() - started
    single = isinstance(wrt, Node)
    wrt_list = [wrt] if single else list(wrt)
    if single:
        pack = lambda values: (values[0], values[1])  # noqa: E731
    else:
        pack = lambda values: (values[0], list(values[1:]))  # noqa: E731
    return _build([f] + ([grads] if single else grads), pack, backend, wrt_list, options, stats)
