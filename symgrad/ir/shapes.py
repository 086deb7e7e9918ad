"""Shapes whose dims are ints or names (``("N", 3073)``), and NumPy broadcasting over them.

A named dim stands for one size fixed per call: ``"N"`` in two inputs must be the same
size.  Broadcasting follows NumPy, with one rule for names: a name matches itself or 1,
never an int other than 1 (the sizes could differ at run time, so the graph is rejected
when it is built rather than when it runs).
"""

from math import prod

from ..errors import ArgumentError, ShapeError

Dim = int | str
Shape = tuple[Dim, ...]


def normalize(shape, what: str = "shape") -> Shape:
    """Check a user's shape: a tuple (or a single dim) of non-negative ints and names."""
    if isinstance(shape, (int, str)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what} must be a tuple of ints and names, got {shape!r}") from None
    for d in dims:
        ok = (isinstance(d, str) and d.isidentifier()) or (
            isinstance(d, int) and not isinstance(d, bool) and d >= 0
        )
        if not ok:
            raise ShapeError(
                f"{what} {shape!r}: each dim must be an int >= 0 or a name like 'N', got {d!r}"
            )
    return dims


def fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast(*shapes: Shape) -> Shape:
    """NumPy broadcasting of ``shapes``; raises :class:`ShapeError` when they disagree.

    >>> broadcast(("N", 1), (3,))
    ('N', 3)
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(
                "cannot broadcast shapes "
                + " and ".join(fmt(s) for s in shapes)
                + f": dims {sorted(map(str, dims))} disagree"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


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


def factors(shape: Shape) -> tuple[int, tuple[str, ...]]:
    """A shape's element count as (product of int dims, sorted names)."""
    return prod(d for d in shape if isinstance(d, int)), tuple(
        sorted(d for d in shape if isinstance(d, str))
    )


def reshape(old: Shape, new: Shape) -> Shape:
    """Check that ``new`` has as many elements as ``old``; one ``-1`` is inferred."""
    holes = [i for i, d in enumerate(new) if d == -1]
    if len(holes) > 1:
        raise ShapeError(f"reshape to {new!r}: at most one dim may be -1")
    if holes:
        rest = new[: holes[0]] + new[holes[0] + 1 :]
        (n_old, names_old), (n_rest, names_rest) = factors(old), factors(normalize(rest))
        left = list(names_old)
        for name in names_rest:
            if name not in left:
                break
            left.remove(name)
        else:
            if not left and n_rest and n_old % n_rest == 0:
                return new[: holes[0]] + (n_old // n_rest,) + new[holes[0] + 1 :]
            if len(left) == 1 and n_old == n_rest:
                return new[: holes[0]] + (left[0],) + new[holes[0] + 1 :]
        raise ShapeError(f"cannot infer the -1 in reshape of {fmt(old)} to {new!r}")
    new = normalize(new, "reshape target")
    if factors(old) != factors(new):
        raise ShapeError(f"cannot reshape {fmt(old)} to {fmt(new)}: element counts differ")
    return new
