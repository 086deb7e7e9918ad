"""Losses of the course, built from ops so that their gradients are derived, not written.

``reduction`` is ``"mean"`` (over rows, or over all elements for squared_error),
``"sum"``, or ``"none"`` (one value per row, or per element for squared_error).
"""

from __future__ import annotations

from ..errors import ArgumentError
from ..ops import api

REDUCTIONS = ("mean", "sum", "none")


def _reduce(values, reduction: str):
    if reduction not in REDUCTIONS:
        raise ArgumentError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return values
    return api.mean(values) if reduction == "mean" else api.sum(values)


def softmax_cross_entropy(scores, labels, reduction="mean"):
    """-log softmax(scores)[label] per row, through log-sum-exp (stable for any scores).

    Its derived gradient with respect to the scores is (softmax - onehot) / N for "mean".
    """
    scores = api.as_node(scores)
    return _reduce(-api.pick(api.log_softmax(scores, axis=-1), labels), reduction)


def multiclass_hinge(scores, labels, margin=1.0, reduction="mean"):
    """sum over j != label of max(0, s_j - s_label + margin), per row.

    A term contributes to the gradient only where its margin is strictly positive
    (relu'(0) = 0), as in the hand-derived vectorised SVM gradient.
    """
    scores, labels = api.as_node(scores), api.as_node(labels)
    correct = api.pick(scores, labels)[..., None]
    others = 1 - api.one_hot(labels, scores.shape[-1], dtype=scores.dtype)
    margins = api.relu(scores - correct + margin) * others
    return _reduce(api.sum(margins, axis=-1), reduction)


def squared_error(pred, target, reduction="sum"):
    """(pred - target)**2, summed by default ("mean" averages over all elements)."""
    return _reduce((api.as_node(pred) - target) ** 2, reduction)


def l2(*weights):
    """The sum of squares of all entries of all ``weights`` (R(W) of the course)."""
    if not weights:
        raise ArgumentError("l2 needs at least one tensor")
    total = api.sum(api.as_node(weights[0]) ** 2)
    for w in weights[1:]:
        total = total + api.sum(api.as_node(w) ** 2)
    return total
