"""Elementwise formulas: one SymPy formula per function, derivatives from ``sympy.diff``.

An elementwise node is ``ew(expr; inputs)`` (built by :func:`symgrad.ops.core.ew`): ``expr``
is a SymPy expression over the scalar symbols ``x0, x1, ...`` standing for the inputs,
evaluated element by element with NumPy broadcasting.  Adding an elementwise function is
one row of :data:`FUNCTIONS` and a wrapper in ``api.py``; its derivative, its fusion with
neighbours and both backends' code come from the formula (docs/design.md, "Adding an op").
This module is pure SymPy: it builds no graph nodes, so everything else may import it.

Boolean values (comparisons) appear in formulas only as conditions of ``Piecewise``;
arithmetic on a boolean tensor reads it as 1.0 / 0.0.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.logic.boolalg import Boolean

from ..errors import ArgumentError
from ..ir import dtypes as dt


@cache
def sym(i: int) -> sp.Symbol:
    """The symbol standing for input ``i`` of an elementwise node."""
    return sp.Symbol(f"x{i}", real=True)


class IsNaN(sp.Function, Boolean):
    """True where the argument is NaN (SymPy would decide ``Ne(x, x)`` to be False).

    A boolean *atom* for SymPy's logic (like a relational), not a BooleanFunction: the
    logic routines (``to_nnf``) reject operators they do not know.
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        return sp.false if x.is_Number else None

    def _eval_as_set(self):
        # SymPy would reason over the reals, where nothing is NaN, and drop the condition
        raise NotImplementedError("IsNaN has no set over the reals")


def _piecewise_max(a, b):
    # Ties go to the first argument, as in max reductions: d/da max(a, a) = 1, d/db = 0.
    # NaN wins as in np.maximum: a NaN ``a`` takes the first branch, a NaN ``b`` the second.
    return sp.Piecewise((a, (a >= b) | IsNaN(a)), (b, True))


def _piecewise_min(a, b):
    return sp.Piecewise((a, (a <= b) | IsNaN(a)), (b, True))


# name -> formula over SymPy scalars.  Conventions at kinks are encoded by which branch
# owns the kink: relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha, abs'(0) = sign(0) = 0.
# Each piecewise formula lets NaN take a branch that propagates it (a comparison with NaN
# is False): relu(nan) is nan as np.maximum(nan, 0).
FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "log1p": log1p,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "tanh": sp.tanh,
    "sigmoid": lambda x: 1 / (1 + sp.exp(-x)),
    "relu": lambda x: sp.Piecewise((0, x <= 0), (x, True)),
    "leaky_relu": lambda x, alpha: sp.Piecewise((alpha * x, x <= 0), (x, True)),
    "elu": lambda x, alpha: sp.Piecewise((alpha * expm1(x), x <= 0), (x, True)),
    "gelu": lambda x: x / 2 * (1 + sp.erf(x / sp.sqrt(2))),
    "gelu_tanh": lambda x: (
        x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 10**6) * x**3)))
    ),
    # silu is x * sigmoid(x) as two nodes (see api.silu) so sigmoid's saved output is reused.
    # Softplus is written per sign so neither branch overflows: log1p(exp(-|x|)) + max(x, 0).
    "softplus": lambda x: sp.Piecewise(
        (log1p(sp.exp(x)), x <= 0), (x + log1p(sp.exp(-x)), True)
    ),
    "maximum": _piecewise_max,
    "minimum": _piecewise_min,
    "sin": sp.sin,
    "cos": sp.cos,
    "square": lambda x: x**2,
    # log(sigmoid(x)) = -softplus(-x), per sign so that neither branch overflows and the
    # derivative (sigmoid(-x)) stays finite for |x| up to 1e4 and beyond
    "log_sigmoid": lambda x: sp.Piecewise(
        (-log1p(sp.exp(-x)), x > 0), (x - log1p(sp.exp(x)), True)
    ),
    # clip'(x) = 1 for lo <= x <= hi, boundaries included (PyTorch's convention)
    "clip": lambda x, lo, hi: sp.Piecewise((lo, x < lo), (hi, x > hi), (x, True)),
}


def number(value) -> sp.Expr:
    """A Python or NumPy scalar as an exact SymPy number.

    Integers and short binary fractions (0.5, 0.25) become exact rationals, so that
    ``2 * (0.5 * x)`` simplifies to ``x``; other floats keep all 53 bits.
    """
    if isinstance(value, (bool, int, np.integer)):
        return sp.Integer(int(value))
    if not isinstance(value, (float, np.floating)):
        raise ArgumentError(f"expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ArgumentError(f"constant {value} is not finite")
    ratio = Fraction(value)
    if ratio.denominator <= 1 << 16 and abs(ratio.numerator) < 1 << 53:
        return sp.Rational(ratio.numerator, ratio.denominator)
    return sp.Float(value, precision=53)


def boolean_as_number(s: sp.Symbol) -> sp.Expr:
    """A boolean input read as a number: 1 where it holds, else 0."""
    return sp.Piecewise((1, s), (0, True))


def _is_boolean(expr) -> bool:
    return isinstance(expr, (sp.logic.boolalg.Boolean)) and not isinstance(expr, sp.Symbol)


def result_dtype(expr, inputs) -> str:
    if _is_boolean(expr):
        return "bool"
    if isinstance(expr, sp.Symbol) and len(inputs) == 1:
        return inputs[0].dtype
    return dt.result_float([i.dtype for i in inputs])


def undefined(expr) -> bool:
    """Whether a formula is undefined (SymPy's zoo, nan or oo from a division by zero)."""
    return expr.has(sp.zoo, sp.nan, sp.oo)


@cache
def _fit_in_output(expr, deriv):
    """``deriv`` written as a polynomial of degree <= 2 in ``y = expr``, or None.

    This is how the backward pass reuses forward values: sigmoid' becomes y*(1 - y),
    tanh' becomes 1 - y**2, exp' becomes y.  The polynomial is fitted at three points and
    accepted only if SymPy proves it equal to the derivative and it is cheaper.
    """
    x, y = sym(0), sp.Symbol("y", real=True)
    points = [sp.Rational(3, 10), sp.Rational(7, 10), sp.Rational(11, 10)]
    try:
        rows = [[1, expr.subs(x, t), expr.subs(x, t) ** 2] for t in points]
        rhs = [deriv.subs(x, t) for t in points]
        coeffs = sp.Matrix(rows).evalf(30).solve(sp.Matrix(rhs).evalf(30))
    except (ValueError, TypeError, ZeroDivisionError):  # includes a singular fit
        return None
    coeffs = [sp.nsimplify(c, tolerance=1e-20, rational=True) for c in coeffs]
    if any(sp.denom(c) > 100 for c in coeffs):
        return None
    poly = coeffs[0] + coeffs[1] * y + coeffs[2] * y**2
    if sp.count_ops(poly) >= sp.count_ops(deriv):
        return None
    if sp.simplify(deriv - poly.subs(y, expr)) != 0:
        return None
    return poly.subs(y, sym(0))


@cache
def partial(expr, i: int, n_inputs: int):
    """d expr / d x_i as ``(formula, uses_output)``.

    With ``uses_output`` the formula's ``x0`` is the node's own output (saved forward
    value) instead of its input.
    """
    deriv = sp.diff(expr, sym(i))
    if n_inputs == 1 and deriv.has(sym(0)) and not expr.has(sp.Piecewise):
        reused = _fit_in_output(expr, deriv)
        if reused is not None:
            return reused, True
    return deriv, False
