"""Formulas as NumPy code: the interpreter backend's printer, and constant folding.

A formula folds to a constant (``ops.elementwise.ew``) by running this same NumPy code on
scalars of the node's dtype, so a folded constant is what NumPy computes for it: it
overflows to inf, underflows to 0 or a subnormal and keeps signed zeros exactly as the
unfolded formula would at run time.  SymPy's own arithmetic (exact rationals, floats with
an unbounded exponent) never decides a value.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from .elementwise import Erf


class NumpyPrinter(NumPyPrinter):
    """SymPy -> NumPy expression text.

    ``literals`` says how numbers are written: ``"weak"`` as Python numbers (they take the
    dtype of the arrays they meet, NEP 50: the interpreter backend), or a dtype name
    (``"float32"``): typed NumPy scalars, for folding constants without any array.
    """

    def __init__(self, literals: str = "weak"):
        super().__init__({"fully_qualified_modules": True})
        self.literals = literals

    def _literal(self, text: str) -> str:
        return text if self.literals == "weak" else f"numpy.{self.literals}({text})"

    def _print_Float(self, expr):
        return self._literal(repr(float(expr)))

    def _print_Integer(self, expr):
        if self.literals == "weak" or self.literals == "int64":
            return self._literal(str(int(expr)))
        return self._literal(f"{int(expr)}.0" if abs(int(expr)) < 2**53 else repr(float(expr)))

    def _print_Rational(self, expr):
        if self.literals == "weak":  # a Python float: weak, so x32 / 2 stays float32
            return repr(int(expr.p) / int(expr.q))
        return f"numpy.divide({self._print(expr.p)}, {self._print(expr.q)})"

    def _print_Const(self, expr):
        return self._literal(repr(expr.value))

    # the functions of ops.elementwise: one NumPy call each
    def _print_Exp(self, expr):
        return f"numpy.exp({self._print(expr.args[0])})"

    def _print_Log(self, expr):
        return f"numpy.log({self._print(expr.args[0])})"

    def _print_Log1p(self, expr):
        return f"numpy.log1p({self._print(expr.args[0])})"

    def _print_Expm1(self, expr):
        return f"numpy.expm1({self._print(expr.args[0])})"

    def _print_Sqrt(self, expr):
        return f"numpy.sqrt({self._print(expr.args[0])})"

    def _print_Erf(self, expr):
        return f"erf({self._print(expr.args[0])})"

    _print_erf = _print_Erf

    def _print_Div(self, expr):
        return f"numpy.divide({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Power(self, expr):
        return f"power({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_Paren(self, expr):
        return f"({self._print(expr.args[0])})"

    def _print_IsNaN(self, expr):
        return f"numpy.isnan({self._print(expr.args[0])})"

    def _print_DiracDelta(self, expr):
        # a distribution: its documented value is 0 almost everywhere (as in JAX)
        return self._print(sp.Integer(0))

    def _print_Pow(self, expr, rational=False):
        value = sympy_float(expr)  # a constant of a formula (sqrt(2)): a Python float
        if value is not None:
            return self._literal(repr(value))
        # formulas hold only positive integer powers (others are Power): NumPy's power
        return f"numpy.power({self._print(expr.base)}, {self._print(expr.exp)})"

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
        return piecewise_text(
            expr, self._print, lambda c, v, o: f"numpy.where({c}, {v}, {o})", "numpy.nan"
        )


def power(x, y):
    """``np.power(x, y)`` with ``pow``'s values where ``y`` is 0.5 and ``x`` -inf or -0.0.

    ``np.power`` answers an exponent that is one number equal to 0.5 with ``sqrt``, which
    differs from C's ``pow`` (a Numba kernel's) there: NaN, not inf, and -0.0, not 0.0;
    with an array of exponents it calls ``pow``.  (Its shortcuts for 2 and -1, ``x * x``
    and ``1 / x``, differ from ``pow`` by an ulp at most.)"""
    out = np.power(x, y)
    half = np.equal(y, 0.5)
    if not np.any(half):
        return out
    return np.where(half & ((x == 0) | (x == -np.inf)), np.abs(x), out)[()]


def sympy_float(expr) -> float | None:
    """A constant formula's value as SymPy computes it (``sqrt(2)``), or None: it reads an
    input, or it is over our own functions, which SymPy does not evaluate (``(1 - Div(2,
    2))**2``, folded from a variance) and the printed code computes."""
    if expr.free_symbols:
        return None
    try:
        return float(expr)
    except TypeError:
        return None


def piecewise_text(expr: sp.Piecewise, show, choose, nan: str) -> str:
    """A ``Piecewise`` written as nested two-way choices, the first branch outermost:
    ``choose(condition, value, otherwise)`` on the texts ``show`` gives. Without a ``True``
    branch the innermost ``otherwise`` is ``nan`` (SymPy leaves it undefined). Every printer
    of formulas (NumPy, Numba, the formulas shown to people) writes piecewise values so."""
    *branches, (last, cond) = expr.args
    text = show(last) if cond == sp.true else choose(show(cond), show(last), nan)
    for value, c in reversed(branches):
        text = choose(show(c), show(value), text)
    return text


@cache
def function(expr, n_inputs: int, literals: str = "weak"):
    """A NumPy function of ``x0..x{n-1}`` computing ``expr`` elementwise."""
    args = ", ".join(f"x{i}" for i in range(n_inputs))
    body = NumpyPrinter(literals).doprint(expr)
    source = f"def f({args}):\n    return {body}\n"
    namespace = {"numpy": np, "power": power}
    if expr.has(Erf, sp.erf):  # NumPy has no erf; SciPy's costs 0.3 s to import, so only here
        from scipy.special import erf

        namespace["erf"] = erf
    # the file name is not the formula: str() of a long one costs as much as printing it
    exec(compile(source, "<symgrad ew>", "exec"), namespace)
    return namespace["f"]


def evaluate(expr, dtype: str, computes_in: str | None = None):
    """The value of a formula without inputs, computed by NumPy in ``computes_in`` (the
    operands' dtype; by default ``dtype``) and returned as a ``dtype`` scalar."""
    literals = computes_in or ("float64" if dtype == "bool" else dtype)
    with np.errstate(all="ignore"):
        value = function(expr, 0, literals)()
    return np.asarray(value).astype(dtype)[()]
