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
from .core import ew, reshape
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
