"""The reference of docs/semantics.md: a graph run as written, node by node, in NumPy.

:func:`run` evaluates a graph without any pass (no simplification, fusion or sharing): each
node through the NumPy backend's meaning of its op (:data:`numpy_backend.EVAL`, the one
place where an op of :data:`symgrad.ir.op.OPS` is given a NumPy meaning), except that an
elementwise formula is not run as one printed expression but one SymPy function at a time
(``exp(x0) * x1`` is ``np.exp`` and then ``np.multiply``), each on the NumPy values of its
arguments, so every intermediate value of the graph is seen.  It is not a backend: the
compiler never uses it; ``tests/test_differential.py`` and ``tests/test_properties.py``
check the optimised graph on both backends against it.

Besides the outputs, a run reports whether every intermediate value was finite
(:attr:`Run.finite`).  The contract is exact only then: where an intermediate overflows to
inf or NaN, the listed relaxations (``0 * x -> 0``, ``x - x -> 0``, pruned zero adjoints)
may give the finite value the mathematics gives where the graph as written gives NaN.
A branch of a piecewise formula counts only where it is taken (``where(x > 0, log(x), 0)``
at ``x = -1`` computes ``log(-1)`` but does not use it; the node ``log(x)`` itself, if the
user wrote one, does count).

>>> import numpy as np, symgrad as sg
>>> x, z = sg.tensor("x", (2,)), sg.tensor("z", ())
>>> r = run([sg.exp(sg.exp(x)) * z], ["x", "z"], (np.array([1.0, 800.0]), 0.0), {})
>>> r.values[0].tolist(), r.finite
([0.0, nan], False)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy as sp

from ..ir import toposort
from ..ops.core import EW, SUM
from ..ops.linalg import MATMUL
from .numpy_backend import EVAL, Call, ew_function, operands

# the ops that add (another order of the additions rounds differently: see Run.scale)
ADDING = (SUM, MATMUL)


class Run(NamedTuple):
    """The result of :func:`run`.

    ``values``: one array per output.  ``finite``: every intermediate value (inputs
    included, constants not) was finite where it was used.  ``first``: the first node (in evaluation
    order) with a non-finite value, as text, or ``None``.  ``scale``: the largest finite
    magnitude that an addition, a sum or a product of matrices met (the size of a rounding
    difference that cancellation can leave when the optimiser adds in another order).
    """

    values: list
    finite: bool
    first: str | None
    scale: float


def run(outputs, names, values, dims) -> Run:
    """Evaluate ``outputs`` as written for input ``values`` bound to ``names`` (in that
    order, as :meth:`Signature.bind` returns them) and named dim sizes ``dims``."""
    context = Call(dict(zip(names, values)), dims)
    env: dict = {}
    first, scale = None, [0.0]
    with np.errstate(all="ignore"):  # IEEE results are what is being looked at
        for node in toposort(outputs):
            args = [env[i] for i in node.inputs]
            if node.op is EW:
                value, bad = _formula(node, args, scale)
            else:
                value = np.asarray(EVAL[node.op](node, args, context))
                if node.op in ADDING:
                    scale[0] = max(scale[0], *(_magnitude(a) for a in args))
                # an infinite constant (softmax's -inf guard) is no overflow; what is
                # computed from it is looked at
                bad = node.op.leaf != "const" and _nonfinite(value).any()
            env[node] = value
            if bad and first is None:
                first = f"{node.op} {node.shape} of {[str(i.op) for i in node.inputs]}"
    return Run([env[o] for o in outputs], first is None, first, min(scale[0], 1e300))


def _nonfinite(value) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind != "f":
        return np.zeros(value.shape, bool)
    return ~np.isfinite(value)


def _magnitude(value) -> float:
    value = np.asarray(value)
    if value.dtype.kind != "f" or value.size == 0:
        return 0.0
    finite = np.abs(value[np.isfinite(value)])
    return float(finite.max()) if finite.size else 0.0


def _formula(node, args, scale):
    """The value of an elementwise node, one SymPy function at a time, and whether an
    intermediate value it used was not finite."""
    args = operands(node, args)
    symbols = {sp.Symbol(f"x{i}", real=True): a for i, a in enumerate(args)}
    bad = {  # an infinite constant read by a formula (softmax's -inf guard) is no overflow
        s: _nonfinite(a) if node.inputs[i].op.leaf != "const" else np.zeros((), bool)
        for i, (s, a) in enumerate(symbols.items())
    }
    value, bad = _walk(node.attr("expr"), symbols, scale, bad)
    value = np.asarray(value, dtype=node.dtype)  # the node's dtype: 1e300 as float32 is inf
    bad = np.any(bad) or _nonfinite(value).any()
    return np.broadcast_to(value, _shape(node, args, value)), bool(bad)


def _shape(node, args, value):
    return np.broadcast_shapes(value.shape, *(np.shape(a) for a in args))


def _walk(expr, symbols, scale, known):
    """``(value, bad)`` of a formula: ``bad`` marks the elements that used a non-finite
    intermediate value (``known``: of each input symbol)."""
    if expr in symbols:
        return symbols[expr], known[expr]
    if not _reads(expr, symbols):  # a constant: a weak Python number, as in printed code
        value = ew_function(expr, 0)()
        value = bool(value) if isinstance(value, (bool, np.bool_)) else float(value)
        return value, np.zeros((), bool)
    if isinstance(expr, sp.Piecewise):
        return _piecewise(expr, symbols, scale, known)
    # one function on values: its arguments become symbols (constants stay in the text)
    parts, stand_ins, bad = [], {}, np.zeros((), bool)
    for arg in expr.args:
        if not _reads(arg, symbols):
            # a number stays in the text; a constant expression (sqrt(2)) becomes its value
            # as a Python float, weak as a literal: sqrt(2) * x32 is float32
            atom = arg.is_Number or arg.is_Symbol or _boolean(arg)  # (a Const is a Symbol)
            if atom:
                parts.append(arg)
                continue
            value = _walk(arg, symbols, scale, known)[0]
            if np.isfinite(value):
                parts.append(sp.Float(value, 53))
                continue
            # NaN (log(-1)) cannot be a SymPy literal (printing a product compares its
            # coefficient with 0): an argument of its own, a Python float, weak all the same
            value, arg_bad = float(value), np.zeros((), bool)
        else:
            value, arg_bad = _walk(arg, symbols, scale, known)
        bad = bad | arg_bad
        name = sp.Symbol(f"x{len(stand_ins)}", real=True)
        if isinstance(value, np.ndarray) and value.dtype == bool:
            name = sp.Symbol(f"x{len(stand_ins)}")
        stand_ins[name] = value
        parts.append(name)
    if isinstance(expr, sp.Add):
        scale[0] = max(scale[0], *(_magnitude(v) for v in stand_ins.values()))
    head = expr.func(*parts, evaluate=False) if _evaluates(expr) else expr.func(*parts)
    value = np.asarray(ew_function(head, len(stand_ins))(*stand_ins.values()))
    return value, bad | _nonfinite(value)


def _reads(expr, symbols) -> bool:
    """Whether ``expr`` reads an input (a ``Const`` atom is a symbol that does not)."""
    return any(s in symbols for s in expr.free_symbols)


def _boolean(expr) -> bool:
    return isinstance(expr, sp.logic.boolalg.Boolean)


def _evaluates(expr) -> bool:
    """Whether rebuilding ``expr`` from new arguments could simplify it (arithmetic)."""
    return isinstance(expr, (sp.Add, sp.Mul, sp.Pow))


def _piecewise(expr, symbols, scale, known):
    """The first branch whose condition holds (a condition with NaN is False); NaN where
    none does.  A branch's bad elements count only where the branch is taken."""
    value, bad, taken = np.nan, np.zeros((), bool), np.zeros((), bool)
    chosen = []
    for branch, cond in expr.args:
        c, c_bad = _walk(cond, symbols, scale, known)
        c = np.asarray(c, bool) & ~taken
        v, v_bad = _walk(branch, symbols, scale, known)
        chosen.append((c, v, v_bad))
        bad = bad | (c_bad & ~taken)
        taken = taken | c
    for c, v, v_bad in reversed(chosen):
        value = np.where(c, v, value)
        bad = bad | (c & v_bad)
    return value, bad
