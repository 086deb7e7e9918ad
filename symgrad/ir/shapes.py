"""Shapes whose dims are ints, names or expressions of names (``("N", "D + 1")``), and
NumPy broadcasting over them.

A named dim stands for one size fixed per call: ``"N"`` in two inputs must be the same
size.  A dim may also be an expression of names and ints with ``+``, ``-`` and ``*``
(``"N - 1"``, ``"D + 1"``, ``"2*H"``): slicing and concatenating named dims produce them,
and a user may declare them.  Shapes are checked symbolically when the graph is built
(``N + 1 - 1`` is ``N``) and evaluated when it is called; messages print them as written,
``(N, D + 1)``.  An expression dim is a :class:`DimExpr`; a plain name stays a ``str`` and a
constant an ``int``, so most shapes are the tuples they always were.

Broadcasting follows NumPy, with two rules for names: a name (or an expression) matches
itself or 1, never another name (the graph is rejected when it is built); and a name
meeting a fixed size other than 1 *binds* it: ``(N, C)`` with ``(3,)`` broadcasts to
``(N, 3)`` and fixes ``C = 3`` for that graph, which the compiled function checks at call
time (:func:`bindings` finds such pairs; the ops that broadcast state them as facts).
"""

from __future__ import annotations

import io
import tokenize
from functools import cache
from math import prod

import sympy as sp

from ..errors import ArgumentError, ShapeError


@cache
def symbol(name: str) -> sp.Symbol:
    """The SymPy symbol of a named dim (sizes are non-negative integers)."""
    return sp.Symbol(name, integer=True, nonnegative=True)


class DimExpr:
    """A dim that is an expression of named dims and ints, such as ``N - 1``.

    Hashed and compared by its canonical SymPy form, so ``N - 1`` built twice is one dim.
    Build one with :func:`dim_of`, which gives back an ``int`` or a name where it can.
    """

    __slots__ = ("expr", "names", "_text")

    def __init__(self, expr: sp.Expr):
        self.expr = expr
        self.names = tuple(sorted(s.name for s in expr.free_symbols))
        self._text = str(expr)

    def __eq__(self, other):
        return isinstance(other, DimExpr) and self.expr == other.expr

    def __hash__(self):
        return hash(self.expr)

    def __str__(self):
        return self._text

    def __repr__(self):
        return repr(self._text)

    def evaluate(self, sizes: dict) -> int:
        """The value for the named dims' sizes in ``sizes``."""
        value = self.expr.xreplace({symbol(n): sp.Integer(sizes[n]) for n in self.names})
        return int(value)

    def code(self, variable) -> str:
        """Python source computing the dim, with ``variable(name)`` naming each size."""
        from sympy.printing.pycode import pycode

        renamed = self.expr.xreplace({symbol(n): sp.Symbol(variable(n)) for n in self.names})
        return f"({pycode(renamed, fully_qualified_modules=True)})"


Dim = int | str | DimExpr
Shape = tuple[Dim, ...]


def as_expr(d: Dim) -> sp.Expr:
    """A dim as a SymPy expression."""
    if isinstance(d, DimExpr):
        return d.expr
    return symbol(d) if isinstance(d, str) else sp.Integer(d)


def dim_of(expr) -> Dim:
    """The canonical dim of a SymPy expression: an int, a name, or a :class:`DimExpr`."""
    expr = sp.expand(sp.sympify(expr))
    if expr.is_Integer:
        return int(expr)
    if expr.is_Symbol:
        return expr.name
    return DimExpr(expr)


def is_named(d: Dim) -> bool:
    """Whether ``d`` is known only at call time (a name or an expression of names)."""
    return not isinstance(d, int)


def names_of(d: Dim) -> tuple[str, ...]:
    """The named dims ``d`` is made of."""
    if isinstance(d, DimExpr):
        return d.names
    return (d,) if isinstance(d, str) else ()


def evaluate(d: Dim, sizes: dict) -> int:
    """The size of ``d`` for the named dims' sizes in ``sizes``."""
    if isinstance(d, str):
        return sizes[d]
    return d.evaluate(sizes) if isinstance(d, DimExpr) else d


def _parse(text: str, what: str) -> Dim:
    """A dim written as an expression: names, ints, ``+ - *`` and parentheses.

    Names are read from the tokens themselves (never through Python's identifier
    normalization, which would make ``"ℕ"`` and ``"N"`` one name).
    """
    bad = ShapeError(
        f"{what}: a dim must be an int >= 0, a name like 'N' or an expression like 'N - 1', "
        f"got {text!r}"
    )
    local, parts = {}, []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        raise bad from None
    for tok in tokens:
        if tok.type == tokenize.NAME:
            key = f"_dim{len(local)}"
            local[key] = symbol(tok.string)
            parts.append(key)
        elif tok.type == tokenize.NUMBER and tok.string.isdigit():
            parts.append(tok.string)
        elif tok.type == tokenize.OP and tok.string in "+-*()":
            parts.append(tok.string)
        elif tok.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            raise bad
    try:
        expr = sp.sympify(" ".join(parts), locals=local, rational=True)
    except (sp.SympifyError, SyntaxError, TypeError):
        raise bad from None
    if not isinstance(expr, sp.Expr) or not _whole(expr, signed=True):
        raise bad
    return dim_of(expr)


def normalize(shape, what: str = "shape") -> Shape:
    """Check a user's shape: a tuple (or a single dim) of ints >= 0, names and expressions."""
    if isinstance(shape, (int, str, DimExpr)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what} must be a tuple of ints and names, got {shape!r}") from None
    out = []
    for d in dims:
        if isinstance(d, str) and not d.isidentifier():
            d = _parse(d, f"{what} {shape!r}")
        ok = isinstance(d, (str, DimExpr)) or (
            isinstance(d, int) and not isinstance(d, bool) and d >= 0
        )
        if not ok:
            raise ShapeError(
                f"{what} {shape!r}: each dim must be an int >= 0 or a name like 'N', got {d!r}"
            )
        out.append(d)
    return tuple(out)


def fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting of ``shapes``; raises :class:`ShapeError` when they disagree.

    >>> broadcast(("N", 1), (3,))
    ('N', 3)
    """
    if shapes and all(s == shapes[0] for s in shapes):
        return tuple(shapes[0])  # the common case, and graphs of 10^5 nodes ask often
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        fixed = {d for d in dims if isinstance(d, int)}
        if len(fixed) == 1 and len(dims) > 1:  # names meeting one fixed size: it binds them
            dims = fixed
        if len(dims) > 1:
            raise ShapeError(
                "cannot broadcast shapes "
                + " and ".join(fmt(s) for s in shapes)
                + f": dims {sorted(map(str, dims))} disagree"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def bindings(shape: Shape, out: Shape) -> tuple[tuple[Dim, int], ...]:
    """The ``(named dim, size)`` pairs that broadcasting ``shape`` to ``out`` fixes."""
    lead = len(out) - len(shape)
    return tuple(
        (d, out[lead + i])
        for i, d in enumerate(shape)
        if is_named(d) and isinstance(out[lead + i], int) and out[lead + i] != 1
    )


def axes(axis, ndim: int, what: str = "axis") -> tuple[int, ...]:
    """Normalize ``axis`` (None, an int or a tuple; negatives count from the end)."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if not isinstance(a, int) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ArgumentError(f"{what} {axis!r} is out of range for {ndim} dims")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ArgumentError(f"{what} {axis!r} repeats an axis")
    return tuple(sorted(out))


def reduced(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    """The shape left by reducing ``axes`` (kept as 1s with ``keepdims``)."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def size_expr(shape: Shape) -> tuple[sp.Expr, tuple[str, ...]]:
    """A shape's element count as a SymPy expression, and the names it depends on."""
    expr = sp.expand(prod((as_expr(d) for d in shape), start=sp.Integer(1)))
    return expr, tuple(sorted(s.name for s in expr.free_symbols))


def reshape(old: Shape, new: Shape) -> Shape:
    """Check that ``new`` has as many elements as ``old``; one ``-1`` is inferred."""
    holes = [i for i, d in enumerate(new) if d == -1]
    if len(holes) > 1:
        raise ShapeError(f"reshape to {new!r}: at most one dim may be -1")
    if holes:
        rest = normalize(new[: holes[0]] + new[holes[0] + 1 :])
        (n_old, _), (n_rest, _) = size_expr(old), size_expr(rest)
        inferred = sp.cancel(n_old / n_rest) if n_rest != 0 else None
        if inferred is not None and _whole(inferred):
            return rest[: holes[0]] + (dim_of(inferred),) + rest[holes[0] :]
        raise ShapeError(f"cannot infer the -1 in reshape of {fmt(old)} to {new!r}")
    new = normalize(new, "reshape target")
    if size_expr(old)[0] != size_expr(new)[0]:
        raise ShapeError(f"cannot reshape {fmt(old)} to {fmt(new)}: element counts differ")
    return new


def _whole(expr, signed: bool = False) -> bool:
    """Whether ``expr`` is a polynomial in the dims with integer coefficients (a size)."""
    if not expr.free_symbols:
        return bool(expr.is_Integer and (signed or expr >= 0))
    if not expr.is_polynomial(*expr.free_symbols):
        return False
    return all(c.is_Integer for c in sp.Poly(expr, *expr.free_symbols).coeffs())
