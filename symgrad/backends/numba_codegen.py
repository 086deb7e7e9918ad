"""Numba source generation: one plain-Python ``@njit`` kernel per compiled function.

The kernel takes the inputs (sorted by name, then constant arrays) and returns a tuple of
the outputs.  :class:`Kernel` schedules the nodes in topological order: elementwise formulas
and broadcasts are explicit loops whose body loads each operand into a local, computes the
formula (common subexpressions first) and stores one element; a reduction whose input is an
elementwise formula used nowhere else evaluates the formula inside its own loop, so no
temporary is written.  What each op emits is its entry of ``numba_lowerings.LOWER``; how a
formula prints is ``numba_printers.py``.  Variables are numbered, never derived from a
user's names (Python folds look-alike identifiers together: ``ℕ`` is ``N``); the names are
kept in comments.

A loop group whose sum along its innermost axis is fed by transcendental functions runs that
axis in blocks (:meth:`Kernel.blocked_loops`), so that the elementwise part has a loop of
its own, free of the reduction, for LLVM to vectorise.  A loss over a batch may run as a loop
over blocks of rows (:meth:`Kernel.row_blocked`, planned by ``rowblock.py``).  With
``parallel=True`` a nest large enough runs under ``prange``, and sums add into a slot per
iteration, summed in order after the nest (the same bits whatever the thread count).
The backend then fuses consecutive nests over the same rows into one loop
(``loopfuse.py``) and shares nests the kernel repeats (``split.py``).

Kernels avoid what Numba compiles again in every process that compiles a kernel (NumPy's
``np.empty``, ``np.full``, ``reshape``, ``astype``, its ``**`` and ``min``): they allocate,
reshape and cast through ``arrays.py`` (``ar.empty(...)``, cached once per machine) and
write small integer powers as products (``numba_printers.ScalarPrinter._product``).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import sympy as sp

from ..ir import Node, toposort
from ..ir import dtypes as dt
from ..ir.shapes import DimExpr
from ..ops.elementwise import sym
from . import arrays, blas, rowblock, vmath
from .numba_lowerings import (
    LOWER,
    Map,
    acc_dtype,
    accumulates,
    accumulator,
    allocate,
    gathers,
    reduced_axes,
    reduction_slot,
    round_wide,
)
from .numba_printers import NP_DTYPES, formula_printer, vector_sigmoids


class Kernel:
    """Builds the source text of one kernel for ``outputs``.

    Nodes are emitted in topological order, except that elementwise nodes, broadcasts and
    reductions over the same loop shape are collected into one *loop group* and emitted as
    a single loop nest.  Inside the group a value is a local; it is stored to an array only
    if something outside the group (or the caller) reads it.  A node that does not depend
    on the open group is emitted before it, so the group stays open as long as possible.
    """

    def __init__(
        self, outputs: list[Node], args: list[Node], name="kernel", parallel=False,
        vector_math=True,
    ):
        """``args`` are the nodes the kernel receives: input tensors, and for a backward
        kernel the saved forward values; constant arrays are appended after them."""
        self.outputs, self.args, self.name, self.parallel = outputs, args, name, parallel
        self.vector_math = vector_math
        self.order = toposort(outputs, stop=set(args))
        self.users: dict[Node, list[Node]] = {}
        for n in self.order:
            for i in n.inputs:
                self.users.setdefault(i, []).append(n)
        self.var: dict[Node, str] = {}
        self.lines: list[str] = []
        given = set(args)
        self.consts: list[Node] = [n for n in self.order if n.op.leaf == "const" and n not in given]
        self.dims: dict[str, str] = {}
        self.group: dict[Node, None] = {}  # the open loop group (a dict: ordered, O(1) `in`)
        self.rank = {n: i for i, n in enumerate(self.order)}  # topological position
        self.branches: dict[int, str] = {}  # line of a prange nest -> its size, at run time
        self.indent = 0  # extra levels: 1 inside the loop over blocks of rows
        self.phase: set[Node] | None = None  # the nodes being emitted (None: all of them)
        self.totals: set[Node] = set()  # sums over blocks of rows, allocated before the loop
        self.pending: set[Node] = set()  # totals whose accumulation is not emitted yet
        self.filled: set[Node] = set()  # products added into other terms (fill_terms)
        # Elementwise values read by nothing but a gather (``pick(log_softmax(S), y)``),
        # computed at the elements it reads with no array of their own (:meth:`element`):
        # not an output or an argument (those are arrays anyway), nor a sum a product is
        # added into (``pick(X @ W + b, y)``: that array is gemm's output).
        self.gathered = {
            x
            for n in self.order
            if gathers(n)
            for x in n.inputs[:1]
            if isinstance(LOWER[x.op], Map)
            and self.users[x] == [n]
            and x not in outputs
            and x not in given
            and not any(self.sum_of(i) is x for i in x.inputs)
        }

    # --- small helpers -------------------------------------------------------------------

    def emit(self, line: str, depth: int = 1):
        self.lines.append("    " * (depth + self.indent) + line)

    def emitted(self, node: Node) -> bool:
        """Whether ``node`` has its value (a total only once its accumulation is emitted)."""
        return node in self.var and node not in self.pending

    def shape(self, shape) -> str:
        dims = [self.size(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def size(self, d) -> str:
        if isinstance(d, DimExpr):
            return d.code(self.dims.__getitem__)
        return self.dims[d] if isinstance(d, str) else str(d)

    def index(self, node: Node, shape, idx: list[str]) -> str:
        """How a loop over ``shape`` with indices ``idx`` reads ``node`` (broadcasting)."""
        if node.shape == ():
            return self.var[node]
        lead = len(shape) - node.ndim
        parts = ["0" if d == 1 else idx[lead + k] for k, d in enumerate(node.shape)]
        return f"{self.var[node]}[{', '.join(parts)}]"

    def big_enough(self, shape, parallel: bool) -> bool:
        """Whether a nest over ``shape`` may run in parallel: not if its known size is below
        :data:`PARALLEL_MIN_ELEMENTS` (a named size is decided at run time)."""
        sizes = [d for d in shape if d != 1]
        if parallel and all(isinstance(d, int) for d in sizes):
            return _product(sizes) >= PARALLEL_MIN_ELEMENTS
        return parallel

    def branch_here(self, shape, parallel: bool):
        """Mark the nest whose ``for`` is the next line: serial below the threshold."""
        sizes = [d for d in shape if d != 1]
        if parallel and not all(isinstance(d, int) for d in sizes):
            self.branches[len(self.lines)] = " * ".join(self.size(d) for d in sizes)

    def element(self, node: Node, idx: list[str], depth: int) -> str:
        """Source of ``node``'s element at ``idx`` for a lowering that reads single elements:
        from its array, or for a ``gathered`` node, its formula over its inputs' elements
        there (the same operations on the same values as the element of the array)."""
        if node not in self.gathered:
            return self.index(node, node.shape, idx)
        return LOWER[node.op].element(self, node, self.reader(node.shape, idx, depth), depth)

    def values_read(self, node: Node) -> list[Node]:
        """The values ``node``'s lowering reads: its inputs, a gathered input's instead."""
        return [r for x in node.inputs for r in (x.inputs if x in self.gathered else (x,))]

    def new_array(self, node: Node, fill: str = "empty") -> None:
        """Emit the array that holds ``node``: ``ar.empty`` or ``ar.zeros`` of its shape and
        dtype (``arrays.py``: NumPy's, compiled once per machine)."""
        self.emit(
            f"{self.var[node]} = ar.{fill}({self.shape(node.shape)}, {NP_DTYPES[node.dtype]})"
        )

    def loops(self, shape, depth: int, parallel_ok: bool, shared=()) -> tuple[list[str], int]:
        """Open nested loops over ``shape``; returns the index names and the body depth.

        With ``parallel``, the outermost loop of a nest is a ``prange`` only if the nest has
        at least :data:`PARALLEL_MIN_ELEMENTS` elements: known sizes decide here, named
        ones at run time (``source`` writes the nest twice, parallel and serial, under an
        ``if`` on its size), since waking threads costs more than a small loop."""
        idx = ["0" if d == 1 else f"i{k}" for k, d in enumerate(shape)]
        parallel = self.big_enough(shape, parallel_ok and self.parallel and depth == 1)
        self.branch_here(shape, parallel)
        for k, d in enumerate(shape):
            if d == 1:  # a loop of one: index 0 directly
                continue
            rng = "prange" if parallel else "range"
            self.emit(f"for {idx[k]} in {rng}({self.size(d)}):", depth)
            if parallel:  # (a row adds into its slot)
                self.start_partials(shared, depth + 1)
            parallel, depth = False, depth + 1  # inner loops are serial
        return idx, depth

    def formula(self, node: Node, read, depth: int, expr=None) -> str:
        """Emit the common subexpressions of an ew node's formula (or of ``expr``, a formula
        over the same inputs); return the final expression.  ``read(x)`` names the local or
        scalar holding input ``x``."""
        dtypes = [x.dtype for x in node.inputs]
        widens = dt.widens(node.dtype, dtypes)  # float32 values converted first
        # float32 arithmetic (literals rounded to float32) only over no float64 value: a
        # float32 result of float64 values (a cast) computes in float64 and rounds once
        float32 = not widens and "float64" not in dtypes and (
            node.dtype == "float32" or node.dtype == "bool" and "float32" in dtypes
        )
        printer = formula_printer("float32" if float32 else "float64", self.vector_math)
        expr = node.attr("expr") if expr is None else expr
        names = {}
        for k, x in enumerate(node.inputs):
            if sym(k) in expr.free_symbols:
                name = read(x)  # a local or a scalar: a plain name
                if widens and x.dtype == "float32":
                    name = f"np.float64({name})"  # printed as it is, an atom to SymPy
                names[sym(k)] = sp.Symbol(name)
        expr = expr.xreplace(names)
        if self.vector_math:
            expr = vector_sigmoids(expr)
        temps, (reduced,) = sp.cse(expr, symbols=sp.numbered_symbols("t"), optimizations=None)
        for t, value in temps:
            self.emit(f"{t} = {printer.doprint(value)}", depth)
        return printer.doprint(reduced)

    # --- loop groups ---------------------------------------------------------------------

    @staticmethod
    def loop_shape(node: Node):
        """The iteration space of a node that joins loop groups (its ``loop`` fact), or None."""
        if node.op.loop == "map" and node.shape != ():
            return node.shape
        if node.op.loop == "reduce":
            return node.inputs[0].shape
        return None

    def joins_group(self, node: Node) -> bool:
        shape = self.loop_shape(node)
        if shape is None or self.group and shape != self.loop_shape(next(iter(self.group))):
            return False
        # a reduction's result is complete only after the loop: its readers cannot join
        return not any(i in self.group and i.op.loop == "reduce" for i in node.inputs)

    def flush(self):
        """Emit the open loop group as one loop nest."""
        if not self.group:
            return
        shape = self.loop_shape(next(iter(self.group)))
        # Reductions further down over the same loop whose inputs are ready join now
        # (e.g. a bias gradient summing the rows of an adjoint computed here).
        later = {u for n in self.group for u in self.users.get(n, []) if u.op.loop == "reduce"}
        for node in sorted(later, key=self.rank.__getitem__):
            ready = not self.emitted(node) and all(self.emitted(i) for i in node.inputs)
            now = self.phase is None or node in self.phase
            if ready and now and self.joins_group(node):
                self.var[node] = f"v{self.rank[node]}"
                self.group[node] = None
                self.pending.discard(node)
        group, self.group = list(self.group), {}
        inside = set(group)
        stored = [
            n
            for n in group
            if n.op.loop == "reduce"
            or n in self.outputs
            or any(u not in inside for u in self.users.get(n, []))
        ]
        for n in stored:
            if n not in self.totals:  # (a total was allocated before the loop over blocks)
                allocate(self, n)
        # prange runs the outermost loop (the first axis longer than 1) in parallel: safe when
        # every iteration writes its own slots (each reduction's lowering says when it does)
        outer = next((a for a, d in enumerate(shape) if d != 1), None)
        safe = all(n.op.loop != "reduce" or LOWER[n.op].parallel_safe(n, outer) for n in group)
        parallel_ok = safe and outer is not None
        reductions = [n for n in group if n.op.loop == "reduce"]
        inner = max((a for a, d in enumerate(shape) if d != 1), default=None)
        # Blocks pay where a reduction along the innermost axis (a chain of additions, which
        # LLVM keeps in order, so the loop does not vectorise) is fed by formulas that call
        # functions (exp, erf, ...: the work vectorising saves).  A cheaper formula runs as
        # fast in the plain loop, under the chain's latency, and a reduction along an outer
        # axis leaves the loop free to vectorise: blocks there only cost compile time
        # (0.1 s each), so those loops stay plain.  Sums add in the same order either way.
        chained = any(inner in reduced_axes(n) for n in reductions)
        costly = any(n.op.loop == "map" and LOWER[n.op].calls(n) for n in group)
        blocked = inner is not None and chained and costly
        # Sums to a scalar in a parallel nest add into slots, one per iteration of the prange
        # (``partials``); over one axis the iterations are blocks of it.
        shared = [n for n in reductions if n.shape == ()]
        if not (shared and self.big_enough(shape, parallel_ok and self.parallel)):
            shared = []
        blocked = blocked or bool(shared) and outer == inner
        if blocked:
            idx, depth, finish, slot, count = self.blocked_loops(
                shape, inner, reductions, parallel_ok, shared
            )
        else:
            if shared:  # a slot per row
                slot, count = f"i{outer}", self.size(shape[outer])
                self.partials(shared, count)
            idx, depth = self.loops(shape, 1, parallel_ok, shared)

        read = self.reader(shape, idx, depth, inside)
        body = len(self.lines)
        for n in group:
            local = f"e{self.rank[n]}"
            lowering = LOWER[n.op]
            if n.op.loop == "reduce" and blocked:  # the block's terms, added up after it
                self.emit(f"blk{self.rank[n]}[j{inner}] = {read(n.inputs[0])}", depth)
                continue
            if n.op.loop == "reduce":
                target = f"p{self.rank[n]}" if n in shared else reduction_slot(self, n, idx)
                lowering.accumulate(self, n, target, read(n.inputs[0]), depth)
                continue
            self.emit(f"{local} = {lowering.element(self, n, read, depth)}", depth)
            if n in stored:
                self.emit(f"{self.var[n]}[{', '.join(idx)}] = {local}", depth)
        if "vm" in helpers_used("\n".join(self.lines[body:])):  # zmm where the CPU has AVX-512
            self.emit("vm.wide_vectors()", depth)
        if blocked:
            finish()
        if shared:
            self.add_partials(shared, slot, count)
        for n in group:
            if n not in self.totals:  # (a total is rounded after the loop over blocks)
                round_wide(self, n)

    def reader(self, shape, idx: list[str], depth: int, inside=()):
        """``read(x)``: the name of input ``x``'s element in a loop body over ``shape``
        (indices ``idx``), loaded into a local once per iteration; a group member's own local
        if ``x`` is ``inside`` the group."""
        loaded: dict[Node, str] = {}

        def read(x):
            if x in inside:
                return f"e{self.rank[x]}"
            if x.shape == ():
                return self.var[x]
            if x not in loaded:
                loaded[x] = f"ld_{self.var[x]}"
                self.emit(f"{loaded[x]} = {self.index(x, shape, idx)}", depth)
            return loaded[x]

        return read

    BLOCK = 256  # elements of the innermost axis per block of a loop that reduces

    def blocked_loops(self, shape, inner: int, reductions: list[Node], parallel_ok: bool,
                      shared: list[Node] = ()):
        """Loops over ``shape`` whose innermost axis ``inner`` runs in blocks: the body
        computes a block of terms into small buffers, in a loop free of reductions that
        LLVM can vectorise, and ``finish()`` then emits the loop that adds them up, in the
        same order as an unblocked loop (so the sums are bit for bit the same).

        In a parallel nest the prange runs over *chunks*: the blocks of a single axis, or
        runs of rows of about :data:`CHUNK` elements (``m<k>`` rows each), each allocating
        its own buffers (an allocation per row made a (300000, 3) array slower in parallel
        than serially) and adding the sums to a scalar in ``shared`` into its own slot
        (``partials``).  Returns (index names, body depth, finish, slot, count): the slot
        of an iteration and the number of slots (source text; None without ``shared``)."""
        idx = ["0" if d == 1 else f"i{k}" for k, d in enumerate(shape)]
        depth = 1
        n, b, i = self.size(shape[inner]), self.BLOCK, idx[inner]

        def buffers(at):
            for node in reductions:
                dtype = NP_DTYPES[node.inputs[0].dtype]
                self.emit(f"blk{self.rank[node]} = ar.empty(({b},), {dtype})", at)

        parallel = self.big_enough(shape, parallel_ok and self.parallel)
        outer = next((k for k, d in enumerate(shape[:inner]) if d != 1), None)
        slot = count = None
        if not parallel:  # one set of buffers
            buffers(depth)
        elif outer is None:  # chunks: blocks of the one axis
            slot, count = f"q{inner}", f"({n} + {b - 1}) // {b}"
        else:  # chunks: runs of rows
            per_row = " * ".join(self.size(d) for d in shape[outer + 1 :] if d != 1)
            m, rows = f"m{outer}", self.size(shape[outer])
            self.emit(f"{m} = {CHUNK} // ({per_row}) if 0 < {per_row} < {CHUNK} else 1")
            # (names of their own: c0, r0 ... are a kernel's constants and row blocks)
            slot, count = f"ch{outer}", f"({rows} + {m} - 1) // {m}"
        if shared:
            self.partials(shared, count)
        self.branch_here(shape, parallel)
        for k, d in enumerate(shape[:inner]):
            if d == 1:
                continue
            if parallel and k == outer:
                self.emit(f"for {slot} in prange({count}):", depth)
                buffers(depth + 1)
                self.start_partials(shared, depth + 1)
                self.emit(f"st{k} = {slot} * m{k}", depth + 1)
                end = f"st{k} + m{k} if st{k} + m{k} < {rows} else {rows}"
                self.emit(f"for {idx[k]} in range(st{k}, {end}):", depth + 1)
                depth += 1
            else:
                self.emit(f"for {idx[k]} in range({self.size(d)}):", depth)
            depth += 1
        if parallel and outer is None:
            self.emit(f"for q{inner} in prange({count}):", depth)
            self.emit(f"s{inner} = q{inner} * {b}", depth + 1)
            buffers(depth + 1)
        else:
            self.emit(f"for s{inner} in range(0, {n}, {b}):", depth)
        depth += 1
        # Unsigned indices: Numba adds no negative-index wraparound, which LLVM could not
        # prove away here and would vectorise as gathers and scatters.
        # (names unlike the formulas' locals e3, ld_x and common subexpressions t0)
        self.emit(f"lo{inner} = np.uint64(s{inner})", depth)
        # (a conditional, not min(): Numba compiles its min() again in every process)
        self.emit(f"hi{inner} = np.uint64(s{inner} + {b} if s{inner} + {b} < {n} else {n})", depth)
        self.emit(f"for {i} in range(lo{inner}, hi{inner}):", depth)
        self.emit(f"j{inner} = {i} - lo{inner}", depth + 1)

        def finish():
            if parallel and outer is None:  # (a block adds into its slot)
                self.start_partials(shared, depth)
            self.emit(f"for {i} in range(lo{inner}, hi{inner}):", depth)
            self.emit(f"j{inner} = {i} - lo{inner}", depth + 1)
            for node in reductions:
                value = f"blk{self.rank[node]}[j{inner}]"
                target = f"p{self.rank[node]}" if node in shared else reduction_slot(self, node, idx)
                LOWER[node.op].accumulate(self, node, target, value, depth + 1)

        return idx, depth + 1, finish, slot, count

    # --- sums to a scalar in a parallel nest ---------------------------------------------
    #
    # In a prange, Numba makes ``v += term`` a reduction variable that each thread adds its
    # share into, so the result would depend on the number of threads.  Instead each
    # iteration of the prange (a row, or a chunk of blocked loops) adds into a local ``p<k>``
    # of its own, which goes into its slot ``part<k>[i]``; after the nest the slots are
    # added in order.  The serial copy of the nest (below the size threshold) is the same
    # code, so a shape has one result whatever the number of threads.

    def partials(self, shared, count: str):
        """Allocate the ``count`` slots of each sum in ``shared``, before their nest."""
        for node in shared:
            init = LOWER[node.op].init(node)
            self.emit(f"part{self.rank[node]} = ar.full(({count},), {init}, {acc_dtype(node)})")

    def start_partials(self, shared, depth: int):
        """The iteration's own locals, where an iteration of the prange starts."""
        for node in shared:
            init = LOWER[node.op].init(node)
            self.emit(f"p{self.rank[node]} = {acc_dtype(node)}({init})", depth)

    def add_partials(self, shared, slot: str, count: str):
        """After the body, each local into its slot (an iteration writes only its own);
        after the nest, the slots into the sums, in order."""
        for node in shared:
            r = self.rank[node]
            LOWER[node.op].accumulate(self, node, f"part{r}[{slot}]", f"p{r}", 2)
        for node in shared:
            r = self.rank[node]
            self.emit(f"for k{r} in range({count}):")
            LOWER[node.op].accumulate(self, node, accumulator(self, node), f"part{r}[k{r}]", 2)

    # --- the kernel ----------------------------------------------------------------------

    def source(self) -> str:
        if self.lines:  # generated already
            return self._text
        for k, n in enumerate(self.args):
            self.var[n] = f"in{k}" if n.op.leaf == "input" else f"saved{k}"
            for axis, d in enumerate(n.shape):
                if isinstance(d, str) and d not in self.dims:
                    self.dims[d] = f"n{len(self.dims)}"
                    self.emit(f"{self.dims[d]} = {self.var[n]}.shape[{axis}]  # {d}")
        for k, n in enumerate(self.consts):
            self.var[n] = f"c{k}"
        args = [self.var[n] for n in self.args + self.consts]
        self.reserve()
        blocks = rowblock.plan(self.order, self.args, self.outputs, accumulates)
        if blocks is None:
            self.emit_nodes(self.order)
        else:
            # serial, with parallel=True too: a block's loops are too small to pay for
            # threads, and reading X once beat the parallel unblocked kernel at one and two
            # threads (svm 1.55 vs 3.31 ms and 1.70 vs 2.14 ms; README, "Losses over a batch")
            self.parallel = False
            self.row_blocked(blocks)
        outs = ", ".join(self.var[o] for o in self.outputs)
        self.emit(f"return ({outs},)")
        header = f"def {self.name}({', '.join(args)}):"
        named = [f"    # {self.var[n]}: {n.name}" for n in self.args if n.op.leaf == "input"]
        body = _serial_when_small(self.lines, self.branches)
        self._text = "\n".join([header] + named + body) + "\n"
        return self._text

    def reserve(self):
        """``ar.reserve`` of the bytes of the arrays the kernel computes (see its docstring):
        every node with a shape, its bytes summed over the nodes with the same run-time
        sizes.  An upper bound: a node in a loop group, a view or a gathered formula has no
        array of its own, and a row-blocked kernel's arrays hold a block of rows, not all."""
        counts: Counter = Counter()
        for n in self.order:
            if n.shape and n not in self.var:
                known = [d for d in n.shape if isinstance(d, int)]
                sizes = tuple(sorted(self.size(d) for d in n.shape if not isinstance(d, int)))
                counts[sizes] += np.dtype(n.dtype).itemsize * int(np.prod(known))
        terms = [" * ".join([str(nbytes), *sizes]) for sizes, nbytes in counts.items()]
        if terms:
            self.emit(f"ar.reserve({' + '.join(terms)})")

    def emit_nodes(self, nodes: list[Node]):
        """Emit ``nodes`` (in topological order), each on its own or in a loop group."""
        self.phase = set(nodes)
        for node in nodes:
            if node in self.pending and node.op.loop is None:  # a block's share of a total
                self.flush()
                LOWER[node.op].accumulate(self, node)
                self.pending.discard(node)
                continue
            if self.emitted(node) or node in self.gathered:  # given, pulled into a loop
                continue  # group early, or computed where it is read
            into = self.sum_of(node)
            if into is not None and into in self.phase:
                after_loop = any(x in self.group for x in node.inputs + into.inputs)
                if after_loop:
                    self.flush()  # (the operands and the other terms are read from arrays)
                if all(x is node or self.emitted(x) for x in into.inputs):
                    self.fill_terms(into, node, after_loop)
                    LOWER[node.op].accumulate(self, node)
                    continue
            if not self.joins_group(node):
                # a node reading the open group, or a new loop, comes after the group
                reads = self.values_read(node)
                if self.loop_shape(node) is not None or any(i in self.group for i in reads):
                    self.flush()
            self.var[node] = f"v{self.rank[node]}"
            self.pending.discard(node)
            if self.loop_shape(node) is not None:
                self.group[node] = None
            elif node.op.loop == "map":  # a scalar: no loop
                LOWER[node.op].scalar(self, node)
            else:
                LOWER[node.op](self, node)
        self.flush()
        self.phase = None

    def sum_of(self, node: Node) -> Node | None:
        """The reader a product (``Product`` lowering) can be added into, by gemm with
        beta = 1, instead of being an array of its own: its only reader, an ew node of its
        shape and dtype whose formula is the product plus terms of other values
        (``X.T @ G + 2 * c * W``, ``X @ W + b``).  Filled with those terms first
        (:meth:`fill_terms`), that array then takes the product: one array and one pass
        over it fewer.  The sum rounds once either way (a + b is b + a)."""
        users = self.users.get(node, [])
        if not accumulates(node) or node.ndim != 2 or len(users) != 1:
            return None
        (into,) = users
        expr = dict(into.attrs).get("expr")
        if (
            node in self.outputs
            or expr is None
            or (into.shape, into.dtype) != (node.shape, node.dtype)
            or into.inputs.count(node) != 1
        ):
            return None
        term = sym(into.inputs.index(node))
        if not expr.is_Add or term not in expr.args:
            return None
        others = [a for a in expr.args if a != term]
        return None if any(term in a.free_symbols for a in others) else into

    def fill_terms(self, into: Node, product: Node, after_loop: bool = False):
        """Emit ``into``'s array holding its formula without ``product``'s term (see
        :meth:`sum_of`); ``product`` is then added into that array.  ``after_loop``: the
        code just before is the loop nest that computed the product's operands."""
        self.var[into] = self.var[product] = f"v{self.rank[into]}"
        self.filled.add(product)
        rest = into.attr("expr").xreplace({sym(into.inputs.index(product)): 0})
        bias = next((x for i, x in enumerate(into.inputs) if rest == sym(i)), None)
        if (
            not after_loop
            and bias is not None
            and bias.ndim == 1
            and bias.shape == into.shape[1:]
            and bias.dtype == into.dtype
        ):
            # X @ W + b: the rows of b by a helper compiled once, not a nest of the kernel's
            # own (LLVM's passes over each nest are most of a cold compile).  After the loop
            # over the operand's rows the nest joins that loop instead (loopfuse.py), in a
            # deep MLP inside the layers' shared function: cheaper than a call per layer.
            self.emit(f"{self.var[into]} = ar.rows({self.var[bias]}, {self.size(into.shape[0])})")
            return
        self.new_array(into, "empty")
        idx, depth = self.loops(into.shape, 1, parallel_ok=True)
        value = self.formula(into, self.reader(into.shape, idx, depth), depth, rest)
        self.emit(f"{self.var[into]}[{', '.join(idx)}] = {value}", depth)

    # Bytes of a block's rows of the arguments plus the totals (X_b and dW), so that a block
    # is still in cache (L2) when X_b.T @ G_b reads it again.  Measured on the linear
    # classifiers (rows of 24 KiB, dW 240 KiB): 1 MiB (32 rows) fastest on a 2 MiB L2,
    # 1.4 MiB (48 rows) as slow as no blocks.  Totals of more than half of it (a wide dW)
    # make the kernel one block: smaller ones were slower, each reading and writing dW again.
    ROW_BLOCK_BYTES = 1 << 20
    MIN_ROWS = 8  # fewer rows make BLAS calls of too little work each

    def row_blocked(self, p: rowblock.Plan):
        """Emit the kernel as a loop over blocks of rows (``rowblock.py``): what does not
        depend on the rows first, then per block the rows' values and their shares of the
        totals, then what needs the totals or whole arrays."""
        order, n = self.order, self.dims[p.batch]
        self.emit_nodes(p.nodes(rowblock.PRE, order))
        inside = [x for x in order if p.kind[x] in (rowblock.ROW, rowblock.ACC)]
        products = []
        for node in p.nodes(rowblock.ACC, order):
            self.var[node] = f"v{self.rank[node]}"
            self.totals.add(node)
            self.pending.add(node)
            if node.op.loop == "reduce":
                allocate(self, node)
                continue
            products.append(node)
            into = self.sum_of(node)
            ready = into is not None and all(
                x is node or p.kind[x] == rowblock.PRE for x in into.inputs
            )
            if ready:
                self.fill_terms(into, node)  # the total starts from the other terms
            else:
                LOWER[node.op].total(self, node)
        read = [a for a in p.row_args if any(a in x.inputs for x in inside)]
        budget = self.ROW_BLOCK_BYTES
        self.emit(f"totals = {' + '.join(_bytes(self, x) for x in products)}")
        self.emit(f"per_row = {' + '.join(_bytes(self, a, rows=True) for a in read) or '0'}")
        # (conditionals, not min() and max(): Numba compiles those again in every process)
        self.emit(f"# a block: its rows of {', '.join(self.var[a] for a in read)} and the totals "
                  f"in about {budget >> 10} KiB of cache (all rows if the totals take half)")
        self.emit(f"rows = ({budget} - totals) // per_row if 2 * totals <= {budget} and "
                  f"per_row > 0 else {n}")
        self.emit(f"if rows < {self.MIN_ROWS}:")
        self.emit(f"rows = {self.MIN_ROWS}", 2)
        # (one block even without rows: the first block writes the totals)
        self.emit(f"for r0 in range(0, {n} if {n} > 0 else 1, rows):")
        self.emit(f"r1 = r0 + rows if r0 + rows < {n} else {n}", 2)
        rows = f"n{len(self.dims)}"  # a size like the kernel's others (n0, n1, ...)
        self.emit(f"{rows} = r1 - r0  # {p.batch} in this block", 2)
        full = {a: self.var[a] for a in read}
        for a in read:
            self.emit(f"{full[a]}_r = {full[a]}[r0:r1]", 2)
            self.var[a] = f"{full[a]}_r"
        self.indent, self.dims[p.batch] = 1, rows
        self.emit_nodes(inside)
        self.indent, self.dims[p.batch] = 0, n
        self.var.update(full)
        for node in p.nodes(rowblock.ACC, order):
            round_wide(self, node)
        self.emit_nodes(p.nodes(rowblock.POST, order))


def _bytes(k: Kernel, node: Node, rows=False) -> str:
    """Source for the bytes of ``node``'s array (of one row of it: its first axis)."""
    itemsize = {"float64": 8, "float32": 4, "int64": 8, "bool": 1}[node.dtype]
    return " * ".join([str(itemsize)] + [k.size(d) for d in node.shape[rows:]])


# Fewest elements for which a loop nest runs in parallel (``parallel=True``).  Measured with
# ``python benchmarks/parallel.py --threshold`` on 2 shared cores (load 11): forcing every
# loop parallel was 28x slower at 2^16 elements and 0.75x at 2^18, so smaller nests stay
# serial (on a quiet machine the crossover is lower; this errs on the side of no slowdown).
PARALLEL_MIN_ELEMENTS = 1 << 18
# Elements of a chunk of rows, the unit a parallel nest of blocked loops shares out
# (``Kernel.blocked_loops``): a fixed number, so the additions do not depend on the threads.
CHUNK = 1 << 14


def _product(sizes) -> int:
    total = 1
    for d in sizes:
        total *= d
    return total


def _serial_when_small(lines: list[str], branches: dict[int, str]) -> list[str]:
    """Each prange nest starting at a line of ``branches`` twice, under an ``if`` on its
    size: in parallel when large enough, else the same nest with ``range``."""
    out, k = [], 0
    while k < len(lines):
        if k not in branches:
            out.append(lines[k])
            k += 1
            continue
        end = k + 1  # the nest: every following line indented deeper than its ``for``
        while end < len(lines) and lines[end].startswith("        "):
            end += 1
        nest = ["    " + line for line in lines[k:end]]
        out.append(f"    if {branches[k]} >= {PARALLEL_MIN_ELEMENTS}:")
        out += nest
        out.append("    else:")
        out += [nest[0].replace(" in prange(", " in range(", 1)] + nest[1:]
        k = end
    return out


# The modules of compiled helpers a kernel may call, by the name it calls them under
# (``bl.matmul(...)``): each is compiled and cached by Numba once per machine, and a kernel
# that calls one carries its digest in its cache key (numba_backend.kernel_module).
HELPERS = {"ar": arrays, "bl": blas, "vm": vmath}


def helpers_used(body: str) -> list[str]:
    """The names of :data:`HELPERS` that kernel source calls (``ar.empty(...)``), in order."""
    return [name for name in HELPERS if re.search(rf"\b{name}\.", body)]


def prelude(key: str, body: str) -> str:
    """The module header of a kernel: its imports (``body`` is the decorated functions)."""
    numba_names = [name for name in ("njit", "prange") if f"{name}(" in body]
    lines = [
        f'"""Generated by symgrad; do not edit.  Key: {key}"""',
        "import math",
        "",
        "import numpy as np",
        *([f"from numba import {', '.join(numba_names)}"] if numba_names else []),
        "from numba import types as nt",
        "",
        "from symgrad.backends.kernel_jit import kernel_jit",
    ]
    for name in helpers_used(body):
        module = HELPERS[name].__name__.rsplit(".", 1)[1]
        lines += ["", f"from symgrad.backends import {module} as {name}"]
    return "\n".join(lines) + "\n\n\n"
