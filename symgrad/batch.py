"""How a loss reduces over its batch dim, and so how its values on chunks of the batch
combine into its value on the whole batch.

A loss computed on rows split into chunks can be put back together exactly only if it is
a sum or a mean over the batch dim of per-row terms (plus terms of the parameters alone):

- ``sum(t(row))`` (and any linear combination of such sums): the chunks' values add up;
- ``sum(t(row)) / N`` (``mean``, plus parameter-only terms such as a regulariser): the
  chunks' values, weighted by their share of the rows, add up;
- ``sum(t(row)) + R(params)``: the chunks' values add up, less ``R`` for every chunk but
  one (``R`` is the value on an empty batch).

A max over rows, a variance, a product of two sums over the batch, a normalisation by a
batch statistic (``x - mean(x)``) and anything this module cannot prove to be one of the
forms above are refused with a :class:`~symgrad.errors.GraphError` naming what it found.
The gradients combine as the values do, since they are linear in the value.

:func:`analyse` walks the graph once, inputs first, giving each node a *kind*:

=============  ===============================================================
``PARAM``      depends on neither the batch data nor the batch size
``Row(axis)``  has the batch dim at ``axis``; row ``i`` depends on row ``i`` only
``COUNT``      the batch size times a parameter value (``N``, ``N * C``)
``SUM``        a linear combination of sums over the batch (parameter weights)
``SUM_PARAM``  ``SUM`` plus a parameter-only term
``MEAN``       parameter-only terms plus ``SUM`` divided by ``COUNT``
=============  ===============================================================

What each op does to kinds is one table, :data:`RULES`, keyed by op name like the
backends' lowering tables; an op missing from it is refused (the analysis is
conservative: it refuses when it cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GraphError
from .ir import Node, toposort
from .ir.shapes import fmt, names_of
from .ops import elementwise

PARAM, COUNT, SUM, SUM_PARAM, MEAN = "param", "count", "sum", "sum+param", "mean"


@dataclass(frozen=True)
class Row:
    """A per-row value with the batch dim at ``axis``."""

    axis: int


class Refused(Exception):
    """Raised inside the analysis with what was found; :func:`analyse` turns it into a
    GraphError naming the batch dim and the node."""


# --- how kinds combine -----------------------------------------------------------------


def join(kinds) -> str:
    """The kind of a sum (or a concatenation) of values of ``kinds`` (none of them rows)."""
    found = {k for k in kinds if k != PARAM}
    offset = PARAM in kinds
    if not found:
        return PARAM
    if found == {MEAN}:
        return MEAN
    if found <= {COUNT, SUM, SUM_PARAM}:
        if offset or SUM_PARAM in found:
            return SUM_PARAM
        return COUNT if found == {COUNT} else SUM
    raise Refused("it adds a sum over the batch to a mean over it")


def combination(kind: str) -> str:
    """How values of a scalar of ``kind`` on chunks combine: ``"mean"`` (weighted by rows),
    ``"sum"``, or ``"sum+param"`` (summed, less the empty-batch value per extra chunk)."""
    return {PARAM: "mean", MEAN: "mean", COUNT: "sum", SUM: "sum", SUM_PARAM: "sum+param"}[kind]


# --- formulas --------------------------------------------------------------------------

_INVERSE = "1/count"  # inside a product only


def _formula_kind(expr, kinds: dict) -> str:
    """The kind of a scalar formula over symbols of ``kinds`` (none of them rows)."""
    if not any(kinds.get(s, PARAM) != PARAM for s in expr.free_symbols):
        return PARAM
    if expr.is_Symbol:
        return kinds[expr]
    if expr.is_Add:
        return join([_formula_kind(a, kinds) for a in expr.args])
    if expr.is_Mul:
        factors = []
        for a in expr.args:
            if a.is_Pow and a.exp == -1 and _formula_kind(a.base, kinds) == COUNT:
                factors.append(_INVERSE)
            else:
                factors.append(_formula_kind(a, kinds))
        batch = [k for k in factors if k != PARAM]
        if len(batch) == 1 and batch[0] != _INVERSE:
            return batch[0]
        if sorted(batch) == sorted([_INVERSE, SUM]) or sorted(batch) == [_INVERSE, COUNT]:
            return MEAN
        if _INVERSE in batch:
            raise Refused("it divides by the batch size something that is not a sum over it")
        raise Refused("it multiplies two reductions over the batch")
    if expr.is_Pow:
        raise Refused("it raises a reduction over the batch to a power (a product of them)")
    name = type(expr).__name__.lower()
    raise Refused(f"it takes {name}() of a reduction over the batch")


def _ew(node, kinds, batch):
    rows = {k.axis + node.ndim - i.ndim for i, k in zip(node.inputs, kinds) if isinstance(k, Row)}
    if rows:
        if any(not isinstance(k, Row) and k != PARAM for k in kinds):
            raise Refused(
                "it combines per-row values with a reduction over the batch (a normalisation "
                "by a batch statistic, as in x - mean(x) or a variance)"
            )
        if len(rows) > 1:
            raise Refused("it combines rows of the batch along different axes")
        return Row(rows.pop())
    expr = _native(node.attr("expr"))
    symbols = {elementwise.sym(i): k for i, k in enumerate(kinds)}
    return _formula_kind(expr, symbols)


def _native(expr):
    """The formula in SymPy's own arithmetic, if the elementwise module writes it otherwise."""
    to_native = getattr(elementwise, "to_native", None)
    return to_native(expr) if to_native else expr


# --- structural ops --------------------------------------------------------------------


def _same(node, kinds, batch):
    return kinds[0]


def _broadcast_to(node, kinds, batch):
    (k,) = kinds
    if isinstance(k, Row):
        return Row(k.axis + node.ndim - node.inputs[0].ndim)
    if _batch_axes(node.shape, batch):
        raise Refused("it spreads a reduction over the batch back along the batch dim")
    return k


def _strip_ones(shape):
    return [d for d in shape if d != 1]


def _reshape(node, kinds, batch):
    (k,) = kinds
    if not isinstance(k, Row):
        return k
    old, new = node.inputs[0].shape, node.shape
    out = _batch_axes(new, batch)
    # rows stay rows if the dims before the batch dim are the same (ignoring 1s): each row's
    # elements stay together and in place
    if len(out) == 1 and _strip_ones(old[: k.axis]) == _strip_ones(new[: out[0]]):
        return Row(out[0])
    raise Refused(f"it reshapes {fmt(old)} to {fmt(new)}, mixing rows of the batch")


def _transpose(node, kinds, batch):
    (k,) = kinds
    return Row(node.attr("perm").index(k.axis)) if isinstance(k, Row) else k


def _reduced_axis(axis, axes, keepdims):
    return axis if keepdims else axis - sum(1 for a in axes if a < axis)


def _sum(node, kinds, batch):
    (k,) = kinds
    axes = node.attr("axes")
    if isinstance(k, Row):
        if k.axis in axes:
            return SUM
        return Row(_reduced_axis(k.axis, axes, node.attr("keepdims")))
    return k


def _max_like(what):
    def rule(node, kinds, batch):
        (k,) = kinds
        axes = node.attr("axes")
        if isinstance(k, Row):
            if k.axis in axes:
                raise Refused(f"it takes a {what} over the batch dim")
            if node.shape == node.inputs[0].shape:  # a mask along other axes
                return k
            keepdims = node.attr("keepdims") if what == "max" else False  # argmax drops it
            return Row(_reduced_axis(k.axis, axes, keepdims))
        raise Refused(f"it takes a {what} of a reduction over the batch")

    return rule


def _matmul(node, kinds, batch):
    a, b = node.inputs
    ka, kb = kinds
    contract_a, contract_b = a.ndim - 1, 0
    row_a, row_b = isinstance(ka, Row), isinstance(kb, Row)
    if row_a and row_b:
        if ka.axis == contract_a and kb.axis == contract_b:
            return SUM  # sum over the rows of a per-row outer product (X.T @ X)
        raise Refused("it multiplies two per-row matrices along a dim other than the batch")
    if row_a or row_b:
        other = kb if row_a else ka
        row = ka if row_a else kb
        if other != PARAM:
            raise Refused("it multiplies per-row values by a reduction over the batch")
        if (row_a and row.axis == contract_a) or (row_b and row.axis == contract_b):
            raise Refused("it contracts the batch dim against a parameter")
        # the batch axis of the output: a's leading axis, or b's trailing one
        return Row(0) if row_a else Row(node.ndim - 1)
    batch_kinds = [k for k in kinds if k != PARAM]
    if len(batch_kinds) > 1:
        raise Refused("it multiplies two reductions over the batch (a matmul)")
    return batch_kinds[0]


def _pick(node, kinds, batch):
    scores, labels = kinds
    if isinstance(scores, Row) and scores.axis == node.inputs[0].ndim - 1:
        raise Refused("it picks entries across the batch dim")
    rows = [k for k in kinds if isinstance(k, Row)]
    if len(rows) == len([k for k in kinds if k != PARAM]) and len({r.axis for r in rows}) == 1:
        return rows[0]
    raise Refused("it picks entries of a reduction over the batch")


def _slice(node, kinds, batch, window_shape):
    """A slice (or its scatter) keeps rows if its window spans the whole batch dim."""
    (k,) = kinds
    if not isinstance(k, Row):
        return k
    a = k.axis
    whole = node.attr("starts")[a] == 0 and node.attr("steps")[a] == 1
    if whole and window_shape(node)[a] == batch:
        return k
    raise Refused("it slices the batch dim (rows would depend on their positions)")


def _concatenate(node, kinds, batch):
    rows = [k for k in kinds if isinstance(k, Row)]
    if rows:
        if len(rows) != len(kinds) or len({r.axis for r in rows}) != 1:
            raise Refused("it concatenates per-row values with other values")
        if rows[0].axis == node.attr("axis"):
            raise Refused("it concatenates along the batch dim")
        return rows[0]
    return join(kinds)


def _labels_only(node, kinds, batch):
    return kinds[0]


# op name -> rule(node, kinds of its inputs, batch dim) -> kind; raises Refused
RULES = {
    "ew": _ew,
    "broadcast_to": _broadcast_to,
    "reshape": _reshape,
    "relabel": _same,
    "stop_gradient": _same,
    "transpose": _transpose,
    "sum": _sum,
    "max": _max_like("max"),
    "argmax": _max_like("argmax"),
    "argmax_mask": _max_like("max"),
    "matmul": _matmul,
    "pick": _pick,
    "one_hot": _labels_only,
    "slice": lambda node, kinds, batch: _slice(node, kinds, batch, lambda n: n.shape),
    "slice_scatter": lambda node, kinds, batch: _slice(
        node, kinds, batch, lambda n: n.inputs[0].shape
    ),
    "concatenate": _concatenate,
}


def _batch_axes(shape, batch):
    """The axes where ``batch`` is the dim; refuses an expression of it (``N - 1``)."""
    for d in shape:
        if d != batch and batch in names_of(d):
            raise Refused(f"it has the dim {d}, an expression of the batch dim")
    return [i for i, d in enumerate(shape) if d == batch]


def _leaf(node, batch):
    if node.op.leaf == "dim":
        return COUNT if node.attr("name") == batch else PARAM
    axes = _batch_axes(node.shape, batch)
    if not axes:
        return PARAM
    if len(axes) > 1:
        raise Refused(f"it has the batch dim twice, in {fmt(node.shape)}")
    return Row(axes[0])


def _describe(node: Node) -> str:
    if node.op.leaf == "input":
        return f"input {node.name!r}"
    text = f"{node.op} of shape {fmt(node.shape)}"
    expr = dict(node.attrs).get("expr")  # a formula says more than the op's name
    return text if expr is None else f"{text} computing {expr}"


def kinds_of(outputs, batch: str) -> dict:
    """The kind of every node of the graph (see the module docstring); raises Refused."""
    kinds: dict = {}
    for node in toposort(list(outputs)):
        try:
            if node.op.leaf is not None:
                kinds[node] = _leaf(node, batch)
                continue
            inputs = [kinds[i] for i in node.inputs]
            if all(k == PARAM for k in inputs):
                kinds[node] = _leaf(node, batch)  # a parameter value, maybe spread over rows
                continue
            rule = RULES.get(node.op.name)
            if rule is None:
                raise Refused(f"it does not know how {node.op} combines over chunks of rows")
            binds = [d for d, _ in node.op.binds(node) if batch in names_of(d)]
            if binds:
                raise Refused("it fixes the batch dim to a size")
            kinds[node] = rule(node, inputs, batch)
        except Refused as exc:
            exc.node = node
            raise
    return kinds


def analyse(f: Node, batch: str) -> str:
    """How values of the scalar ``f`` on chunks of the batch dim ``batch`` combine:
    ``"mean"``, ``"sum"`` or ``"sum+param"`` (see :func:`combination`).

    >>> import symgrad as sg
    >>> X, w = sg.tensor("X", ("N", 3)), sg.tensor("w", (3,))
    >>> analyse(sg.mean((X @ w) ** 2) + sg.sum(w ** 2), "N")
    'mean'
    >>> analyse(sg.max(X @ w), "N")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.GraphError: the loss is not a sum or a mean over the batch dim 'N' ...: it takes a max over the batch dim (at max of shape ())
    """
    if f.shape != ():
        raise GraphError(f"the loss must be a scalar to combine over chunks, not {fmt(f.shape)}")
    try:
        kind = kinds_of([f], batch)[f]
    except Refused as exc:
        raise GraphError(
            f"the loss is not a sum or a mean over the batch dim {batch!r} of per-row terms, "
            f"so its values on chunks of rows cannot be combined exactly: {exc} "
            f"(at {_describe(exc.node)})"
        ) from None
    return combination(kind)
