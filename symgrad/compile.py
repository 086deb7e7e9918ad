"""The pipeline: graph -> (grad) -> passes -> backend -> a callable.

``compile`` and ``value_and_grad`` return a :class:`Compiled`: call it with keyword
arguments named after the input tensors; it checks them (``backends/inputs.py``), runs the
backend program, and returns a float for a scalar output and fresh arrays otherwise.

Warm start: before deriving anything, both look up a record (``kernel_cache.read_record``)
under a key made of the exact fingerprint of the *input* graph (``ir/fingerprint.py``: its
nodes, constants to the last digit, dtypes, shapes, dims, the declared inputs and the
``wrt`` list), the way the result is packed, the backend, the options, symgrad's source
digest with the versions of Python, NumPy and SymPy, and the rules of the declared ops as
they are now (``ops_digest``: an op declared by the user, or a rule replaced at run time).
The record (:class:`_Warm`) holds the optimised graph, the signature, what a call does
with each output and the key of the Numba backend's own record of the kernel
(``numba_backend.build``; the key above covers that backend's settings); with it,
derivation and simplification are skipped (``stats.warm``), and the backend's record skips
code generation.  The graph is kept as bytes and rebuilt only when read
(``serialize.Deferred``): rebuilding a network's formulas costs more than finding its
kernel.  A missing or damaged record means the usual pipeline, which then writes it.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import backends, pycode
from .autodiff import grad
from .backends import kernel_cache
from .backends.inputs import _MISSING, Signature, fast_caller
from .errors import ArgumentError, GraphError
from .ir import Node, serialize, to_text, toposort
from .ir.fingerprint import fingerprint, ops_digest
from .ir.op import OPS
from .ops.api import as_node
from .passes import optimize


@dataclass
class Stats:
    """Where compile time went, in seconds, and which tier runs the calls.

    ``tier`` is the backend that ran the last call (``"numba"`` or ``"numpy"``); with
    ``backend="auto"`` it starts as ``"numpy"`` and ``numpy_calls`` / ``numba_calls`` count
    the calls each tier answered (codegen and numba are then spent in the background).
    """

    derive: float = 0.0
    simplify: float = 0.0
    codegen: float = 0.0
    numba: float = 0.0
    cache_hit: bool = False
    warm: bool = False  # the optimised graph came from the warm-start cache
    codegen_skipped: bool = False  # the kernel's source came from the cache too
    nodes_before: int = 0
    nodes_after: int = 0
    tier: str = ""
    numpy_calls: int = 0
    numba_calls: int = 0

    @property
    def total(self) -> float:
        return self.derive + self.simplify + self.codegen + self.numba


@dataclass
class Compiled:
    """A compiled function of the graph's input tensors (keyword arguments by name)."""

    # the optimised graph the backend runs (``outputs``): a list, or on a warm start a
    # serialize.Deferred until first read
    _outputs: Sequence[Node]
    signature: Signature
    program: object
    backend: str
    pack: str  # how a call returns the outputs: see _finisher
    stats: Stats = field(default_factory=Stats)
    options: dict = field(default_factory=dict)
    keys: tuple = ()  # the names of a dict ``wrt``, for pack "value_named"
    kinds: tuple = ()  # what a call does with each output (_output_kinds), if known
    _split_programs: object = field(default=None, repr=False)
    _split_lock: object = field(default_factory=threading.Lock, repr=False)
    _finish: object = field(default=None, repr=False)  # generated in __post_init__
    _fast: object = field(default=None, repr=False)  # likewise (see _fast_call)
    _generated: tuple = field(default=(), repr=False)  # the functions generated for it
    # how it was made: (maker, args, kwargs) over the *input* graph; a Compiled pickles as
    # that and is rebuilt where it lands (see _restore), never as machine code
    recipe: tuple = field(default=None, repr=False)

    @property
    def source(self) -> str:
        """What runs: generated kernel source (numba) or the graph as text (numpy)."""
        return self.program.source

    @property
    def outputs(self) -> list[Node]:
        """The optimised graph's output nodes."""
        if type(self._outputs) is not list:  # a warm start's graph, rebuilt at first read
            self._outputs = list(self._outputs)
        return self._outputs

    @property
    def graph_text(self) -> str:
        """The optimised graph, one node a line."""
        return to_text(self.outputs)

    @property
    def input_names(self) -> list[str]:
        return list(self.signature.names)

    def __call__(self, /, *args, **inputs):  # "self" may be an input name
        if args:
            self._positional(args)
        if self._fast is not None:  # checks, kernel, packing in one
            result = self._fast(inputs)
            if result is not None:
                return result
        bound = self.signature.fast_bind(inputs) or self.signature.bind(inputs)
        return self._finish(self.program(*bound))

    def _positional(self, args):
        raise ArgumentError(
            f"a compiled function takes its inputs by keyword ({len(args)} positional "
            f"argument(s) given); call it as f({', '.join(n + '=...' for n in self.input_names)})"
        )

    def __post_init__(self):
        # (a warm start knows the kinds: its graph need not be read for them)
        self.kinds = self.kinds or _output_kinds(self._outputs)
        self._finish = _finisher(self.kinds, self.pack, keys=self.keys)
        fast, method = _fast_call(self)
        self._generated = (self.signature.fast_bind, self._finish, fast)
        if method:  # the generated __call__ takes the inputs as parameters: a class of its own
            self.__class__ = type("Compiled", (Compiled,), {"__call__": fast})
        else:
            self._fast = fast

    def _slow(self, args, extra, given):
        """What the generated ``__call__`` does with a call it does not take: the keywords
        back into a dict, and the full path (which converts, or explains)."""
        names = self.signature.names
        inputs = {n: v for n, v in zip(names, given) if v is not _MISSING}
        return Compiled.__call__(self, *args, **inputs, **extra)

    # --- tiers (backend="auto"; immediate for the others) --------------------------------

    def _programs(self) -> list:
        split = self._split_programs
        return [self.program] + ([split.forward, split.backward] if split else [])

    def ready(self) -> bool:
        """True when calls run compiled kernels (always, but for ``backend="auto"`` while
        its Numba kernels still compile in the background)."""
        return all(getattr(p, "ready", lambda: True)() for p in self._programs())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background compiles are done (at most ``timeout`` seconds);
        True if calls now run the kernels.  Raises ``CompileError`` if a compile failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self._programs():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if hasattr(p, "wait") and not p.wait(left):
                return False
        return True

    # --- separate forward and backward kernels (value_and_grad only) ---------------------

    def forward(self, /, *args, **inputs):
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
        # built once, on first use, which may come from several threads at once: a second
        # build would replace the programs that the other threads' residuals belong to
        with self._split_lock:
            if self._split_programs is None:
                if not self.pack.startswith("value"):
                    raise ArgumentError(
                        "forward/backward exist for value_and_grad functions only"
                    )
                self._split_programs = _Split(self)
        return self._split_programs

    def __reduce__(self):
        if self.recipe is None:
            raise ArgumentError(
                "this compiled function was not made by sg.compile or "
                "sg.value_and_grad, so it cannot be pickled"
            )
        return _restore, _encode_recipe(self.recipe)

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
        saved = [g for g in grads if g in forward and g.op.leaf is None]
        for node in toposort(grads, stop=forward):
            if node not in forward:
                saved += [i for i in node.inputs if i in forward and i.op.leaf is None]
        self.saved = list(dict.fromkeys(saved))
        build = backends.get(compiled.backend)
        options = dict(compiled.options)
        self.forward = build([f] + self.saved, compiled.signature, dict(options, name="forward"))
        self.backward = build(grads, compiled.signature, dict(options, name="backward"), self.saved)
        pack = {"value_grad": "one", "value_named": "named"}.get(compiled.pack, "list")
        # a gradient that is a saved value would be the caller's residual buffer: copy it
        kinds = _output_kinds(grads, copied=set(self.saved))
        self.finish = _finisher(kinds, pack, compiled.keys)


# Ops whose value both backends compute into memory of its own (an input or a view never):
# each op's `fresh` fact, declared with the op.
FRESH_OPS = frozenset(name for name, op in OPS.items() if op.fresh)


_SCALARS = {"float64": "float", "float32": "float", "int64": "int", "bool": "bool"}


def _own(value):
    return (
        value if value.flags.writeable and value.flags.c_contiguous else np.array(value, order="C")
    )


def _copy(value):
    return np.array(value, order="C")


def _fast_call(compiled: Compiled):
    """One generated function doing a whole call of ``compiled``: the checks of the
    signature's ``fast_bind``, the kernel call and the packing of its results, for a
    program that offers its kernel (``program.direct``: ``(function, consts)``, with
    ``program(values, dims) == function(*values, *consts)`` and scalars boxed as the
    Python type of their dtype, as Numba does); ``(None, False)`` for other programs.
    A scalar function costs its Python-level overhead per call, so the layers (binder,
    program, finisher) are folded into one function with the same checks, where the
    input names allow it the class's own ``__call__`` (``fast_caller``; then the second
    value is True):

        def __call__(self, *args, x=_MISSING, y=_MISSING, z=_MISSING, **extra):
            if args or extra: return _slow(self, args, extra, (x, y, z, ))
            a0 = x
            ...
            if a0.__class__ is not float: return _slow(self, args, extra, (x, y, z, ))
            ...
            r = _kernel(a0, a1, a2)
            o0, o1, o2, o3, = r
            return (o0, [o1, o2, o3])
    """
    direct = getattr(compiled.program, "direct", None)
    if direct is None:
        return None, False
    function, consts = direct
    names = [f"a{k}" for k in range(len(compiled.signature.inputs))]
    names += [f"_c{k}" for k in range(len(consts))]
    body, returned = _finish_lines(compiled.kinds, compiled.pack, compiled.keys, boxed=True)
    tail = [f"    r = _kernel({', '.join(names)})"] + body + [returned]
    namespace = {"_kernel": function, "_own": _own, "_copy": _copy}
    namespace.update({f"_c{k}": c for k, c in enumerate(consts)})
    return fast_caller(compiled.signature, tail, namespace, slow=Compiled._slow)


def _output_kinds(outputs, copied=frozenset()) -> tuple[str, ...]:
    """What a call does with each output value: a scalar becomes the Python type of its
    dtype (``"float"``, ``"int"``, ``"bool"``); an array is the caller's own, so one that
    could be an input, a view, a read-only broadcast, another output's memory or one of the
    ``copied`` nodes is copied (``"copy"``), a freshly computed one is handed over as it is
    (``"own"``: made C-ordered and writeable if it is not)."""
    kinds, seen = [], set()
    for node in outputs:
        if not node.shape:
            kinds.append(_SCALARS[node.dtype])
        elif node.op.fresh and node not in seen and node not in copied:
            kinds.append("own")
        else:
            kinds.append("copy")
        seen.add(node)
    return tuple(kinds)


def _finisher(kinds: tuple, pack: str, keys=()):
    """A function making a program's output values into what the caller gets, by their
    :func:`_output_kinds`.  ``pack`` is how the values are returned ("one", "tuple",
    "list", "value_grad", "value_grads", and with the dict ``keys`` of a ``wrt`` given by
    name, "named" and "value_named").  Generated as straight-line code, since it runs
    on every call:

        def finish(r):
            o0 = float(r[0])
            o1 = _own(r[1])
            return (o0, [o1])
    """
    body, returned = _finish_lines(kinds, pack, keys)
    namespace = {"_own": _own, "_copy": _copy}
    source = "\n".join(["def finish(r):"] + body + [returned]) + "\n"
    return pycode.function(source, "<symgrad finish>", "finish", namespace)


def _finish_lines(kinds, pack, keys=(), boxed=False):
    """The lines of :func:`_finisher`'s body and its return line; ``boxed``: scalars are
    already of their Python type (a Numba kernel's), and the values are unpacked at once."""
    lines = []
    if boxed:
        lines.append("    " + "".join(f"o{i}, " for i in range(len(kinds))) + "= r")
    for i, kind in enumerate(kinds):
        value = f"o{i}" if boxed else f"r[{i}]"
        if kind in ("own", "copy"):
            lines.append(f"    o{i} = _{kind}({value})")
        elif not boxed:
            lines.append(f"    o{i} = {kind}({value})")
    names = [f"o{i}" for i in range(len(kinds))]
    returns = {
        "one": names[0],
        "tuple": f"({', '.join(names)},)",
        "list": f"[{', '.join(names)}]",
        "value_grad": f"({names[0]}, {names[-1]})",
        "value_grads": f"({names[0]}, [{', '.join(names[1:])}])",
        "named": "{" + ", ".join(f"{k!r}: {n}" for k, n in zip(keys, names)) + "}",
        "value_named": f"({names[0]}, {{"
        + ", ".join(f"{k!r}: {n}" for k, n in zip(keys, names[1:]))
        + "})",
    }
    return lines, f"    return {returns[pack]}"


# numba backend options; the numpy backend ignores them.  vector_math (default True): the
# kernels' exp, log, tanh ... are symgrad's vectorisable ones (backends/vmath.py), or libm's.
OPTIONS = ("parallel", "fastmath", "vector_math")


def _check_options(options):
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ArgumentError(f"unknown option {unknown[0]!r}; the options are {OPTIONS}")


GRAPH_FORMAT = 3  # bump when a graph record changes meaning


def _warm_key(maker, pack, roots, wrt, declared, keys, backend, options, stats) -> str | None:
    """The warm-start key of a compile (None if the arguments are not graphs: the usual
    path then reports what is wrong)."""
    try:
        graph = fingerprint(roots, wrt, declared)
    except Exception:  # noqa: BLE001 - not nodes; the pipeline explains
        return None
    started = time.perf_counter()
    settings = backends.settings(backend)  # the Numba backend's imports Numba: part of its cost
    stats.numba += time.perf_counter() - started
    text = repr(
        (GRAPH_FORMAT, maker, pack, keys, graph, backend, sorted(options.items()), settings,
         kernel_cache.source_digest(), ops_digest())
    )
    return "g_" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class _Warm:
    """A warm-start record: the optimised graph (rebuilt when first read), its signature,
    node counts, what a call does with each output (``_output_kinds``) and the key of the
    Numba backend's record of its kernel (None for the other backends).  The record also
    holds the code of the functions generated for the call (``pycode``)."""

    outputs: serialize.Deferred
    signature: Signature
    nodes_before: int
    nodes_after: int
    kinds: tuple
    kernel_record: str | None


def _warm_graph(key) -> _Warm | None:
    """The warm-start record stored under ``key``, or None."""
    if key is None:
        return None
    record = kernel_cache.read_record(key)
    try:
        code, signature, graph, before, after, kinds, kernel_record = record
        pycode.remember(code)  # before the signature, whose binder is generated as it loads
        signature = pickle.loads(signature)
        if not (isinstance(graph, bytes) and isinstance(signature, Signature)):
            return None
        return _Warm(serialize.Deferred(graph), signature, before, after, kinds, kernel_record)
    except Exception:  # noqa: BLE001 - a damaged or foreign record: do the work again
        return None


def _store_graph(key, compiled):
    if key is None:
        return
    programs = [compiled.program, getattr(compiled.program, "kernel", None)]
    keep = [k for p in programs for k in getattr(p, "cache_keys", ())]
    stats = compiled.stats
    # the Numba backend's record key (see numba_backend.build); the key of this record
    # covers what that key does (backends.settings)
    kernel_record = compiled.program.cache_keys[0] if compiled.backend == "numba" else None
    record = (
        pycode.saved(compiled._generated),
        pickle.dumps(compiled.signature, protocol=pickle.HIGHEST_PROTOCOL),
        serialize.dumps(compiled.outputs), stats.nodes_before, stats.nodes_after,
        compiled.kinds, kernel_record,
    )
    kernel_cache.write_record(key, record, keep=keep)


def _build(outputs, pack, backend, extra_inputs, options, stats, keys=(), warm=None) -> Compiled:
    """Optimise ``outputs`` and build the backend's program; with ``warm`` (a warm-start
    record, :class:`_Warm`), only the latter."""
    _check_options(options)
    build_options = dict(options, stats=stats)
    if warm is None:
        signature = Signature(outputs, extra_inputs)
        started = time.perf_counter()
        stats.nodes_before = len(toposort(outputs))
        optimised = optimize(outputs)
        stats.nodes_after = len(toposort(optimised))
        stats.simplify = time.perf_counter() - started
        kinds = _output_kinds(optimised)
    else:
        optimised, signature, kinds = warm.outputs, warm.signature, warm.kinds
        stats.nodes_before, stats.nodes_after = warm.nodes_before, warm.nodes_after
        stats.warm = True
        if warm.kernel_record:
            build_options["record_key"] = warm.kernel_record
    started = time.perf_counter()
    build = backends.get(backend)  # the first use imports Numba: part of its cost
    stats.numba += time.perf_counter() - started if backend == "numba" else 0.0
    stats.tier = backend  # "auto" sets the tier of each call itself
    program = build(optimised, signature, build_options)
    return Compiled(
        optimised, signature, program, backend, pack, stats, dict(options), keys, kinds
    )


def _as_outputs(outputs):
    if isinstance(outputs, (list, tuple)):
        if not outputs:
            raise ArgumentError("compile needs at least one output")
        return [as_node(o) for o in outputs], "tuple"
    return [as_node(outputs)], "one"


def _declared(inputs) -> list[Node]:
    nodes = [inputs] if isinstance(inputs, Node) else list(inputs or ())
    for node in nodes:
        if not isinstance(node, Node) or node.op.leaf != "input":
            raise ArgumentError(
                f"inputs= takes input tensors (sg.tensor / sg.symbols), got {node!r}"
            )
    return nodes


def compile(outputs, backend: str = "numba", inputs=(), **options) -> Compiled:  # noqa: A001
    """Compile the forward computation of one graph or a list of graphs.

    ``sg.compile(f)`` returns a callable giving ``f``'s value; ``sg.compile([a, b])`` one
    giving a tuple.  ``backend`` is ``"numba"`` (default: compiles, and waits for it),
    ``"numpy"`` (the interpreter) or ``"auto"`` (returns at once and interprets the first
    calls while the Numba kernel compiles in the background: the choice for interactive
    work; ``.ready()``, ``.wait()`` and ``.stats.tier`` say which tier runs).  The callable
    takes the graph's input tensors as keyword arguments (a positional call is an
    ArgumentError listing them); ``inputs=[...]`` declares more (a tensor the graph does
    not read, or whose named dims size a gradient of zeros).

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> fwd = sg.compile((x + y) * z)
    >>> fwd(x=-2.0, y=5.0, z=-4.0)
    -12.0
    """
    nodes, pack = _as_outputs(outputs)
    declared = _declared(inputs)
    _check_options(options)
    stats = Stats()
    key = _warm_key("compile", pack, nodes, [], declared, (), backend, options, stats)
    warm = _warm_graph(key)
    compiled = _build(nodes, pack, backend, declared, options, stats, warm=warm)
    if warm is None:
        _store_graph(key, compiled)
    made = nodes if pack == "tuple" else nodes[0]
    compiled.recipe = ("compile", (made,), dict(options, backend=backend, inputs=inputs))
    return compiled


def value_and_grad(f, wrt, backend: str = "numba", inputs=(), **options) -> Compiled:
    """Compile ``f`` together with its gradient with respect to ``wrt``.

    The call returns ``(value, grad)`` for one tensor in ``wrt``, ``(value, [grads])`` for
    a list and ``(value, {name: grad})`` for a dict ``{name: tensor}`` (the dict's keys, in
    its order; they need not be the tensors' names), as in ``sg.grad``.  Every tensor in
    ``wrt`` is accepted as an input even if ``f`` does not use it; ``inputs=[...]``
    declares more, as in :func:`compile`.  ``backend`` as in :func:`compile` (``"auto"``
    for interactive work: no wait for Numba).

    >>> import symgrad as sg
    >>> x, y, z = sg.symbols("x y z")
    >>> vg = sg.value_and_grad((x + y) * z, wrt=[x, y, z])
    >>> vg(x=-2.0, y=5.0, z=-4.0)
    (-12.0, [-4.0, -4.0, 3.0])
    >>> sg.value_and_grad((x + y) * z, wrt={"x": x, "z": z})(x=-2.0, y=5.0, z=-4.0)
    (-12.0, {'x': -4.0, 'z': 3.0})
    """
    keys = ()
    if isinstance(wrt, Mapping):
        keys = tuple(wrt)
        for key in keys:
            if not isinstance(key, str):
                raise ArgumentError(f"the keys of a dict wrt must be strings, got {key!r}")
        wrt = list(wrt.values())
    stats = Stats()
    f = as_node(f)
    single = not isinstance(wrt, (list, tuple))
    wrt_list = [wrt] if single else list(wrt)
    pack = "value_grad" if single else "value_named" if keys else "value_grads"
    declared = _declared(inputs)
    _check_options(options)
    warm = key = None
    if all(isinstance(w, Node) and w.op.leaf == "input" for w in wrt_list):
        key = _warm_key(
            "value_and_grad", pack, [f], wrt_list, declared, keys, backend, options, stats
        )
        warm = _warm_graph(key)
    if warm is None:
        started = time.perf_counter()
        grads = grad(f, wrt)
        stats.derive = time.perf_counter() - started
        for w in wrt_list:
            if w.op.leaf != "input":
                raise GraphError(
                    f"value_and_grad differentiates with respect to input tensors (the call's "
                    f"keywords); {w!r} is computed. Use sg.grad for intermediate nodes."
                )
        outputs = [f] + ([grads] if single else grads)
    else:
        outputs = None  # the optimised graph is in `warm`
    compiled = _build(outputs, pack, backend, wrt_list + declared, options, stats, keys, warm)
    if warm is None:
        _store_graph(key, compiled)
    made = dict(zip(keys, wrt)) if keys else wrt  # wrt as given
    compiled.recipe = ("value_and_grad", (f, made), dict(options, backend=backend, inputs=inputs))
    return compiled


# --- pickling: a Compiled travels as its recipe ----------------------------------------------

_MAKERS = {"compile": compile, "value_and_grad": value_and_grad}
_restored: OrderedDict = OrderedDict()  # recipe key -> Compiled, per process (LRU)
_restored_lock = threading.Lock()
RESTORED_MAX = 64
restore_counts = {"built": 0, "reused": 0}  # how unpickling went in this process


class _Ref(int):
    """Where a node of the recipe sits in its serialized graph."""


def _encode_recipe(recipe):
    """``(key, graph, maker, args, kwargs)``: the nodes of the recipe written once, jointly
    (``ir.serialize``), and a key naming the result (the roots' digests and the rest)."""
    maker, args, kwargs = recipe
    nodes: list = []

    def strip(value):
        if isinstance(value, Node):
            nodes.append(value)
            return _Ref(len(nodes) - 1)
        if isinstance(value, (list, tuple)):
            return type(value)(strip(v) for v in value)
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        return value

    args, kwargs = strip(args), strip(kwargs)
    key = repr((maker, [n.digest for n in nodes], args, sorted(kwargs.items())))
    return key, serialize.dump(nodes), maker, args, kwargs


def _restore(key, graph, maker, args, kwargs):
    """A pickled Compiled, rebuilt: the graph loaded, the pipeline run again (its kernels
    come from this machine's kernel cache), at most once per process for one recipe."""
    with _restored_lock:
        compiled = _restored.get(key)
        if compiled is not None:
            _restored.move_to_end(key)
            restore_counts["reused"] += 1
            return compiled
    nodes = serialize.load(graph)

    def put(value):
        if isinstance(value, _Ref):
            return nodes[value]
        if isinstance(value, (list, tuple)):
            return type(value)(put(v) for v in value)
        if isinstance(value, dict):
            return {k: put(v) for k, v in value.items()}
        return value

    compiled = _MAKERS[maker](*put(args), **put(kwargs))
    with _restored_lock:
        compiled = _restored.setdefault(key, compiled)
        restore_counts["built"] += 1
        while len(_restored) > RESTORED_MAX:
            _restored.popitem(last=False)
    return compiled
