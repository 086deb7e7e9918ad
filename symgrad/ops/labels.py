"""Ops that read integer labels: ``pick`` (a gather along the last axis) and ``one_hot``.

Their labels must be in ``[0, C)``; each op states which input holds them and what ``C``
is (its ``labels`` fact), and the compiled function checks them before any kernel runs
(``backends/inputs.py``), so kernels index without bounds checks.
"""

from __future__ import annotations

from ..errors import DTypeError, ShapeError
from ..ir import Node, intern
from ..ir import dtypes as dt
from ..ir.op import Op
from ..ir.shapes import fmt, normalize
from .core import EW, ew, reshape
from .elementwise import sym


def _check_labels(labels: Node, what: str) -> None:
    if labels.dtype != "int64":
        raise DTypeError(f"{what} needs int64 labels, got {labels.dtype} {labels!r}")


def pick(scores: Node, labels: Node) -> Node:
    """``scores[i..., labels[i...]]``: one entry of the last axis per row."""
    _check_labels(labels, "pick")
    if scores.ndim < 1 or scores.shape[:-1] != labels.shape:
        raise ShapeError(
            f"pick needs labels of shape scores.shape[:-1]; got scores {fmt(scores.shape)} "
            f"and labels {fmt(labels.shape)}"
        )
    return intern(PICK, (scores, labels), {}, labels.shape, scores.dtype)


def pick_of_elementwise(node: Node) -> Node | None:
    """``pick(ew(f, xs), labels)`` is ``ew(f, [pick(x, labels) ...])`` (or None): the formula
    computed at the one picked entry of each row rather than at all of them, from the same
    values, so the same bits (the loss of ``pick(log_softmax(s), y)`` needs ``s - lse`` at
    the label only).  An input with one value per row (``(N, 1)``) is reshaped to ``(N,)``;
    an input broadcast along the rows (a bias) keeps the pick where it is.

    A rewrite of the Numba backend's, not of the constructor or the optimiser: the graph
    as written and as printed (``sg.pretty``, the explanations) keeps the op the user called.
    """
    if node.op is not PICK:
        return None
    scores, labels = node.inputs
    if scores.op is not EW or not scores.inputs:
        return None
    inputs = []
    for x in scores.inputs:
        if x.shape == scores.shape:
            inputs.append(pick(x, labels))
        elif not x.shape:
            inputs.append(x)
        elif x.shape[-1] == 1:
            inputs.append(reshape(x, x.shape[:-1]))
        else:
            return None
    return ew(scores.attr("expr"), inputs, scores.dtype)


def _vjp_pick(node, g):
    scores, labels = node.inputs
    hot = one_hot(labels, scores.shape[-1], g.dtype)
    return ew(sym(0) * sym(1), [hot, reshape(g, g.shape + (1,))]), None


PICK = Op(
    "pick",
    vjp=_vjp_pick,
    rebuild=lambda node, inputs: pick(*inputs),
    fresh=True,
    labels=lambda node: (1, node.inputs[0].shape[-1]),
)


def one_hot(labels: Node, num_classes, dtype="float64") -> Node:
    """1.0 at ``[..., labels[...]]`` along a new last axis of size ``num_classes``."""
    _check_labels(labels, "one_hot")
    (num_classes,) = normalize((num_classes,), "num_classes")
    dtype = dt.check(dtype)
    return intern(
        ONE_HOT,
        (labels,),
        {"num_classes": num_classes, "dtype": dtype},
        labels.shape + (num_classes,),
        dtype,
    )


ONE_HOT = Op(
    "one_hot",
    vjp=lambda node, g: (None,),
    rebuild=lambda node, inputs: one_hot(inputs[0], node.attr("num_classes"), node.dtype),
    fresh=True,
    labels=lambda node: (0, node.attr("num_classes")),
    hot_rows=True,
)
