"""The ``numpy`` backend: an interpreter that evaluates the graph node by node with NumPy.

This is the "interpreted" mode: simple, obviously correct, and the reference the Numba
backend is checked against.  One entry of :data:`EVAL` per op.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ..ir import Node, to_text, toposort
from ..ir.shapes import evaluate
from .inputs import check_labels


class _Printer(NumPyPrinter):
    """SymPy -> NumPy expression text; floats printed with all their digits."""

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_erf(self, expr):
        return f"erf({self._print(expr.args[0])})"

    def _print_IsNaN(self, expr):
        return f"numpy.isnan({self._print(expr.args[0])})"

    # pairwise logical operators: NumPy's `.reduce((a, b))` fails when a scalar meets an array
    def _print_And(self, expr):
        return self._nested("numpy.logical_and", expr.args)

    def _print_Or(self, expr):
        return self._nested("numpy.logical_or", expr.args)

    def _nested(self, func, args):
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{func}({text}, {self._print(a)})"
        return text

    def _print_Piecewise(self, expr):
        # nested where: it broadcasts scalar and array branches alike (select does not)
        *branches, (last, cond) = expr.args
        text = (
            self._print(last)
            if cond == sp.true
            else f"numpy.where({self._print(cond)}, {self._print(last)}, numpy.nan)"
        )
        for value, cond in reversed(branches):
            text = f"numpy.where({self._print(cond)}, {self._print(value)}, {text})"
        return text


@cache
def ew_function(expr, n_inputs: int):
    """A NumPy function of ``x0..x{n-1}`` computing ``expr`` elementwise."""
    args = ", ".join(f"x{i}" for i in range(n_inputs))
    body = _Printer({"fully_qualified_modules": True}).doprint(expr)
    source = f"def f({args}):\n    return {body}\n"
    namespace = {"numpy": np}
    if expr.has(sp.erf):  # NumPy has no erf; SciPy's costs 0.3 s to import, so only here
        from scipy.special import erf

        namespace["erf"] = erf
    exec(compile(source, f"<symgrad ew {expr}>", "exec"), namespace)
    return namespace["f"]


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


def _ew(node, args, ctx):
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
    "sum": lambda node, args, ctx: np.sum(
        args[0], axis=node.attr("axes"), keepdims=node.attr("keepdims")
    ),
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
        self.source = to_text(outputs)

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
