"""Consecutive loop nests over the same rows, fused into one loop over the rows.

A loss over a batch computes, row by row, a chain of values of different shapes: the max of
a row of scores (``(N, 1)``), the shifted exponentials (``(N, C)``), their sum, its log, the
picked label's score (``(N,)``), ...  The code generator gives each shape its own loop nest
(a loop group joins nodes of one shape), so ``log_softmax`` and its loss are seven nests
over the same ``N`` rows, each a loop Numba and LLVM compile and each a pass over the rows.
When every value a nest reads from the nests before it is in the same row (its first index
is the row's), the nests can run one after the other *inside* one loop over the rows::

    for i0 in range(n4):                      # row i0 of every nest, in the nests' order
        for i1 in range(n3): v25[i0, 0] = ar.max_nan(v25[i0, 0], v23[i0, i1])
        v26[i0, 0] = ...v25[i0, 0]...
        for i1 in range(n3): ...

:func:`fuse_rows` does that on a kernel's source, at the top level and inside the loop over
blocks of rows of a row-blocked kernel.  Every statement runs on the same values and, within
a row, in the same order; sums over the rows (a scalar loss, a bias gradient ``v56[i1] +=``)
still add the rows in order: results are bit-identical to the unfused kernel's.  A nest
joins the loop when: it loops over the same rows (``for i0 in range(<the same size>)``); it
reads an array the loop writes only at its own row, and the loop writes that array only
row by row (not a sum over the rows, which is complete only after the loop); it reads no
scalar the loop writes; and it writes nothing the loop reads.  Statements between nests
that read nothing the loop writes and only assign a name (allocations, views, constants)
move before the loop, and so does a view with one element per row of an array the loop
writes (``ar.reshape(v9, (n0,))`` of an ``(N, 1)`` log-sum-exp): a nest may read it in its
own row as it may the array.  Anything else (a BLAS call, a nest over other rows, a
parallel nest) ends the loop.
"""

from __future__ import annotations

import ast
import re

from .split import Names, block_statements, parse

# Off: kernels keep one nest per loop group (tests compare the two; the warm record's key
# includes it).
ENABLED = True

_NEST = re.compile(r"^( *)for i0 in range\((.+)\):$")  # serial nests over rows (not prange)
_BLOCKS = re.compile(r"^( *)for r0 in range\(")  # the loop over blocks of rows
_ASSIGN = re.compile(r"^ *\w+ = ")
# ``v = ar.reshape(a, (rows,))`` or ``(rows, 1, ...)``: over as many rows as ``a``, with the
# same element count, so one element per row, the element of that row of ``a``
_ROW_VIEW = re.compile(r"^ *(\w+) = ar\.reshape\((\w+), \((\w+)(,|(?:, 1)+)\)\)$")


def fuse_rows(source: str) -> str:
    """The kernel ``source`` (``def name(args):`` and its body) with consecutive loop nests
    over the same rows fused, and the arrays of one value per row that only their row's
    iteration reads made locals (module docstring)."""
    header, *body = source.rstrip("\n").split("\n")
    return "\n".join([header] + _row_locals(_fuse(body, 4))) + "\n"


def _fuse(lines: list[str], indent: int) -> list[str]:
    out: list[str] = []
    loop: _Loop | None = None
    held: list[list[str]] = []  # statements after the loop that may move before it
    for stmt in block_statements(lines, indent):
        if _BLOCKS.match(stmt[0]) and len(_BLOCKS.match(stmt[0]).group(1)) == indent:
            stmt = [stmt[0]] + _fuse(stmt[1:], indent + 4)
        match = _NEST.match(stmt[0])
        if match and len(match.group(1)) == indent:
            nest = _Access(stmt[1:], indent + 4)
            if loop is not None and loop.size == match.group(2) and loop.admits(nest, held):
                loop.add(stmt, nest, held)
                held = []
                continue
            out += _flush(loop, held)
            loop, held = _Loop(match.group(2), stmt, nest, indent), []
            continue
        if loop is not None and loop.may_precede(stmt):
            held.append(stmt)
            continue
        out += _flush(loop, held) + stmt
        loop, held = None, []
    return out + _flush(loop, held)


def _flush(loop: _Loop | None, held: list[list[str]]) -> list[str]:
    out = loop.lines() if loop is not None else []
    for stmt in held:
        out += stmt
    return out


class _Loop:
    """Nests fused so far into one loop over ``size`` rows, and the statements moved
    before it."""

    def __init__(self, size: str, stmt: list[str], nest: _Access, indent: int):
        self.size, self.indent = size, indent
        self.before: list[list[str]] = []
        self.bodies: list[list[str]] = [stmt[1:]]
        self.header = stmt[0]
        self.access = nest

    def may_precede(self, stmt: list[str]) -> bool:
        """Whether a statement after the loop may run before it: one line assigning a name,
        reading nothing the loop writes, or a view with one element per row of an array
        the loop writes (the loop then counts the view as written as the array is: a nest
        may read it only in its own row, and only if the loop writes the array by row)."""
        if len(stmt) != 1 or not _ASSIGN.match(stmt[0]):
            return False
        access = _Access(stmt, len(stmt[0]) - len(stmt[0].lstrip(" ")))
        mine = self.access
        if access.written & (mine.read | mine.written):
            return False
        if not access.read & mine.written:
            return True
        view = _ROW_VIEW.match(stmt[0])
        if view is None or view.group(3) != self.size:
            return False
        array = view.group(2)
        if access.read & mine.written != {array} or array not in mine.arrays_written:
            return False  # it reads a scalar the loop writes
        if array in mine.bound:
            return False  # an array the loop allocates: the view must follow it
        mine.alias(view.group(1), array)
        return True

    def admits(self, nest: _Access, held: list[list[str]]) -> bool:
        mine = self.access
        # what the new nest reads before writing it (not its own temporaries) and the loop
        # writes: only arrays the loop writes row by row, read in the nest's own row
        for name in nest.exposed & mine.written:
            if name not in mine.by_row or name not in nest.row_reads:
                return False
        # it overwrites nothing the loop reads (a temporary the loop writes first is fine),
        # and no array the loop writes
        if nest.written & (mine.exposed | mine.arrays_read | mine.arrays_written):
            return False
        # the statements moved before the loop must not read what the new nest writes
        return not any(_Access(s, self.indent).read & nest.written for s in held)

    def add(self, stmt: list[str], nest: _Access, held: list[list[str]]):
        self.before += held
        self.bodies.append(stmt[1:])
        self.access = self.access.merged(nest)

    def lines(self) -> list[str]:
        out = [line for stmt in self.before for line in stmt] + [self.header]
        for body in self.bodies:
            out += body
        return out


class _Access(Names):
    """What a piece of code (a nest's body, or a statement) reads and writes: ``split.Names``
    (``exposed``: names read before the code writes them; ``written``: every name written, a
    subscript's array too) and ``read``: every name read; ``arrays_read`` and
    ``arrays_written``: arrays read and written through a subscript; ``by_row``: arrays every
    write of which is at the row ``[i0, ...]``; ``row_reads``: arrays every read of which is
    a subscript at the row ``[i0, ...]``.
    """

    def __init__(self, lines: list[str], indent: int):
        super().__init__()
        self.read: set[str] = set()
        self.arrays_read: set[str] = set()
        self.arrays_written: set[str] = set()
        self.bound: set[str] = set()
        self._row_writes: dict[str, bool] = {}
        self._row_reads: dict[str, bool] = {}
        if lines:
            tree = parse("\n".join(line[indent:] for line in lines))
            for stmt in tree.body:
                self.visit(stmt)

    def alias(self, view: str, array: str) -> None:
        """Count ``view``, one element per row of ``array``, as written as ``array`` is."""
        self.written.add(view)
        self.arrays_written.add(view)
        self._row_writes[view] = self._row_writes[array]

    @property
    def by_row(self) -> set[str]:
        return {name for name, row in self._row_writes.items() if row}

    @property
    def row_reads(self) -> set[str]:
        return {name for name, row in self._row_reads.items() if row}

    def merged(self, other: _Access) -> _Access:
        out = _Access([], 0)
        out.read, out.written = self.read | other.read, self.written | other.written
        out.bound = self.bound | other.bound
        out.exposed = self.exposed | (other.exposed - self.written)
        out.arrays_read = self.arrays_read | other.arrays_read
        out.arrays_written = self.arrays_written | other.arrays_written
        for mine, theirs, into in ((self._row_writes, other._row_writes, out._row_writes),
                                   (self._row_reads, other._row_reads, out._row_reads)):
            for name in mine.keys() | theirs.keys():
                into[name] = mine.get(name, True) and theirs.get(name, True)
        return out

    # --- the visitor: Names's, with subscripts told apart ---------------------------------

    def load(self, name: str):
        self.read.add(name)
        super().load(name)

    def visit_Name(self, node: ast.Name):
        if isinstance(node.ctx, ast.Load):
            self._row_reads[node.id] = False  # the whole array (or a scalar)
        else:
            self.bound.add(node.id)
        super().visit_Name(node)

    def visit_Subscript(self, node: ast.Subscript):
        self.visit(node.slice)
        if not isinstance(node.value, ast.Name):
            self.visit(node.value)
            return
        name = node.value.id
        row = _first_index(node.slice) == "i0"
        if isinstance(node.ctx, ast.Load):
            self.load(name)
            self.arrays_read.add(name)
            self._row_reads[name] = self._row_reads.get(name, True) and row
        else:
            self.store(name)
            self.arrays_written.add(name)
            self._row_writes[name] = self._row_writes.get(name, True) and row

    def visit_AugAssign(self, node: ast.AugAssign):
        if not isinstance(node.target, ast.Subscript):
            self._row_reads[node.target.id] = False
            super().visit_AugAssign(node)
            return
        self.visit(node.value)
        # reads and writes the same element
        self.visit_Subscript(ast.Subscript(node.target.value, node.target.slice, ast.Load()))
        self.visit_Subscript(node.target)


def _first_index(index: ast.expr) -> str | None:
    first = index.elts[0] if isinstance(index, ast.Tuple) else index
    return first.id if isinstance(first, ast.Name) else None


# --- arrays of one value per row that live in one iteration -------------------------------

# ``v = ar.full((rows, 1), fill, dtype)`` (or ``empty`` / ``zeros``; ``(rows,)`` too)
_ROW_ARRAY = re.compile(
    r"^ *(\w+) = ar\.(empty|zeros|full)\(\((\w+)((?:, 1)*),?\), (?:(.+), )?(np\.\w+)\)$"
)


def _row_locals(lines: list[str]) -> list[str]:
    """``lines`` with each array of one value per row that is read and written only at
    ``[i0, 0, ...]`` (itself or through row views) inside one loop over its rows made a
    local of the loop's body: set to the array's fill at the start of each row (``full``,
    ``zeros``), or written first in the row (``empty``).  The same values in the same
    order, without a store and a load per value or an allocation Numba and LLVM compile
    (the row max, shift and log-sum-exp of a softmax)."""
    for at in reversed(range(len(lines))):  # from the end: changes leave the lines before
        match = _ROW_ARRAY.match(lines[at])
        if match is None:
            continue
        name, fill, rows, units, value, dtype = match.groups()
        if dtype not in ("np.float64", "np.float32"):
            continue  # (a store into an int or bool array converts as no local would)
        elements = {name: _element(name, units)}  # the array's and its row views' own
        views = []
        for i, line in enumerate(lines):
            view = _ROW_VIEW.match(line)
            if view and view.group(2) == name and view.group(3) == rows:
                elements[view.group(1)] = _element(view.group(1), view.group(4))
                views.append(i)
        words = {n: re.compile(rf"\b{n}\b") for n in elements}
        uses = [i for i, line in enumerate(lines) if i != at and i not in views
                and any(w.search(line) for w in words.values())]
        loop_of = _enclosing_loops(lines)
        loops = {loop_of[i] for i in uses}
        if not uses or len(loops) != 1 or None in loops:
            continue
        (head,) = loops
        if _NEST.match(lines[head]).group(2) != rows:
            continue
        if any(len(elements[n].findall(lines[i])) != len(w.findall(lines[i]))
               for i in uses for n, w in words.items()):
            continue  # read whole, or at another element
        body = _NEST.match(lines[head]).group(1) + "    "
        first = lines[uses[0]]
        if fill == "empty" and not any(re.match(rf"^{body}{e.pattern} = ", first)
                                       for e in elements.values()):
            continue  # not written first at the row's own level: keep the array
        for i in uses:
            for element in elements.values():
                lines[i] = _as_local(lines[i], element, name, dtype)
        if fill != "empty":
            lines.insert(head + 1, f"{body}{name} = {dtype}({value or 0})")
        for i in sorted(views + [at], reverse=True):
            del lines[i]
    return lines


def _element(name: str, units: str) -> re.Pattern:
    """``name[i0, 0, ...]``: a row's element of an array of shape ``(rows<units>)``."""
    return re.compile(rf"\b{name}\[i0{', 0' * units.count('1')}\]")


def _as_local(line: str, element: re.Pattern, name: str, dtype: str) -> str:
    """``line`` reading and writing the local ``name`` instead of ``element``; a store
    converts to the array's dtype as the store into the array did."""
    store = re.match(rf"^( *){element.pattern} (\S?)= (.+)$", line)
    if store is None:
        return element.sub(name, line)
    indent, op, value = store.group(1), store.group(2), element.sub(name, store.group(3))
    value = f"{name} {op} ({value})" if op else value
    return f"{indent}{name} = {dtype}({value})"


def _enclosing_loops(lines: list[str]) -> list[int | None]:
    """For each line, the index of the innermost ``for i0 in range(...)`` around it."""
    out: list[int | None] = []
    stack: list[tuple[int, int]] = []  # (indent of a loop's header, its index)
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip(" "))
        while stack and indent <= stack[-1][0]:
            stack.pop()
        out.append(stack[-1][1] if stack else None)
        if _NEST.match(line):
            stack.append((indent, i))
    return out
