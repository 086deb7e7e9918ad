"""Numba source generation: one plain-Python ``@njit`` kernel per compiled function.

The kernel takes the inputs (sorted by name, then constant arrays) and returns a tuple of
the outputs.  Each node becomes a few lines in topological order: elementwise formulas and
broadcasts are explicit loops whose body loads each operand into a local, computes the
formula (common subexpressions first) and stores one element; a reduction whose input is
an elementwise formula used nowhere else evaluates the formula inside its own loop, so no
temporary is written; matmuls call ``np.dot`` (BLAS); ``pick`` and ``one_hot`` loop over the
labels.  Scalars (shape ``()``) are plain locals.  Labels were checked before the call
(``inputs.py``), so the kernel indexes without bounds checks.

One entry of :data:`LOWER` per op.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..ir import Node, toposort
from ..ops.elementwise import sym

NP_DTYPES = {
    "float64": "np.float64",
    "float32": "np.float32",
    "int64": "np.int64",
    "bool": "np.bool_",
}


# One table of what each function of a formula calls in a kernel (a scalar call per
# element); ops.elementwise defines the functions, ops.numeric their NumPy meaning.
CALLS = {
    "Exp": "math.exp",
    "Log": "math.log",
    "Log1p": "math.log1p",
    "Expm1": "math.expm1",
    "Sqrt": "math.sqrt",
    "Erf": "math.erf",
    "tanh": "math.tanh",
}


class ScalarPrinter(PythonCodePrinter):
    """SymPy -> one scalar Python expression that Numba compiles (``math`` functions).

    Numba's ``math`` functions follow C (``math.log(-1.0)`` is nan, ``math.exp(1000.0)``
    inf) and the kernels use ``error_model="numpy"`` (``1.0 / 0.0`` is inf), so a formula
    computes what NumPy computes for it.
    """

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in CALLS:
            return f"{CALLS[name]}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    _print_Exp = _print_Log = _print_Log1p = _print_Expm1 = _print_Function
    _print_Sqrt = _print_Erf = _print_tanh = _print_Function

    def _number(self, text: str) -> str:
        return text

    def _print_Float(self, expr):
        return self._number(repr(float(expr)))

    def _print_Const(self, expr):
        return self._number(repr(expr.value))

    def _print_Div(self, expr):
        return f"(({self._print(expr.args[0])}) / ({self._print(expr.args[1])}))"

    def _print_Power(self, expr):
        # np.power: IEEE pow (0.0 ** -1.0 is inf; Python's ** raises ZeroDivisionError)
        base, exponent = (self._print(a) for a in expr.args)
        return f"np.power({base}, {exponent})"

    def _print_Paren(self, expr):
        return f"({self._print(expr.args[0])})"

    def _print_IsNaN(self, expr):
        a = self._print(expr.args[0])
        return f"({a} != {a})"

    def _print_DiracDelta(self, expr):
        # a distribution: its documented value is 0 almost everywhere (as in JAX)
        return self._number("0.0")

    def _print_sign(self, expr):
        a = self._print(expr.args[0])
        one, zero = self._number("1.0"), self._number("0.0")
        return f"({one} if {a} > 0 else (-{one} if {a} < 0 else {zero}))"

    # every value is real: the real part is the value, the imaginary part zero
    def _print_re(self, expr):
        return self._print(expr.args[0])

    def _print_im(self, expr):
        return self._number("0.0")

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_And(self, expr):
        return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " or ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(not {self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        # nested conditional expressions: only the chosen branch is evaluated
        *branches, (last, cond) = expr.args
        text = (
            self._print(last)
            if cond == sp.true
            else f"({self._print(last)} if {self._print(cond)} else math.nan)"
        )
        for value, cond in reversed(branches):
            text = f"({self._print(value)} if {self._print(cond)} else {text})"
        return text

    def _print_Symbol(self, expr):
        return expr.name


class Float32Printer(ScalarPrinter):
    """Numbers as float32 literals, so a float32 formula stays float32 in Numba (an int or
    float64 literal would widen every operation it touches to float64)."""

    def _number(self, text: str) -> str:
        return f"np.float32({text})"

    def _print_Integer(self, expr):
        return f"np.float32({int(expr)})"

    def _print_Rational(self, expr):
        return f"(np.float32({expr.p}) / np.float32({expr.q}))"

    def _print_Pow(self, expr, rational=False):
        if not expr.free_symbols:  # a constant of a formula (sqrt(2)): rounded once
            return self._number(repr(float(expr)))
        # formulas hold only positive integer powers: a float32 power stays float32
        base = self.parenthesize(expr.base, 100)
        return f"{base}**{int(expr.exp)}"


def _printer(dtype: str):
    cls = Float32Printer if dtype == "float32" else ScalarPrinter
    return cls({"fully_qualified_modules": True, "standard": "python3"})


class Kernel:
    """Builds the source text of one kernel for ``outputs``.

    Nodes are emitted in topological order, except that elementwise nodes, broadcasts and
    reductions over the same loop shape are collected into one *loop group* and emitted as
    a single loop nest.  Inside the group a value is a local; it is stored to an array only
    if something outside the group (or the caller) reads it.  A node that does not depend
    on the open group is emitted before it, so the group stays open as long as possible.
    """

    def __init__(self, outputs: list[Node], args: list[Node], name="kernel", parallel=False):
        """``args`` are the nodes the kernel receives: input tensors, and for a backward
        kernel the saved forward values; constant arrays are appended after them."""
        self.outputs, self.args, self.name, self.parallel = outputs, args, name, parallel
        self.order = toposort(outputs, stop=set(args))
        self.users: dict[Node, list[Node]] = {}
        for n in self.order:
            for i in n.inputs:
                self.users.setdefault(i, []).append(n)
        self.var: dict[Node, str] = {}
        self.lines: list[str] = []
        given = set(args)
        self.consts: list[Node] = [n for n in self.order if n.op == "const" and n not in given]
        self.dims: dict[str, str] = {}
        self.group: dict[Node, None] = {}  # the open loop group (a dict: ordered, O(1) `in`)
        self.rank = {n: i for i, n in enumerate(self.order)}  # topological position

    # --- small helpers -------------------------------------------------------------------

    def emit(self, line: str, depth: int = 1):
        self.lines.append("    " * depth + line)

    def shape(self, shape) -> str:
        dims = [self.size(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def size(self, d) -> str:
        return self.dims[d] if isinstance(d, str) else str(d)

    def index(self, node: Node, shape, idx: list[str]) -> str:
        """How a loop over ``shape`` with indices ``idx`` reads ``node`` (broadcasting)."""
        if node.shape == ():
            return self.var[node]
        lead = len(shape) - node.ndim
        parts = ["0" if d == 1 else idx[lead + k] for k, d in enumerate(node.shape)]
        return f"{self.var[node]}[{', '.join(parts)}]"

    def loops(self, shape, depth: int, parallel_ok: bool) -> tuple[list[str], int]:
        """Open nested loops over ``shape``; returns the index names and the body depth."""
        idx = ["0" if d == 1 else f"i{k}" for k, d in enumerate(shape)]
        for k, d in enumerate(shape):
            if d == 1:  # a loop of one: index 0 directly
                continue
            rng = "prange" if parallel_ok and self.parallel and depth == 1 else "range"
            self.emit(f"for {idx[k]} in {rng}({self.size(d)}):", depth)
            depth += 1
        return idx, depth

    def formula(self, node: Node, read, depth: int) -> str:
        """Emit the common subexpressions of an ew node's formula; return the final
        expression.  ``read(x)`` names the local or scalar holding input ``x``."""
        float32 = (
            node.dtype == "float32"
            or node.dtype == "bool"
            and any(x.dtype == "float32" for x in node.inputs)
        )
        printer = _printer("float32" if float32 else "float64")
        names = {}
        for k, x in enumerate(node.inputs):
            names[sym(k)] = sp.Symbol(read(x))  # a local or a scalar: a plain name
        expr = node.attr("expr").xreplace(names)
        temps, (reduced,) = sp.cse(expr, symbols=sp.numbered_symbols("t"), optimizations=None)
        for t, value in temps:
            self.emit(f"{t} = {printer.doprint(value)}", depth)
        return printer.doprint(reduced)

    # --- loop groups ---------------------------------------------------------------------

    @staticmethod
    def loop_shape(node: Node):
        """The iteration space of a node that loops elementwise, or None."""
        if node.op in ("ew", "broadcast_to") and node.shape != ():
            return node.shape
        if node.op in ("sum", "max"):
            return node.inputs[0].shape
        return None

    def joins_group(self, node: Node) -> bool:
        shape = self.loop_shape(node)
        if shape is None or self.group and shape != self.loop_shape(next(iter(self.group))):
            return False
        # a reduction's result is complete only after the loop: its readers cannot join
        return not any(i in self.group and i.op in ("sum", "max") for i in node.inputs)

    def flush(self):
        """Emit the open loop group as one loop nest."""
        if not self.group:
            return
        shape = self.loop_shape(next(iter(self.group)))
        # Reductions further down over the same loop whose inputs are ready join now
        # (e.g. a bias gradient summing the rows of an adjoint computed here).
        later = {u for n in self.group for u in self.users.get(n, []) if u.op in ("sum", "max")}
        for node in sorted(later, key=self.rank.__getitem__):
            ready = node not in self.var and all(i in self.var for i in node.inputs)
            if ready and self.joins_group(node):
                self.var[node] = f"v{self.rank[node]}"
                self.group[node] = None
        group, self.group = list(self.group), {}
        inside = set(group)
        stored = [
            n
            for n in group
            if n.op in ("sum", "max")
            or n in self.outputs
            or any(u not in inside for u in self.users.get(n, []))
        ]
        for n in stored:
            _allocate(self, n)
        # prange runs the outermost loop (the first axis longer than 1) in parallel: safe when
        # every iteration writes its own slots, i.e. no sum over that axis into an array
        # (a sum to a scalar is a reduction Numba parallelises) and no max
        outer = next((a for a, d in enumerate(shape) if d != 1), None)
        safe = all(
            n.op != "max" and (n.op != "sum" or n.shape == () or outer not in n.attr("axes"))
            for n in group
        )
        idx, depth = self.loops(shape, 1, parallel_ok=safe and outer is not None)

        loaded: dict[Node, str] = {}

        def read(x):  # each value a loop body reads is loaded once per iteration
            if x in inside:
                return f"e{self.rank[x]}"
            if x.shape == ():
                return self.var[x]
            if x not in loaded:
                loaded[x] = f"ld_{self.var[x]}"
                self.emit(f"{loaded[x]} = {self.index(x, shape, idx)}", depth)
            return loaded[x]

        for n in group:
            local = f"e{self.rank[n]}"
            if n.op == "ew":
                self.emit(f"{local} = {self.formula(n, read, depth)}", depth)
            elif n.op == "broadcast_to":
                self.emit(f"{local} = {read(n.inputs[0])}", depth)
            else:
                _accumulate(self, n, read(n.inputs[0]), idx, depth)
                continue
            if n in stored:
                self.emit(f"{self.var[n]}[{', '.join(idx)}] = {local}", depth)
        for n in group:
            if _wide(n):  # the float64 accumulator rounded once to float32
                acc = _accumulator(self, n)
                cast = f"np.float32({acc})" if n.shape == () else f"{acc}.astype(np.float32)"
                self.emit(f"{self.var[n]} = {cast}")

    # --- the kernel ----------------------------------------------------------------------

    def source(self) -> str:
        if self.lines:  # generated already
            return self._text
        for k, n in enumerate(self.args):
            self.var[n] = f"in_{n.name}" if n.op == "input" else f"saved{k}"
            for axis, d in enumerate(n.shape):
                if isinstance(d, str) and d not in self.dims:
                    self.dims[d] = f"n_{d}"
                    self.emit(f"n_{d} = {self.var[n]}.shape[{axis}]")
        for k, n in enumerate(self.consts):
            self.var[n] = f"c{k}"
        args = [self.var[n] for n in self.args + self.consts]
        for node in self.order:
            if node in self.var:  # given, or pulled into a loop group early
                continue
            if not self.joins_group(node):
                # a node reading the open group, or a new loop, comes after the group
                if self.loop_shape(node) is not None or any(i in self.group for i in node.inputs):
                    self.flush()
            self.var[node] = f"v{self.rank[node]}"
            if self.loop_shape(node) is not None:
                self.group[node] = None
            else:
                LOWER[node.op](self, node)
        self.flush()
        outs = ", ".join(self.var[o] for o in self.outputs)
        self.emit(f"return ({outs},)")
        header = f"def {self.name}({', '.join(args)}):"
        self._text = "\n".join([header] + self.lines) + "\n"
        return self._text


# --- lowerings ---------------------------------------------------------------------------


def _wide(node: Node) -> bool:
    """Whether a reduction accumulates in float64: a float32 sum does, and rounds once at
    the end (deterministic, and accurate: 2e7 float32 ones sum to 2e7, not 2**24)."""
    return node.op == "sum" and node.dtype == "float32"


def _accumulator(k: Kernel, node: Node) -> str:
    return f"{k.var[node]}_acc" if _wide(node) else k.var[node]


def _allocate(k: Kernel, node: Node):
    """The storage of a loop-group member that is read after its loop."""
    v, dtype = _accumulator(k, node), NP_DTYPES["float64" if _wide(node) else node.dtype]
    if node.op in ("sum", "max"):
        lowest = "-np.inf" if node.dtype.startswith("float") else "np.iinfo(np.int64).min"
        init = "0" if node.op == "sum" else lowest
        if node.shape == ():
            k.emit(f"{v} = {dtype}({init})")
        else:
            k.emit(f"{v} = np.full({k.shape(node.shape)}, {init}, dtype={dtype})")
    else:
        k.emit(f"{v} = np.empty({k.shape(node.shape)}, dtype={dtype})")


def _accumulate(k: Kernel, node: Node, value: str, idx, depth: int):
    """One step of a reduction inside its loop."""
    axes, v = node.attr("axes"), _accumulator(k, node)
    if node.shape == ():
        target = v
    elif node.attr("keepdims"):
        target = f"{v}[{', '.join('0' if i in axes else idx[i] for i in range(len(idx)))}]"
    else:
        target = f"{v}[{', '.join(idx[i] for i in range(len(idx)) if i not in axes)}]"
    if node.op == "sum":
        k.emit(f"{target} += {value}", depth)
    else:  # NaN propagates as in np.max: once the running max is NaN it stays
        k.emit(f"{target} = _max_nan({target}, {value})", depth)


def _scalar_ew(k: Kernel, node: Node):
    expr = k.formula(node, lambda x: k.var[x], 1)
    k.emit(f"{k.var[node]} = {NP_DTYPES[node.dtype]}({expr})")


def _argmax_mask(k: Kernel, node: Node):
    (x,) = node.inputs
    axes, v = node.attr("axes"), k.var[node]
    kept_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    k.emit(f"{v}_best = np.full({k.shape(kept_shape)}, -np.inf, dtype={NP_DTYPES[x.dtype]})")
    k.emit(f"{v}_found = np.zeros({k.shape(kept_shape)}, dtype=np.bool_)")
    k.emit(f"{v} = np.zeros({k.shape(x.shape)}, dtype=np.bool_)")
    slot = lambda idx: ", ".join("0" if i in axes else idx[i] for i in range(x.ndim))  # noqa: E731
    idx, depth = k.loops(x.shape, 1, parallel_ok=False)
    s, val = slot(idx), k.index(x, x.shape, idx)
    k.emit(f"{v}_best[{s}] = _max_nan({v}_best[{s}], {val})", depth)
    idx, depth = k.loops(x.shape, 1, parallel_ok=False)
    s, val = slot(idx), k.index(x, x.shape, idx)
    k.emit(f"if not {v}_found[{s}] and ({val} == {v}_best[{s}] or {val} != {val}):", depth)
    k.emit(f"{v}[{', '.join(idx)}] = True", depth + 1)
    k.emit(f"{v}_found[{s}] = True", depth + 1)


def _matmul(k: Kernel, node: Node):
    a, b = node.inputs
    cast = lambda x: (
        k.var[x] if x.dtype == node.dtype else f"{k.var[x]}.astype({NP_DTYPES[node.dtype]})"
    )  # noqa: E731
    k.emit(f"{k.var[node]} = np.dot({cast(a)}, {cast(b)})")


def _transpose(k: Kernel, node: Node):
    (x,) = node.inputs
    if x.ndim == 2:  # .T is an F-ordered view that BLAS reads without a copy
        k.emit(f"{k.var[node]} = {k.var[x]}.T")
    else:
        k.emit(f"{k.var[node]} = np.transpose({k.var[x]}, {node.attr('perm')})")


def _reshape(k: Kernel, node: Node):
    (x,) = node.inputs
    v, src = k.var[node], k.var[x]
    if x.shape == ():
        k.emit(f"{v} = np.full({k.shape(node.shape)}, {src}, dtype={NP_DTYPES[node.dtype]})")
    elif node.shape == ():
        k.emit(f"{v} = np.ascontiguousarray({src}).ravel()[0]")
    else:
        k.emit(f"{v} = np.ascontiguousarray({src}).reshape({k.shape(node.shape)})")


def _pick(k: Kernel, node: Node):
    scores, labels = node.inputs
    v = k.var[node]
    if node.shape == ():
        k.emit(f"{v} = {k.var[scores]}[{k.var[labels]}]")
        return
    k.emit(f"{v} = np.empty({k.shape(node.shape)}, dtype={NP_DTYPES[node.dtype]})")
    idx, depth = k.loops(node.shape, 1, parallel_ok=True)
    at = ", ".join(idx)
    k.emit(f"{v}[{at}] = {k.var[scores]}[{at}, {k.var[labels]}[{at}]]", depth)


def _one_hot(k: Kernel, node: Node):
    (labels,) = node.inputs
    v = k.var[node]
    k.emit(f"{v} = np.zeros({k.shape(node.shape)}, dtype={NP_DTYPES[node.dtype]})")
    if labels.shape == ():
        k.emit(f"{v}[{k.var[labels]}] = 1")
        return
    idx, depth = k.loops(labels.shape, 1, parallel_ok=True)
    at = ", ".join(idx)
    k.emit(f"{v}[{at}, {k.var[labels]}[{at}]] = 1", depth)


def _dim(k: Kernel, node: Node):
    k.emit(f"{k.var[node]} = {NP_DTYPES[node.dtype]}({k.dims[node.attr('name')]})")


def _identity(k: Kernel, node: Node):
    k.emit(f"{k.var[node]} = {k.var[node.inputs[0]]}")


LOWER = {
    "input": None,  # kernel arguments
    "const": None,  # kernel arguments
    "dim": _dim,
    "ew": _scalar_ew,  # scalars; arrays loop in groups (Kernel.flush)
    "sum": None,  # loop groups
    "max": None,  # loop groups
    "argmax_mask": _argmax_mask,
    "matmul": _matmul,
    "transpose": _transpose,
    "reshape": _reshape,
    "broadcast_to": None,  # loop groups
    "pick": _pick,
    "one_hot": _one_hot,
    "stop_gradient": _identity,
}


def prelude(key: str, body: str) -> str:
    """The module header of a kernel: imports, and the helpers its body uses."""
    numba_names = "njit, prange" if "prange(" in body else "njit"
    text = (
        f'"""Generated by symgrad; do not edit.  Key: {key}"""\n'
        "import math\n\n"
        "import numpy as np\n"
        f"from numba import {numba_names}\n"
        "from numba import types as nt\n\n\n"
    )
    if "_max_nan(" in body:
        text += (
            '@njit(inline="always")\n'
            "def _max_nan(acc, val):\n"
            "    # the running max of np.max: NaN wins and then stays\n"
            "    return val if (val > acc or val != val) and acc == acc else acc\n\n\n"
        )
    return text
