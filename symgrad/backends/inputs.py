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

import builtins
import keyword
import math
import re

import numpy as np

from .. import pycode
from ..errors import ArgumentError, DTypeError, GraphError, LabelError, ShapeError
from ..ir import Node, toposort
from ..ir.shapes import Dim, DimExpr, as_expr, dim_of, evaluate, fmt, names_of


class Signature:
    """The inputs of a compiled function, and the checks a call must pass."""

    def __init__(self, outputs: list[Node], extra_inputs=()):
        nodes = toposort(outputs)
        found = {n for n in nodes if n.op.leaf == "input"} | set(extra_inputs)
        by_name: dict[str, Node] = {}
        for node in sorted(found, key=lambda n: n.digest):
            other = by_name.setdefault(node.name, node)
            if other is not node:
                raise ArgumentError(
                    f"two different tensors are named {node.name!r}: {other!r} and {node!r}"
                )
        self.inputs = [by_name[k] for k in sorted(by_name)]
        self._first = {}  # named dim -> the first input (by name) that has it
        for n in self.inputs:
            for d in n.shape:
                if isinstance(d, str):
                    self._first.setdefault(d, n.name)
        # (labels source, class-count dim) for every op reading labels (its `labels` fact);
        # labels computed as indices (argmax) instead need their range within the classes
        checks, within = set(), {}
        for n in nodes:
            read = n.op.labels(n)
            if read is None:
                continue
            source = _label_source(n.inputs[read[0]])
            below = source.op.indices_below(source)
            if below is None:
                checks.add((source, read[1]))
            else:
                _within(below, read[1], within)
        self.label_checks = sorted(checks, key=lambda item: (item[0].digest, str(item[1])))
        # dims known only at call time with a lower bound (each op's `requires` fact, and
        # every expression dim, which must not be negative), in a deterministic order
        need = dict(within)
        for n in nodes:
            for d, minimum, reason in n.op.requires(n):
                need.setdefault((d, minimum), reason)
            for d in n.shape:
                if isinstance(d, DimExpr):
                    need.setdefault((d, 0), "a dim cannot be negative")
        self.requires = sorted(
            ((d, m, r) for (d, m), r in need.items()), key=lambda t: (str(t[0]), t[1])
        )
        # named dims the graph fixed to a size (a name broadcast against a fixed size)
        self.binds = sorted(
            {pair for n in nodes for pair in n.op.binds(n)}, key=lambda t: (str(t[0]), t[1])
        )
        bound = {d for n in self.inputs for d in n.shape if isinstance(d, str)}
        used = {name for n in nodes for d in n.shape for name in names_of(d)}
        used |= {name for d, _, _ in self.requires for name in names_of(d)}
        used |= {name for d, _ in self.binds for name in names_of(d)}
        unbound = used - bound
        unbound |= {n.attr("name") for n in nodes if n.op.leaf == "dim"} - bound
        if unbound:
            raise ShapeError(
                f"named dims {sorted(unbound)} are not the size of any input, so no call could "
                "give them a value"
            )
        self._prepare()

    def _prepare(self):
        """The names, the plan and the generated binder, from the analysis above."""
        self.names = [n.name for n in self.inputs]
        self._name_set = set(self.names)
        self.plan = _plan(self)
        namespace = {
            "ndarray": np.ndarray,
            "DTYPES": {d: np.dtype(d) for d in _KINDS},
            "math": math,
        }
        # ``bind`` for calls whose values need no conversion, else None (then call ``bind``);
        # straight-line checks generated per signature from the same plan as ``bind`` (see
        # _fast_binder_source), since per-call overhead is all a scalar function costs
        source = _fast_binder_source(self)
        self.fast_bind = pycode.function(source, "<symgrad fast_bind>", "fast_bind", namespace)

    def __reduce__(self):
        # what the analysis found (the warm-start cache stores it with the optimised graph:
        # the signature is made from the graph *before* optimisation, which may drop
        # inputs and label reads); the plan and the binder are made again where it lands
        state = (self.inputs, self._first, self.label_checks, self.requires, self.binds)
        return _restore_signature, state

    def bind(self, kwargs: dict) -> tuple[tuple, dict[str, int]]:
        """Check and convert a call's keyword arguments.

        Returns the values in the order of ``self.inputs`` and the named dim sizes.  Arrays
        come back C-contiguous in the declared dtype; scalar inputs as scalars of that dtype
        (a Python float for float64).  ``fast_bind`` is tried first on every call;
        this is the complete version, which converts what needs converting and explains
        what is wrong.  Both run the checks of :attr:`plan`, in its order.
        """
        if kwargs.keys() != self._name_set:
            self._explain_keywords(kwargs)
        values, dims = [None] * len(self.inputs), {}
        for step in self.plan:
            kind, k = step[0], step[1]
            node = self.inputs[k] if k is not None else None
            if kind == "scalar":
                values[k] = _scalar(node, kwargs[node.name])
            elif kind == "array":
                array = values[k] = _convert(node, kwargs[node.name])
                if array.ndim != node.ndim:
                    raise ShapeError(
                        f"input {node.name!r} should have {node.ndim} dims {fmt(node.shape)}, "
                        f"got shape {array.shape}"
                    )
            elif kind in ("fixed", "expr"):
                axis, want = step[2], step[3]
                got, expected = values[k].shape[axis], evaluate(want, dims)
                if got != expected:
                    shown = expected if kind == "fixed" else f"{want} = {expected}"
                    raise ShapeError(
                        f"input {node.name!r} should have shape {fmt(node.shape)}, got "
                        f"{values[k].shape}: axis {axis} is {got}, expected {shown}"
                    )
            elif kind == "bind":
                dims[step[3]] = values[k].shape[step[2]]
            elif kind == "same":
                axis, want = step[2], step[3]
                got = values[k].shape[axis]
                if dims[want] != got:
                    raise ShapeError(
                        f"dim {want} is {dims[want]} for {self._first[want]!r} but {got} "
                        f"for {node.name!r}"
                    )
            elif kind == "equals":
                d, size = step[2:]
                value = evaluate(d, dims)
                if value != size:
                    raise ShapeError(
                        f"dim {d} is {value}, but the graph broadcasts it against the fixed "
                        f"size {size} (so {d} must be {size})"
                    )
            elif kind == "at_least":
                d, minimum, reason = step[2:]
                value = evaluate(d, dims)
                if value < minimum:
                    raise ShapeError(_too_small(d, value, dims, reason))
            else:  # "labels": k is the input holding them, or None for a constant
                source, classes = step[2], step[3]
                array = values[k] if k is not None else source.attr("value").array
                what = f"labels {node.name!r}" if k is not None else "constant labels"
                check_labels(what, np.asarray(array), evaluate(classes, dims))
        return tuple(values), dims

    def _explain_keywords(self, kwargs):
        unknown = sorted(set(kwargs) - self._name_set)
        if unknown:
            raise ArgumentError(f"unknown input {unknown[0]!r}; this function takes {self.names}")
        missing = [n for n in self.names if n not in kwargs]
        raise ArgumentError(f"missing input {missing[0]!r}; this function takes {self.names}")


def _restore_signature(inputs, first, label_checks, requires, binds) -> Signature:
    sig = Signature.__new__(Signature)
    sig.inputs, sig._first, sig.label_checks = list(inputs), dict(first), list(label_checks)
    sig.requires, sig.binds = list(requires), list(binds)
    sig._prepare()
    return sig


def _fast_binder_source(sig: Signature, tail=None, name="fast_bind", keywords=False) -> str:
    """Python source of a binder that accepts only values already in final form.

    It returns ``(values, dims)``, or None for a call it does not take (then ``bind``
    converts or explains).  With ``tail`` (lines of code, indented, reading the values
    ``a0, a1, ...``), those lines replace the final ``return``: ``compile.py`` appends the
    kernel call and the packing of its results, so that one generated function does a
    whole call (None still meaning "take the slow path").  With ``keywords``, the function
    is a method taking the inputs as keyword-only parameters, and a call it does not take
    goes to ``_slow(self, args, extra, given)`` instead of returning None.

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
        n0 = a0.shape[0]
        if a0.shape[1] != 3: return None
        if a1.__class__ is not ndarray or a1.dtype is not DTYPES['int64'] or a1.ndim != 1 or not a1.flags.c_contiguous: return None
        if a1.shape[0] != n0: return None
        if a1.size and (a1.min() < 0 or a1.max() >= 3): return None
        return (a0, a1), {'N': n0}
    <BLANKLINE>
    """
    # variables are numbered, never made from a user's names (Python would read the
    # look-alike names "ℕ" and "N" as one identifier)
    args = [f"a{k}" for k in range(len(sig.inputs))]
    if keywords:  # the names as keyword-only parameters (see fast_caller)
        params = "".join(f"{n.name}=_MISSING, " for n in sig.inputs)
        miss = f"return _slow(self, args, extra, ({''.join(n.name + ', ' for n in sig.inputs)}))"
        lines = [f"def {name}(self, *args, {params}**extra):", f"    if args or extra: {miss}"]
        lines += [f"    {a} = {node.name}" for a, node in zip(args, sig.inputs)]
    else:
        lines = [f"def {name}(kw):", f"    if len(kw) != {len(sig.inputs)}: return None"]
        if args:
            lines.append("    try:")
            lines += [f"        {a} = kw[{node.name!r}]" for a, node in zip(args, sig.inputs)]
            lines.append("    except KeyError: return None")
    dims: dict[str, str] = {}

    def size(d):
        if isinstance(d, DimExpr):
            return d.code(dims.__getitem__)
        return dims[d] if isinstance(d, str) else str(d)

    for step in sig.plan:
        kind, k = step[0], step[1]
        a = args[k] if k is not None else None
        node = sig.inputs[k] if k is not None else None
        if kind == "scalar":
            kinds = {"float64": "float", "int64": "int", "bool": "bool", "float32": "None"}
            # (float32 scalars are never final: bind makes them np.float32)
            lines.append(f"    if {a}.__class__ is not {kinds[node.dtype]}: return None")
            if node.dtype == "int64":  # a Python int may not fit
                lines.append(
                    f"    if not -9223372036854775808 <= {a} <= 9223372036854775807: return None"
                )
        elif kind == "array":
            lines.append(
                f"    if {a}.__class__ is not ndarray or {a}.dtype is not DTYPES[{node.dtype!r}] "
                f"or {a}.ndim != {node.ndim} or not {a}.flags.c_contiguous: return None"
            )
        elif kind in ("fixed", "expr", "same"):
            lines.append(f"    if {a}.shape[{step[2]}] != {size(step[3])}: return None")
        elif kind == "bind":
            dims[step[3]] = f"n{len(dims)}"
            lines.append(f"    {dims[step[3]]} = {a}.shape[{step[2]}]")
        elif kind == "at_least":
            lines.append(f"    if {size(step[2])} < {step[3]}: return None")
        elif kind == "equals":
            lines.append(f"    if {size(step[2])} != {step[3]}: return None")
        elif k is not None:  # labels in an input (constants: bind checks them)
            bound = size(step[3])
            if node.shape:
                lines.append(
                    f"    if {a}.size and ({a}.min() < 0 or {a}.max() >= {bound}): return None"
                )
            else:
                lines.append(f"    if not 0 <= {a} < {bound}: return None")
    if keywords:  # a value a check refuses (or a missing one, _MISSING): the full path
        lines = [line.replace("return None", miss) for line in lines]
    if tail is not None:
        return "\n".join(lines + list(tail)) + "\n"
    dim_items = ", ".join(f"{d!r}: {v}" for d, v in dims.items())
    values = f"({args[0]},)" if len(args) == 1 else f"({', '.join(args)})"
    lines.append(f"    return {values}, {{{dim_items}}}")
    return "\n".join(lines) + "\n"


_MISSING = object()  # an input not given (the keyword parameters' default)


def _keywords_ok(sig: Signature) -> bool:
    """Whether every input name can be a parameter name: ASCII (Python folds look-alike
    identifiers: "ℕ" is "N"), no keyword, no clash with the generated code's names."""
    return bool(sig.inputs) and all(
        n.name.isascii() and n.name.isidentifier() and not keyword.iskeyword(n.name)
        and not n.name.startswith("_") and n.name not in _TAKEN
        and not hasattr(builtins, n.name) and re.fullmatch(r"[aon]\d+", n.name) is None
        for n in sig.inputs
    )


# the other names the generated code uses (a0, o0, n0 ... and builtins are refused too)
_TAKEN = frozenset({"self", "args", "extra", "r", "ndarray", "DTYPES", "math"})


def fast_caller(sig: Signature, tail: list[str], namespace: dict, slow=None):
    """A generated function doing a call: the checks of ``fast_bind``, then ``tail``
    (see :func:`_fast_binder_source`), with the names of ``namespace`` available to it.

    With ``slow`` given and input names that can be parameters (:func:`_keywords_ok`), it
    is ``__call__(self, *args, x=..., **extra)`` for a per-function class: Python then
    hands the keywords over as parameters, without the dict that ``**inputs`` builds, which
    on a scalar function is a good part of the call; a call it does not take goes to
    ``slow(self, args, extra, given)`` (``given``: the keyword values, ``_MISSING`` where
    absent).  Else it is ``fast_call(kw)``, returning None for such a call.  Returns
    ``(function, is_method)``.
    """
    keywords = slow is not None and _keywords_ok(sig)
    namespace = dict(namespace, ndarray=np.ndarray, DTYPES={d: np.dtype(d) for d in _KINDS})
    namespace.update(math=math, _MISSING=_MISSING, _slow=slow)  # math: expression dims
    name = "__call__" if keywords else "fast_call"
    source = _fast_binder_source(sig, tail, name=name, keywords=keywords)
    return pycode.function(source, f"<symgrad {name}>", name, namespace), keywords


def _plan(sig: Signature) -> list[tuple]:
    """The checks of a call, in order: the one description both binders follow.

    Steps (``k`` is the input's position in ``sig.inputs``):
    ``("scalar", k)``, ``("array", k)`` (the value and its number of dims),
    ``("fixed", k, axis, size)``, ``("bind", k, axis, name)`` (the first input with a named
    dim gives its size), ``("same", k, axis, name)`` (later ones must agree),
    ``("expr", k, axis, dim)`` (expression dims, once every name has its size),
    ``("equals", None, dim, size)`` (a dim the graph fixed), ``("at_least", None, dim,
    minimum, reason)`` and ``("labels", k or None, source, classes)``.
    """
    plan, seen, exprs = [], set(), []
    for k, node in enumerate(sig.inputs):
        if not node.shape:
            plan.append(("scalar", k))
            continue
        plan.append(("array", k))
        for axis, d in enumerate(node.shape):
            if isinstance(d, int):
                plan.append(("fixed", k, axis, d))
            elif isinstance(d, DimExpr):
                exprs.append(("expr", k, axis, d))
            elif d in seen:
                plan.append(("same", k, axis, d))
            else:
                seen.add(d)
                plan.append(("bind", k, axis, d))
    plan += exprs
    plan += [("equals", None, d, size) for d, size in sig.binds]
    plan += [("at_least", None, d, minimum, reason) for d, minimum, reason in sig.requires]
    for source, classes in sig.label_checks:
        k = sig.inputs.index(source) if source.op.leaf == "input" else None
        plan.append(("labels", k, source, classes))
    return plan


def _within(below: Dim, classes: Dim, need: dict) -> None:
    """Indices below ``below`` are labels for ``classes`` classes if below <= classes."""
    room = dim_of(as_expr(classes) - as_expr(below))
    reason = f"labels computed by argmax are below {below} and must be below {classes}"
    if isinstance(room, int):
        if room < 0:
            raise ShapeError(reason)
        return
    need.setdefault((room, 0), reason)


def _too_small(d, value, dims, reason) -> str:
    if isinstance(d, str):
        return f"dim {d} is {value}, but {reason}"
    sizes = ", ".join(f"{n} = {dims[n]}" for n in names_of(d))
    return f"dim {d} is {value} (for {sizes}), but {reason}"


def _label_source(labels: Node) -> Node:
    """The input or constant whose values the labels are.

    Only ``input`` and ``const`` nodes hold int64 values (and ``argmax``, which computes
    valid indices of its own axis, not of a class count); ops that only move values around
    (their ``moves_values`` fact: reshapes, transposes, slices) keep the set of values, so
    checking the source checks the labels.
    """
    while labels.op.moves_values:
        labels = labels.inputs[0]
    if labels.op.leaf not in ("input", "const") and labels.op.indices_below(labels) is None:
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
