"""Checking a call's inputs against the graph's declared tensors, before any kernel runs.

Shared by every backend: after :meth:`Signature.bind` succeeds, shapes agree with the
declared dims, named dims have one size each, dtypes are the declared ones, arrays are
C-contiguous, and every label that a ``pick`` or ``one_hot`` reads is in ``[0, C)``.  A
kernel may therefore index without checks.

Accepted values: NumPy arrays of any memory order (copied to C order if needed), read-only
arrays, Python lists and scalars.  Float tensors take any real input and convert it to the
declared float dtype (so a float64 array passed for a float32 tensor computes in float32);
int64 tensors (labels) take integer arrays only.  Inputs are never modified.

Named dims may be 0 (an empty batch): sums over them are 0, means are nan (0/0), gradients
keep their shapes, as in NumPy; a ``max`` (so also ``logsumexp``, ``softmax`` and the
losses built on them) over a dim of size 0 is a :class:`ShapeError`, since it has no value.
NaN and inf in inputs are not rejected: they propagate through the arithmetic as in NumPy,
except through the dependency-dropping rewrites of docs/semantics.md (`x - x` is 0).
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, DTypeError, GraphError, LabelError, ShapeError
from ..ir import Node, toposort
from ..ir.shapes import fmt


class Signature:
    """The inputs of a compiled function, and the checks a call must pass."""

    def __init__(self, outputs: list[Node], extra_inputs=()):
        nodes = toposort(outputs)
        found = {n for n in nodes if n.op == "input"} | set(extra_inputs)
        by_name: dict[str, Node] = {}
        for node in sorted(found, key=lambda n: n.digest):
            other = by_name.setdefault(node.name, node)
            if other is not node:
                raise ArgumentError(
                    f"two different tensors are named {node.name!r}: {other!r} and {node!r}"
                )
        self.inputs = [by_name[k] for k in sorted(by_name)]
        self.names = [n.name for n in self.inputs]
        self._name_set = set(self.names)
        self._first = {}  # named dim -> the first input (by name) that has it
        for n in self.inputs:
            for d in n.shape:
                if isinstance(d, str):
                    self._first.setdefault(d, n.name)
        # (labels input, class-count dim) for every pick/one_hot that reads an input directly
        self.label_checks = sorted(
            {
                (
                    _label_source(n.inputs[1] if n.op == "pick" else n.inputs[0]),
                    n.inputs[0].shape[-1] if n.op == "pick" else n.attr("num_classes"),
                )
                for n in nodes
                if n.op in ("pick", "one_hot")
            },
            key=lambda item: (item[0].digest, str(item[1])),
        )
        # named dims a max reduces over: a max of nothing has no value, so they must be > 0
        self.nonempty = sorted(
            {
                d
                for n in nodes
                if n.op in ("max", "argmax_mask")
                for d in (n.inputs[0].shape[a] for a in n.attr("axes"))
                if isinstance(d, str)  # int dims are checked when the graph is built
            }
        )
        bound = {d for n in self.inputs for d in n.shape if isinstance(d, str)}
        unbound = {d for n in nodes for d in n.shape if isinstance(d, str)} - bound
        unbound |= {n.attr("name") for n in nodes if n.op == "dim"} - bound
        if unbound:
            raise ShapeError(
                f"named dims {sorted(unbound)} are not the size of any input, so no call could "
                "give them a value"
            )
        namespace = {"ndarray": np.ndarray, "DTYPES": {d: np.dtype(d) for d in _KINDS}}
        exec(compile(_fast_binder_source(self), "<symgrad fast_bind>", "exec"), namespace)
        # ``bind`` for calls whose values need no conversion, else None (then call ``bind``);
        # straight-line checks generated per signature (see _fast_binder_source), since
        # per-call overhead is all a scalar function like (x + y) * z costs
        self.fast_bind = namespace["fast_bind"]

    def bind(self, kwargs: dict) -> tuple[tuple, dict[str, int]]:
        """Check and convert a call's keyword arguments.

        Returns the values in the order of ``self.inputs`` and the named dim sizes.  Arrays
        come back C-contiguous in the declared dtype; scalar inputs as scalars of that dtype
        (a Python float for float64).  ``fast_bind`` is tried first on every call;
        this is the complete version, which converts what needs converting and explains
        what is wrong.
        """
        if kwargs.keys() != self._name_set:
            self._explain_keywords(kwargs)
        values, dims = {}, {}
        for node, name in zip(self.inputs, self.names):
            value = kwargs[name]
            if not node.shape:
                values[name] = _scalar(node, value)
                continue
            array = _convert(node, value)
            if array.ndim != node.ndim:
                raise ShapeError(
                    f"input {name!r} should have {node.ndim} dims {fmt(node.shape)}, "
                    f"got shape {array.shape}"
                )
            for axis, (want, got) in enumerate(zip(node.shape, array.shape)):
                if want.__class__ is int:
                    if want != got:
                        raise ShapeError(
                            f"input {name!r} should have shape {fmt(node.shape)}, got "
                            f"{array.shape}: axis {axis} is {got}, expected {want}"
                        )
                elif dims.setdefault(want, got) != got:
                    raise ShapeError(
                        f"dim {want} is {dims[want]} for {self._first[want]!r} but {got} "
                        f"for {name!r}"
                    )
            values[name] = array
        for d in self.nonempty:
            if dims[d] == 0:
                raise ShapeError(f"dim {d} is 0, but the function takes a max over it (of nothing)")
        for labels, classes in self.label_checks:
            array = values[labels.name] if labels.op == "input" else labels.attr("value").array
            what = f"labels {labels.name!r}" if labels.op == "input" else "constant labels"
            check_labels(what, np.asarray(array), dims.get(classes, classes))
        return tuple(values[n] for n in self.names), dims

    def _explain_keywords(self, kwargs):
        unknown = sorted(set(kwargs) - self._name_set)
        if unknown:
            raise ArgumentError(f"unknown input {unknown[0]!r}; this function takes {self.names}")
        missing = [n for n in self.names if n not in kwargs]
        raise ArgumentError(f"missing input {missing[0]!r}; this function takes {self.names}")


def _fast_binder_source(sig: Signature) -> str:
    """Python source of a binder that accepts only values already in final form.

    >>> import symgrad as sg
    >>> X, labels = sg.tensor("X", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    >>> print(_fast_binder_source(Signature([sg.pick(X, labels)])))
    def fast_bind(kw):
        if len(kw) != 2: return None
        try:
            a0 = kw['X']
            a1 = kw['y']
        except KeyError: return None
        if a0.__class__ is not ndarray or a0.dtype is not DTYPES['float64'] or a0.ndim != 2 or not a0.flags.c_contiguous: return None
        n_N = a0.shape[0]
        if a0.shape[1] != 3: return None
        if a1.__class__ is not ndarray or a1.dtype is not DTYPES['int64'] or a1.ndim != 1 or not a1.flags.c_contiguous: return None
        if a1.shape[0] != n_N: return None
        if a1.size and (a1.min() < 0 or a1.max() >= 3): return None
        return (a0, a1), {'N': n_N}
    <BLANKLINE>
    """
    lines = ["def fast_bind(kw):", f"    if len(kw) != {len(sig.inputs)}: return None"]
    args = [f"a{k}" for k in range(len(sig.inputs))]
    if args:
        lines.append("    try:")
        lines += [f"        {a} = kw[{node.name!r}]" for a, node in zip(args, sig.inputs)]
        lines.append("    except KeyError: return None")
    dims: dict[str, str] = {}
    for a, node in zip(args, sig.inputs):
        if not node.shape:
            kind = {"float64": "float", "int64": "int", "bool": "bool", "float32": "None"}
            # (float32 scalars are never final: bind makes them np.float32)
            lines.append(f"    if {a}.__class__ is not {kind[node.dtype]}: return None")
            if node.dtype == "int64":  # a Python int may not fit
                lines.append(
                    f"    if not -9223372036854775808 <= {a} <= 9223372036854775807: return None"
                )
            continue
        lines.append(
            f"    if {a}.__class__ is not ndarray or {a}.dtype is not DTYPES[{node.dtype!r}] "
            f"or {a}.ndim != {node.ndim} or not {a}.flags.c_contiguous: return None"
        )
        for axis, d in enumerate(node.shape):
            if isinstance(d, int):
                lines.append(f"    if {a}.shape[{axis}] != {d}: return None")
            elif d in dims:
                lines.append(f"    if {a}.shape[{axis}] != {dims[d]}: return None")
            else:
                dims[d] = f"n_{d}"
                lines.append(f"    n_{d} = {a}.shape[{axis}]")
    for d in sig.nonempty:
        lines.append(f"    if {dims[d]} == 0: return None")
    for labels, classes in sig.label_checks:
        if labels.op != "input":
            continue  # constants: bind checks them
        a = args[sig.inputs.index(labels)]
        bound = dims[classes] if isinstance(classes, str) else classes
        if labels.shape:
            lines.append(
                f"    if {a}.size and ({a}.min() < 0 or {a}.max() >= {bound}): return None"
            )
        else:
            lines.append(f"    if not 0 <= {a} < {bound}: return None")
    dim_items = ", ".join(f"{d!r}: {v}" for d, v in dims.items())
    values = f"({args[0]},)" if len(args) == 1 else f"({', '.join(args)})"
    lines.append(f"    return {values}, {{{dim_items}}}")
    return "\n".join(lines) + "\n"


def _label_source(labels: Node) -> Node:
    """The input or constant whose values the labels are.

    Only ``input`` and ``const`` nodes hold int64 values; reshapes and transposes move them
    around without changing the set of values, so checking the source checks the labels.
    """
    while labels.op in ("reshape", "transpose", "broadcast_to", "stop_gradient"):
        labels = labels.inputs[0]
    if labels.op not in ("input", "const"):
        raise GraphError(f"labels must come from an int64 input or constant, not {labels!r}")
    return labels


_KINDS = ("float64", "float32", "int64", "bool")
_SCALARS = {"float64": float, "float32": np.float32, "int64": int, "bool": bool}


def _scalar(node: Node, value):
    """A scalar input as a scalar of the declared dtype."""
    array = _convert(node, value)
    if array.ndim != 0:
        raise ShapeError(f"input {node.name!r} is a scalar; got shape {array.shape}")
    return _SCALARS[node.dtype](array[()])


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
    if labels.ndim == 0:
        if not 0 <= labels < classes:
            raise LabelError(f"{what} must be in [0, {classes}); got {labels}")
        return
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        index = np.unravel_index(bad[0], labels.shape)
        raise LabelError(
            f"{what} must be in [0, {classes}); found {labels[index]} at index "
            f"{index if len(index) > 1 else index[0]}"
        )
