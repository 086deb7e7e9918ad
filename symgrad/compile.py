"""The pipeline: graph -> (grad) -> passes -> backend -> a callable.

``compile`` and ``value_and_grad`` return a :class:`Compiled`: call it with keyword
arguments named after the input tensors; it checks them (``backends/inputs.py``), runs the
backend program, and returns a float for a scalar output and fresh arrays otherwise.
"""

from __future__ import annotations

import builtins
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import backends
from .autodiff import grad
from .backends.inputs import Signature
from .errors import ArgumentError, GraphError
from .ir import Node, to_text, toposort
from .ops.api import as_node
from .passes import optimize


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


_SPLIT_LOCK = threading.Lock()


@dataclass
class Compiled:
    """A compiled function of the graph's input tensors (keyword arguments by name)."""

    outputs: list[Node]  # optimised graph the backend runs
    signature: Signature
    program: object
    backend: str
    pack: str  # how a call returns the outputs: see _finisher
    stats: Stats = field(default_factory=Stats)
    options: dict = field(default_factory=dict)
    _split_programs: object = field(default=None, repr=False)
    _finish: object = field(default=None, repr=False)  # generated in __post_init__

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

    def __call__(self, *args, **inputs):
        if args:
            self._positional(args)
        bound = self.signature.fast_bind(inputs) or self.signature.bind(inputs)
        return self._finish(self.program(*bound))

    def _positional(self, args):
        raise ArgumentError(
            f"a compiled function takes its inputs by keyword ({len(args)} positional "
            f"argument(s) given); call it as f({', '.join(n + '=...' for n in self.input_names)})"
        )

    def __post_init__(self):
        self._finish = _finisher(self.outputs, self.pack)

    # --- separate forward and backward kernels (value_and_grad only) ---------------------

    def forward(self, *args, **inputs):
        """The value alone, and the residuals the backward pass needs: ``(value, residuals)``.

        The forward kernel computes ``f`` and saves exactly the forward values that the
        backward kernel reads; ``backward(residuals)`` then gives the gradients.
        """
        if args:
            self._positional(args)
        split = self._split()
        values, dims = self.signature.fast_bind(inputs) or self.signature.bind(inputs)
        value, *saved = split.forward(values, dims)
        saved = tuple(v if np.ndim(v) == 0 else np.ascontiguousarray(v) for v in saved)
        return float(value), Residuals(split, values, dims, saved)

    def backward(self, residuals: Residuals):
        """The gradients, from the residuals of :meth:`forward` (same packing as a call).

        The residuals hold the input arrays as passed to ``forward`` (not copies):
        changing them in place before ``backward`` changes the gradients.
        """
        split = self._split()
        if not isinstance(residuals, Residuals) or residuals.owner is not split:
            # saved arrays of another function could have other shapes: refuse them
            raise ArgumentError(
                "backward takes the residuals returned by this function's forward()"
            )
        grads = split.backward(residuals.values, residuals.dims, residuals.saved)
        return split.finish(grads)

    @property
    def split_source(self) -> tuple[str, str]:
        """The generated forward and backward kernels."""
        split = self._split()
        return split.forward.source, split.backward.source

    def _split(self):
        if self._split_programs is None:
            if not self.pack.startswith("value"):
                raise ArgumentError("forward/backward exist for value_and_grad functions only")
            with _SPLIT_LOCK:  # built once: residuals of one thread's split fit the other's
                if self._split_programs is None:
                    self._split_programs = _Split(self)
        return self._split_programs

    def __repr__(self):
        return f"<symgrad.Compiled backend={self.backend!r} inputs={self.input_names}>"


@dataclass(frozen=True)
class Residuals:
    """What ``forward`` hands to ``backward``: the bound inputs and the saved values."""

    owner: object  # the programs that made them; backward accepts only its own
    values: tuple
    dims: dict
    saved: tuple


class _Split:
    """Forward and backward programs of a value-and-grad graph.

    The saved values are the forward nodes (other than inputs) that the backward graph
    reads, and gradients that are forward values themselves.
    """

    def __init__(self, compiled: Compiled):
        f, grads = compiled.outputs[0], compiled.outputs[1:]
        forward = set(toposort([f]))
        leaves = ("input", "const", "dim")
        saved = [g for g in grads if g in forward and g.op not in leaves]
        for node in toposort(grads, stop=forward):
            if node not in forward:
                saved += [i for i in node.inputs if i in forward and i.op not in leaves]
        self.saved = list(dict.fromkeys(saved))
        build = backends.get(compiled.backend)
        options = dict(compiled.options)
        self.forward = build([f] + self.saved, compiled.signature, dict(options, name="forward"))
        self.backward = build(grads, compiled.signature, dict(options, name="backward"), self.saved)
        pack = "one" if compiled.pack == "value_grad" else "list"
        # a gradient that is a saved value would be the caller's residual buffer: copy it
        self.finish = _finisher(grads, pack, copied=set(self.saved))


# Ops whose value both backends compute into memory of its own (an input or a view never).
FRESH_OPS = frozenset(
    {"ew", "sum", "max", "matmul", "pick", "one_hot", "argmax_mask", "broadcast_to"}
)


def _own(value):
    return (
        value if value.flags.writeable and value.flags.c_contiguous else np.array(value, order="C")
    )


def _copy(value):
    return np.array(value, order="C")


def _finisher(outputs: list[Node], pack: str, copied=frozenset()):
    """A function making a program's output values into what the caller gets.

    Scalars become floats; arrays are the caller's own: an array that could be an input,
    a view, a read-only broadcast or another output's memory is copied, a freshly computed
    one is handed over as it is.  ``pack`` is how the values are returned ("one", "tuple",
    "list", "value_grad", "value_grads").  Generated as straight-line code, since it runs
    on every call:

        def finish(r):
            o0 = float(r[0])
            o1 = _own(r[1])
            return (o0, [o1])
    """
    lines, seen = ["def finish(r):"], set()
    for i, node in enumerate(outputs):
        if not node.shape:
            value = f"float(r[{i}])"
        elif node.op in FRESH_OPS and node not in seen and node not in copied:
            value = f"_own(r[{i}])"
        else:
            value = f"_copy(r[{i}])"
        seen.add(node)
        lines.append(f"    o{i} = {value}")
    names = [f"o{i}" for i in range(len(outputs))]
    returns = {
        "one": names[0],
        "tuple": f"({', '.join(names)},)",
        "list": f"[{', '.join(names)}]",
        "value_grad": f"({names[0]}, {names[-1]})",
        "value_grads": f"({names[0]}, [{', '.join(names[1:])}])",
    }
    lines.append(f"    return {returns[pack]}")
    namespace = {"_own": _own, "_copy": _copy}
    exec(builtins.compile("\n".join(lines) + "\n", "<symgrad finish>", "exec"), namespace)
    return namespace["finish"]


OPTIONS = ("parallel", "fastmath")  # numba backend options; the numpy backend ignores them


def _build(outputs, pack, backend, extra_inputs, options, stats) -> Compiled:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ArgumentError(f"unknown option {unknown[0]!r}; the options are {OPTIONS}")
    signature = Signature(outputs, extra_inputs)
    started = time.perf_counter()
    stats.nodes_before = len(toposort(outputs))
    optimised = optimize(outputs)
    stats.nodes_after = len(toposort(optimised))
    stats.simplify = time.perf_counter() - started
    started = time.perf_counter()
    build = backends.get(backend)  # the first use imports Numba: part of its cost
    stats.numba += time.perf_counter() - started if backend == "numba" else 0.0
    program = build(optimised, signature, dict(options, stats=stats))
    return Compiled(optimised, signature, program, backend, pack, stats, dict(options))


def _as_outputs(outputs):
    if isinstance(outputs, (list, tuple)):
        if not outputs:
            raise ArgumentError("compile needs at least one output")
        return [as_node(o) for o in outputs], "tuple"
    return [as_node(outputs)], "one"


def _declared(inputs) -> list[Node]:
    nodes = [inputs] if isinstance(inputs, Node) else list(inputs or ())
    for node in nodes:
        if not isinstance(node, Node) or node.op != "input":
            raise ArgumentError(
                f"inputs= takes input tensors (sg.tensor / sg.symbols), got {node!r}"
            )
    return nodes


def compile(outputs, backend: str = "numba", inputs=(), **options) -> Compiled:  # noqa: A001
    """Compile the forward computation of one graph or a list of graphs.

    ``sg.compile(f)`` returns a callable giving ``f``'s value; ``sg.compile([a, b])`` one
    giving a tuple.  ``backend`` is ``"numba"`` (default) or ``"numpy"``.  The callable
    takes every input tensor of the graph as written (also those the optimiser found it
    does not need) as keyword arguments, and checks them all; ``inputs=[...]`` declares
    more (a tensor the graph does not read, or whose named dims size a gradient of zeros).

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> fwd = sg.compile((x + y) * z)
    >>> fwd(x=-2.0, y=5.0, z=-4.0)
    -12.0
    """
    nodes, pack = _as_outputs(outputs)
    return _build(nodes, pack, backend, _declared(inputs), options, Stats())


def value_and_grad(f, wrt, backend: str = "numba", inputs=(), **options) -> Compiled:
    """Compile ``f`` together with its gradient with respect to ``wrt``.

    The call returns ``(value, grad)`` for one tensor in ``wrt`` and ``(value, [grads])``
    for a list, as in ``sg.grad``.  Every tensor in ``wrt`` is accepted as an input even if
    ``f`` does not use it; ``inputs=[...]`` declares more, as in :func:`compile`.

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> vg = sg.value_and_grad((x + y) * z, wrt=[x, y, z])
    >>> vg(x=-2.0, y=5.0, z=-4.0)
    (-12.0, [-4.0, -4.0, 3.0])
    """
    stats = Stats()
    started = time.perf_counter()
    f = as_node(f)
    grads = grad(f, wrt)
    stats.derive = time.perf_counter() - started
    single = not isinstance(wrt, (list, tuple))
    wrt_list = [wrt] if single else list(wrt)
    for w in wrt_list:
        if w.op != "input":
            raise GraphError(
                f"value_and_grad differentiates with respect to input tensors (the call's "
                f"keywords); {w!r} is computed. Use sg.grad for intermediate nodes."
            )
    if single:
        pack = "value_grad"
    else:
        pack = "value_grads"
    outputs = [f] + ([grads] if single else grads)
    return _build(outputs, pack, backend, wrt_list + _declared(inputs), options, stats)
