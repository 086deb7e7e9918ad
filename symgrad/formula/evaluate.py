"""A formula computed with NumPy, from the formula itself (not from the graph)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import GraphError
from .ops import (
    ArgmaxMask,
    Broadcast,
    Concatenated,
    FormulaOp,
    OneHot,
    Reshaped,
    Scattered,
    Sliced,
    Transposed,
    _dim,
    _Reduction,
)


def _evaluate(e, env, dims):
    """NumPy value of a formula; unknown functions are looked up by name in NumPy."""
    if e in env:
        return env[e]
    if isinstance(e, sp.Symbol) and e.name in dims:
        return dims[e.name]
    if e.is_number and not isinstance(e, sp.logic.boolalg.Boolean):
        return float(e) if e.is_finite else {sp.oo: np.inf, -sp.oo: -np.inf}.get(e, np.nan)
    if e in (sp.true, sp.false):
        return bool(e)
    if isinstance(
        e, (Reshaped, Broadcast, _Reduction, ArgmaxMask, Transposed, OneHot, Sliced, Scattered)
    ):
        attrs = [_attr_value(a, dims) for a in e.args[1:]]
        value = _evaluate(e.args[0], env, dims)
        if isinstance(e, Reshaped):
            return np.reshape(value, attrs[1:])
        if isinstance(e, Broadcast):
            return np.broadcast_to(value, attrs)
        return e.evaluate(value, *attrs)
    args = [_evaluate(a, env, dims) for a in e.args] if not isinstance(e, sp.Piecewise) else None
    if isinstance(e, Concatenated):
        return e.evaluate(int(e.args[0]), *args[1:])
    if isinstance(e, FormulaOp):
        return e.evaluate(*args)
    if e.is_Add:
        return sum(args[1:], start=args[0])
    if e.is_Mul:
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if e.is_Pow:
        return np.power(args[0], args[1])
    if isinstance(e, sp.Piecewise):
        *branches, (last, cond) = e.args
        out = _evaluate(last, env, dims) if cond == sp.true else np.nan
        for value, c in reversed(branches):
            out = np.where(_evaluate(c, env, dims), _evaluate(value, env, dims), out)
        return out
    if isinstance(e, sp.core.relational.Relational):
        return {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
            "==": np.equal,
            "!=": np.not_equal,
        }[e.rel_op](*args)
    name = type(e).__name__
    from scipy import special

    fn = {"Abs": np.abs, "erf": special.erf}.get(name) or getattr(np, name, None)
    if fn is None:
        raise GraphError(f"cannot evaluate the function {name!r} of a formula with NumPy")
    return fn(*args)


def _attr_value(a, dims):
    if a in (sp.true, sp.false):
        return bool(a)
    if a.is_Number:
        return int(a)
    return int(a.xreplace({_dim(k): v for k, v in dims.items()}))  # a name, or N - 1
