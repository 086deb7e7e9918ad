"""Generated kernels as several functions: loop nests a kernel repeats shared
(:func:`outline`), and kernels cut into parts of bounded size (:func:`split`, off by
default).

An MLP's kernel repeats the same loop nests in every layer, on other arrays; Numba and
LLVM would compile each copy.  :func:`outline` makes every loop nest whose text occurs
twice or more (up to the kernel's numbering of its variables and the order of its loads)
one function the kernel calls at each place, so a network of any depth compiles its
forward and backward activation loops once.

Splitting was meant for Numba's front end (SSA reconstruction, type inference,
lowering), whose time can grow faster than linearly with the size of a function: the body
of a kernel is cut, between top-level statements, into *parts* of about
``max_lines`` lines each; each part becomes a function ``<kernel>_p<k>`` that takes the
values it reads from earlier parts and returns those that later parts read, and the
kernel calls the parts in order::

    @njit(no_cpython_wrapper=True, ...)
    def kernel_p0(in0, in1, n0, n1):
        v3 = bl.matmul(in1, in0)
        ...
        return v4, v6

    def kernel(in0, in1, in2):     # (decorated as before)
        n0 = in0.shape[0]  # D
        v4, v6 = kernel_p0(in0, in1, n0, n1)
        ...

A loop nest is never cut, and a part is a straight copy of its statements: the kernel
computes the same operations on the same values in the same order, so its results are
bit-identical to the unsplit kernel's.  Arrays are passed by reference (a part writes an
array another part allocated); a scalar a part updates (an accumulator) is passed in and
returned.  The same holds for a shared loop nest, which is a copy of the statements of
each of its occurrences with the variables renamed (and the loads, which compute nothing,
in one order).  Parts and shared loops are compiled once, when the kernel is (no Python
wrapper: only the kernel calls them), and cached with it: Numba's cache entry of the
kernel holds the machine code of everything it calls.
"""

from __future__ import annotations

import ast
import re
import threading

# Lines of a part (a loop nest longer than this is a part of its own).  Measured on the
# GELU MLPs (README, "Compile time"): on the 20-layer one before loops were shared, parts
# of 20 lines compiled 30 % slower than the whole kernel, of 40-120 lines as fast, not
# faster; with the shared loops, parts of 40-160 lines are 1.4-1.9x slower at 20 and 40
# layers (each part is compiled, then again inside the kernel).  So kernels stay whole
# unless this is set lower.
MAX_LINES = 100_000


def block_statements(body: list[str], indent: int = 4) -> list[list[str]]:
    """The statements of a block whose lines are indented by ``indent`` spaces (a function
    body: four), each with its nested lines; an ``else:`` belongs to the ``if`` before it."""
    out: list[list[str]] = []
    for line in body:
        own = len(line) - len(line.lstrip(" ")) == indent
        if own and not line.lstrip().startswith(("else:", "elif ")) or not out:
            out.append([line])
        else:
            out[-1].append(line)
    return out


class Names(ast.NodeVisitor):
    """The names a piece of code reads before writing them (``exposed``), and every name it
    writes (``written``; ``top`` those written outside any loop or branch)."""

    def __init__(self):
        self.exposed: set[str] = set()
        self.written: set[str] = set()
        self.top: set[str] = set()
        self.depth = 0

    def load(self, name: str):
        if name not in self.written:
            self.exposed.add(name)

    def store(self, name: str):
        self.written.add(name)
        if self.depth == 0:
            self.top.add(name)

    def visit_Name(self, node: ast.Name):
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:
            self.store(node.id)

    def visit_Assign(self, node: ast.Assign):
        self.visit(node.value)  # the value is computed before the targets are written
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
            self.store(node.target.id)
        else:
            self.visit(node.target)

    def visit_For(self, node: ast.For):
        self.visit(node.iter)
        self.depth += 1
        self.visit(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)
        self.depth -= 1

    def visit_If(self, node: ast.If):
        self.visit(node.test)
        self.depth += 1
        for stmt in node.body + node.orelse:
            self.visit(stmt)
        self.depth -= 1

    def visit_Attribute(self, node: ast.Attribute):
        self.visit(node.value)  # np.float64: reads np, not a local


_parse_lock = threading.Lock()


def parse(source: str) -> ast.Module:
    """``ast.parse(source)``, one thread at a time: CPython 3.11 counts the depth of the
    syntax tree it builds in state shared by all threads, and a thread switch in between
    (a garbage collection can make one) fails another thread's parse with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython#106905), as compiling one graph
    from 8 threads did."""
    with _parse_lock:
        return ast.parse(source)


def _names(lines: list[str]) -> Names:
    tree = parse("\n".join(line[4:] for line in lines))
    names = Names()
    for stmt in tree.body:
        names.visit(stmt)
    return names


def split(source: str, max_lines: int | None = None) -> tuple[list[tuple[str, str]], str]:
    """Cut the kernel ``source`` (``def name(args):`` and its body) into parts.

    Returns ``(parts, kernel)``: each part as ``(name, function source)`` without its
    decorator, and the kernel's new source, which calls them.  A kernel of at most
    ``max_lines`` body lines (default :data:`MAX_LINES`), or with nothing to cut, comes back
    as it is with no parts.
    """
    max_lines = MAX_LINES if max_lines is None else max_lines  # (a benchmark varies it)
    header, *body = source.rstrip("\n").split("\n")
    name = header[len("def ") : header.index("(")]
    args = [a.strip() for a in header[header.index("(") + 1 : header.rindex(")")].split(",")]
    comments = [line for line in body if line.startswith("    #")]
    code = [line for line in body if not line.startswith("    #")]
    *statements, final = block_statements(code)  # the last one is the kernel's `return`
    if sum(len(s) for s in statements) <= max_lines:
        return [], source
    chunks: list[list[str]] = [[]]
    for stmt in statements:
        if chunks[-1] and len(chunks[-1]) + len(stmt) > max_lines:
            chunks.append([])
        chunks[-1].extend(stmt)
    if len(chunks) == 1:
        return [], source

    names = [_names(chunk) for chunk in chunks] + [_names(final)]
    defined = set(args)  # names that hold a value in the kernel before the current part
    parts, calls = [], []
    for k, (chunk, own) in enumerate(zip(chunks, names)):
        later = set().union(*(n.exposed for n in names[k + 1 :]))
        inputs = sorted(own.exposed & defined, key=_order)
        outputs = sorted(own.written & later, key=_order)
        if any(o not in own.top and o not in defined for o in outputs):
            # a value only some paths of this part write: keep the kernel whole (the code
            # generator does not emit such values; this guards the assumption)
            return [], source
        part = f"{name}_p{k}"
        lines = [f"def {part}({', '.join(inputs)}):"] + chunk
        call = f"{part}({', '.join(inputs)})"
        if outputs:
            lines.append("    return " + ", ".join(outputs))
            call = ", ".join(outputs) + " = " + call
        parts.append((part, "\n".join(lines) + "\n"))
        calls.append("    " + call)
        defined |= own.written & later
    kernel = "\n".join([header] + comments + calls + final) + "\n"
    return parts, kernel


def _order(name: str):
    # inputs, dims, constants and values in the kernel's own numbering order, then the rest
    head = name.rstrip("0123456789")
    tail = name[len(head) :]
    return (head, int(tail) if tail else -1, name)


# --- loop nests shared by name -----------------------------------------------------------

# Outline a loop nest into a function of its own only if its text (up to names) occurs at
# least this often in the kernel.  (A benchmark varies it.)
MIN_REPEATS = 2

_ALLOCATION = re.compile(r"^    (\w+) = (ar\.(empty|zeros|full)\(.*\)|np\.\w+\([-\w.]*\))$")
_NAME = re.compile(r"(?<![.\w])([A-Za-z_]\w*)")
_NUMBERED = re.compile(r"^(\D*?)(\d*)(\D*)$")  # the kernel's names: v5, ld_v17, v5_acc
_LOAD = re.compile(r"^\s*ld_\w+ = \w+\[[\w, ]*\]$")


def _rename(lines: list[str], local: set[str]) -> tuple[list[str], dict[str, str]]:
    """``lines`` with every local name renumbered within its prefix (``ld_v17`` ->
    ``ld_v0``) and each run of loads sorted: the text two loop nests share when they differ
    only in the kernel's numbering and in the order of their loads (which compute nothing,
    so their order does not matter).  Names are numbered in order of first appearance
    outside the loads, then (the arrays loaded) in the order of the sorted loads."""
    mapping: dict[str, str] = {}
    counts: dict[str, int] = {}

    def number(name: str) -> str:
        if name in local and name not in mapping:
            head, digits, tail = _NUMBERED.match(name).groups()  # ld_v 17 "", v 5 _acc
            if not digits:  # a name of its own (rows, totals): rows0, not 0rows
                head, tail = name, ""
            kind = (head, tail)
            mapping[name] = f"{head}{counts.get(kind, 0)}{tail}"
            counts[kind] = counts.get(kind, 0) + 1
        return mapping.get(name, name)

    for line in lines:
        if not _LOAD.match(line):
            for name in _NAME.findall(line):
                number(name)
    ordered: list[str] = []  # the lines, each run of loads sorted by its locals' numbers
    for line in lines:
        if _LOAD.match(line) and ordered and _LOAD.match(ordered[-1]):
            ordered.append(line)
            run = len(ordered) - 1
            while run > 0 and _LOAD.match(ordered[run - 1]):
                run -= 1
            ordered[run:] = sorted(ordered[run:], key=lambda s: _order(number(_target(s))))
        else:
            ordered.append(line)
    renamed = [_NAME.sub(lambda m: number(m.group(1)), line) for line in ordered]
    return renamed, mapping


def _target(line: str) -> str:
    return line.split("=")[0].strip()


def outline(source: str, min_repeats: int | None = None,
            live: frozenset = frozenset()) -> tuple[list[tuple[str, str]], str]:
    """Loop nests that occur ``min_repeats`` times or more (default :data:`MIN_REPEATS`)
    in the kernel ``source``, up to the kernel's names, as one function each.  ``live``:
    names read after ``source`` (by the code around it, when it is the body of a loop).

    Returns ``(parts, kernel)`` as :func:`split` does.  A loop nest (with the allocations
    just before it of the arrays and accumulators it fills) becomes a call
    ``v8, v9 = kernel_loop0(n0, v6, in7)``; every loop nest of the same text calls the same
    function, so Numba and LLVM compile it once (an MLP's layers share their loops).
    """
    min_repeats = MIN_REPEATS if min_repeats is None else min_repeats
    header, *body = source.rstrip("\n").split("\n")
    name = header[len("def ") : header.index("(")]
    args = [a.strip() for a in header[header.index("(") + 1 : header.rindex(")")].split(",")]
    comments = [line for line in body if line.startswith("    #")]
    code = [line for line in body if not line.startswith("    #")]
    statements = block_statements(code)
    names = [_names(s) for s in statements]
    local = set(args).union(*(n.written for n in names))

    # groups: a loop nest and the allocations just before it that it reads
    groups: list[tuple[int, int]] = []  # (first, last) statement index
    for i, stmt in enumerate(statements):
        if not stmt[0].startswith(("    for ", "    if ")):
            continue
        first = i
        while first > 0 and (groups == [] or groups[-1][1] < first - 1):
            match = _ALLOCATION.match(statements[first - 1][0])
            feeds = match and match.group(1) in names[i].exposed
            if not (feeds and len(statements[first - 1]) == 1):
                break
            first -= 1
        groups.append((first, i))

    later_reads = [set() for _ in statements] + [set(live)]
    for i in range(len(statements) - 1, -1, -1):
        later_reads[i] = later_reads[i + 1] | names[i].exposed
    shapes = []  # per group: (canonical text, inputs, outputs)
    for first, last in groups:
        lines = [line for s in statements[first : last + 1] for line in s]
        own = _names(lines)
        inputs = sorted(own.exposed & local)
        outputs = sorted(own.written & later_reads[last + 1])
        if any(o not in own.top for o in outputs):
            shapes.append(None)
            continue
        renamed, mapping = _rename(lines, local)
        inputs = sorted(inputs, key=lambda n: _order(mapping[n]))
        outputs = sorted(outputs, key=lambda n: _order(mapping[n]))
        text = "\n".join(
            [f"({', '.join(mapping[n] for n in inputs)}):"]
            + renamed
            + ([f"    return {', '.join(mapping[n] for n in outputs)}"] if outputs else [])
        )
        shapes.append((text, inputs, outputs))
    uses: dict[str, int] = {}
    for shape in shapes:
        if shape is not None:
            uses[shape[0]] = uses.get(shape[0], 0) + 1

    functions: dict[str, str] = {}  # canonical text -> function name
    parts, kernel_lines, at = [], [], 0
    for (first, last), shape in zip(groups, shapes):
        if shape is None or uses[shape[0]] < min_repeats:
            continue
        text, inputs, outputs = shape
        if text not in functions:
            functions[text] = f"{name}_loop{len(functions)}"
            parts.append((functions[text], f"def {functions[text]}{text}\n"))
        for s in statements[at:first]:
            kernel_lines += s
        call = f"{functions[text]}({', '.join(inputs)})"
        kernel_lines.append("    " + (f"{', '.join(outputs)} = " if outputs else "") + call)
        at = last + 1
    if not parts:
        return [], source
    for s in statements[at:]:
        kernel_lines += s
    return parts, "\n".join([header] + comments + kernel_lines) + "\n"


# The loop over blocks of rows of a row-blocked kernel (numba_codegen.Kernel.row_blocked).
_ROW_LOOP = re.compile(r"^    for r0 in range\(")


def outline_rows(source: str, min_repeats: int | None = None) -> tuple[list[tuple[str, str]], str]:
    """:func:`outline` inside the loop over blocks of rows of a row-blocked kernel
    (``rowblock.py``), whose loop nests are not statements of the kernel's own body: an
    MLP's layers share their loops there too.  Its functions are named ``<kernel>_rows_loop<k>``
    (the kernel's own from :func:`outline` keep their names).  Returns ``(parts, kernel)``."""
    header, *body = source.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(body) if _ROW_LOOP.match(line)), None)
    if start is None:
        return [], source
    end = start + 1
    while end < len(body) and body[end].startswith("        "):
        end += 1
    # the loop body as a function of every name the kernel has before it (a superset of
    # what it reads: outline passes a loop nest only the names it reads)
    before = [line for line in body[:start] if not line.startswith("    #")]
    known = [a.strip() for a in header[header.index("(") + 1 : header.rindex(")")].split(",")]
    known += sorted(_names(before).written - set(known))
    name = header[len("def ") : header.index("(")]
    inner = [line[4:] for line in body[start + 1 : end]]
    # what the loop's body must hand on: what the kernel reads after the loop, and what the
    # next block reads before writing it (a total over the rows)
    live = frozenset(_names(body[end:]).exposed | _names(inner).exposed)
    parts, text = outline(
        f"def {name}_rows({', '.join(known + ['r0'])}):\n" + "\n".join(inner), live=live
    )
    if not parts:
        return [], source
    loop = ["    " + line for line in text.rstrip("\n").split("\n")[1:]]
    return parts, "\n".join([header] + body[: start + 1] + loop + body[end:]) + "\n"
