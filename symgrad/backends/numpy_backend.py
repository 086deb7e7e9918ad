"""The ``numpy`` backend: an interpreter that evaluates the graph node by node with NumPy.

This is the "interpreted" mode: simple, obviously correct, and the reference the Numba
backend is checked against.  One entry of :data:`EVAL` per op.
"""

from __future__ import annotations

from functools import cached_property
from typing import NamedTuple

import numpy as np

from ..ir import Node, to_text, toposort
from ..ir import dtypes as dt
from ..ir.shapes import evaluate
from ..ops import numeric
from .inputs import check_labels

# The formula printer lives in ops/numeric.py: constant folding runs the same NumPy code.
ew_function = numeric.function


def _sum(node, args, ctx):
    # float32 sums accumulate in float64 and round once (as the numba backend): accurate
    # and the same whatever the axis (NumPy's pairwise float32 sum is only pairwise along
    # the contiguous axis)
    x = args[0]
    acc = np.float64 if x.dtype == np.float32 else None
    total = np.sum(x, axis=node.attr("axes"), keepdims=node.attr("keepdims"), dtype=acc)
    return np.asarray(total).astype(node.dtype, copy=False)


class Call(NamedTuple):
    """What one call binds: input arrays by name and named dim sizes."""

    arrays: dict
    dims: dict


def resolve(shape, dims: dict[str, int]) -> tuple[int, ...]:
    """A shape with its named dims replaced by their sizes in this call."""
    return tuple(evaluate(d, dims) for d in shape)


def _window(node, ctx, counts):
    """The slices of a window (``starts``, ``steps``) with ``counts`` entries per axis."""
    out = []
    for start, step, count in zip(
        resolve(node.attr("starts"), ctx.dims), node.attr("steps"), resolve(counts, ctx.dims)
    ):
        if count == 0:
            out.append(slice(0, 0))
            continue
        stop = start + step * count
        out.append(slice(start, stop if stop >= 0 else None, step))
    return tuple(out)


def _slice_scatter(node, args, ctx):
    out = np.zeros(resolve(node.shape, ctx.dims), dtype=node.dtype)
    out[_window(node, ctx, node.inputs[0].shape)] = args[0]
    return out


def _argmax(node, args, ctx):
    (x,), (axis,) = args, node.attr("axes")
    return np.argmax(x, axis=axis).astype(np.int64)


def operands(node, args) -> list:
    """The values an ew node's formula computes on: float32 ones as float64 where the
    formula computes in float64 (:func:`symgrad.ir.dtypes.widens`)."""
    if not dt.widens(node.dtype, [x.dtype for x in node.inputs]):
        return list(args)
    return [np.asarray(a, np.float64) if x.dtype == "float32" else a
            for x, a in zip(node.inputs, args)]


def _ew(node, args, ctx):
    args = operands(node, args)
    out = np.asarray(ew_function(node.attr("expr"), len(args))(*args), dtype=node.dtype)
    if any(out is a for a in args):  # a formula that returns an input: never hand it out
        out = out.copy()
    shape = resolve(node.shape, ctx.dims)
    return out if out.shape == shape else np.broadcast_to(out, shape)


def _argmax_mask(node, args, ctx):
    (x,), axes = args, node.attr("axes")
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    reduced = int(np.prod([x.shape[a] for a in axes]))  # explicit: -1 fails for empty rows
    flat = moved.reshape(moved.shape[: len(rest)] + (reduced,))
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, np.argmax(flat, axis=-1)[..., None], True, axis=-1)
    return np.transpose(mask.reshape(moved.shape), np.argsort(rest + list(axes)))


def _labels(labels, classes):
    check_labels("labels", labels, classes)  # labels computed in the graph are checked here
    return labels


def _pick(node, args, ctx):
    scores, labels = args
    labels = _labels(labels, scores.shape[-1])
    return np.take_along_axis(scores, labels[..., None], axis=-1)[..., 0]


def _one_hot(node, args, ctx):
    (classes,) = resolve((node.attr("num_classes"),), ctx.dims)
    labels = _labels(args[0], classes)
    return (labels[..., None] == np.arange(classes)).astype(node.dtype)


EVAL = {
    # scalars as NumPy values, so NumPy's rules apply (a negative number ** 0.5 is nan)
    "input": lambda node, args, ctx: np.asarray(ctx.arrays[node.attr("name")]),
    "const": lambda node, args, ctx: node.attr("value").array,
    "dim": lambda node, args, ctx: np.asarray(ctx.dims[node.attr("name")], dtype=node.dtype),
    "ew": _ew,
    "sum": _sum,
    "max": lambda node, args, ctx: np.max(
        args[0], axis=node.attr("axes"), keepdims=node.attr("keepdims")
    ),
    "argmax_mask": _argmax_mask,
    "matmul": lambda node, args, ctx: np.matmul(*args).astype(node.dtype, copy=False),
    "transpose": lambda node, args, ctx: np.transpose(args[0], node.attr("perm")),
    "reshape": lambda node, args, ctx: np.reshape(args[0], resolve(node.shape, ctx.dims)),
    "relabel": lambda node, args, ctx: args[0],  # the bound sizes are equal: checked
    "broadcast_to": lambda node, args, ctx: np.broadcast_to(args[0], resolve(node.shape, ctx.dims)),
    "pick": _pick,
    "one_hot": _one_hot,
    "stop_gradient": lambda node, args, ctx: args[0],
    "slice": lambda node, args, ctx: args[0][_window(node, ctx, node.shape)],
    "slice_scatter": _slice_scatter,
    "concatenate": lambda node, args, ctx: np.concatenate(args, axis=node.attr("axis")),
    "argmax": _argmax,
}


class NumpyProgram:
    """Evaluates ``outputs`` for bound inputs; ``source`` is the graph as text."""

    def __init__(self, outputs: list[Node], names: list[str], given=()):
        self.outputs, self.names, self.given = outputs, names, list(given)
        self.order = [n for n in toposort(outputs, stop=set(given)) if n not in set(given)]

    @cached_property
    def source(self) -> str:
        # printed when asked for: printing every formula of a big graph takes seconds
        return to_text(self.outputs)

    def __call__(self, values: tuple, dims: dict, given: tuple = ()) -> list[np.ndarray]:
        """Evaluate for bound input values (signature order); ``given`` holds the values of
        the nodes given at build time (not computed here)."""
        env: dict[Node, np.ndarray] = dict(zip(self.given, given))
        context = Call(dict(zip(self.names, values)), dims)
        with np.errstate(all="ignore"):  # IEEE results (inf, nan) are the caller's to see
            for node in self.order:
                env[node] = EVAL[node.op](node, [env[i] for i in node.inputs], context)
        return [env[o] for o in self.outputs]


def build(outputs: list[Node], signature, options: dict, given=()) -> NumpyProgram:
    return NumpyProgram(outputs, signature.names, given)
