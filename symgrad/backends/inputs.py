"""Checking a call's inputs against the graph's declared tensors, before any kernel runs.

Shared by every backend: after :meth:`Signature.bind` succeeds, shapes agree with the
declared dims, named dims have one size each, dtypes are the declared ones, arrays are
C-contiguous, and every label that a ``pick`` or ``one_hot`` reads is in ``[0, C)``.  A
kernel may therefore index without checks.

Accepted values: NumPy arrays of any memory order (copied to C order if needed), read-only
arrays, Python lists and scalars.  Float tensors take any real input and convert it to the
declared float dtype (so a float64 array passed for a float32 tensor computes in float32);
int64 tensors (labels) take integer arrays only.  Inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, DTypeError, LabelError, ShapeError
from ..ir import Node, toposort
from ..ir.shapes import fmt


class Signature:
    """The inputs of a compiled function, and the checks a call must pass."""

    def __init__(self, outputs: list[Node], extra_inputs=()):
        nodes = toposort(outputs)
        found = {n for n in nodes if n.op == "input"} | set(extra_inputs)
        by_name: dict[str, Node] = {}
        for node in sorted(found, key=lambda n: n.serial):
            other = by_name.setdefault(node.name, node)
            if other is not node:
                raise ArgumentError(
                    f"two different tensors are named {node.name!r}: {other!r} and {node!r}"
                )
        self.inputs = [by_name[k] for k in sorted(by_name)]
        self.names = [n.name for n in self.inputs]
        # (labels input, class-count dim) for every pick/one_hot that reads an input directly
        self.label_checks = sorted(
            {
                (n.inputs[1] if n.op == "pick" else n.inputs[0],
                 n.inputs[0].shape[-1] if n.op == "pick" else n.attr("num_classes"))
                for n in nodes if n.op in ("pick", "one_hot")
            },
            key=lambda item: (item[0].serial, str(item[1])),
        )
        bound = {d for n in self.inputs for d in n.shape if isinstance(d, str)}
        unbound = {d for n in nodes for d in n.shape if isinstance(d, str)} - bound
        unbound |= {n.attr("name") for n in nodes if n.op == "dim"} - bound
        if unbound:
            raise ShapeError(
                f"named dims {sorted(unbound)} are not the size of any input, so no call could "
                "give them a value"
            )

    def bind(self, kwargs: dict) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Check and convert a call's keyword arguments; returns (arrays, named dim sizes)."""
        unknown = sorted(set(kwargs) - set(self.names))
        if unknown:
            raise ArgumentError(f"unknown input {unknown[0]!r}; this function takes {self.names}")
        missing = [n for n in self.names if n not in kwargs]
        if missing:
            raise ArgumentError(f"missing input {missing[0]!r}; this function takes {self.names}")
        arrays, dims, seen = {}, {}, {}
        for node in self.inputs:
            array = _convert(node, kwargs[node.name])
            if array.ndim != node.ndim:
                raise ShapeError(
                    f"input {node.name!r} should have {node.ndim} dims {fmt(node.shape)}, "
                    f"got shape {array.shape}"
                )
            for axis, (want, got) in enumerate(zip(node.shape, array.shape)):
                if isinstance(want, int):
                    if want != got:
                        raise ShapeError(
                            f"input {node.name!r} should have shape {fmt(node.shape)}, got "
                            f"{array.shape}: axis {axis} is {got}, expected {want}"
                        )
                elif dims.setdefault(want, got) != got:
                    raise ShapeError(
                        f"dim {want} is {dims[want]} for {seen[want]!r} but {got} for "
                        f"{node.name!r}"
                    )
                else:
                    seen.setdefault(want, node.name)
            arrays[node.name] = array
        for labels, classes in self.label_checks:
            if labels.op == "input":
                check_labels(f"labels {labels.name!r}", arrays[labels.name], dims.get(classes, classes))
        return arrays, dims


def _convert(node: Node, value) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DTypeError(f"input {node.name!r} is not an array: {exc}") from None
    kind = array.dtype.kind
    if node.dtype == "int64":
        if kind not in "iu":
            raise DTypeError(
                f"input {node.name!r} holds integer labels (int64); got an array of {array.dtype}"
            )
    elif node.dtype == "bool":
        if kind != "b":
            raise DTypeError(f"input {node.name!r} is bool; got an array of {array.dtype}")
    elif kind not in "fiub":
        raise DTypeError(f"input {node.name!r} is {node.dtype}; got an array of {array.dtype}")
    return np.asarray(array, dtype=node.dtype, order="C")


def check_labels(what: str, labels: np.ndarray, classes: int) -> None:
    """Raise :class:`LabelError` unless every label is in ``[0, classes)``."""
    if labels.size == 0:
        return
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        index = np.unravel_index(bad[0], labels.shape)
        raise LabelError(
            f"{what} must be in [0, {classes}); found {labels[index]} at index "
            f"{index if len(index) > 1 else index[0]}"
        )
