"""How an elementwise formula prints as Numba source: one expression of scalar locals.

:class:`ScalarPrinter` is SymPy's Python printer with symgrad's functions (``ops.elementwise``:
``Exp``, ``Div``, ``Power``, ...), constants printed with all their bits, and selects as
conditional expressions.  Transcendental functions call the branch-free versions of
``vmath.py`` (``vm.exp``), which LLVM vectorises inside the loops; with ``vector_math=False``
they call libm (``math.exp``) instead, one element at a time.  Which one is part of the
source, hence of the cache key.  Small integer powers print as products, the ones Numba
computes for ``x ** n`` (bit-identical, and Numba's ``**`` overload is compiled again in
every process).  :class:`Float32Printer` keeps float32 formulas in float32.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from ..ops.elementwise import Const, Div, Exp, Paren
from ..ops.numeric import piecewise_text, sympy_float
from . import vmath

NP_DTYPES = {
    "float64": "np.float64",
    "float32": "np.float32",
    "int64": "np.int64",
    "bool": "np.bool_",
}


# The functions of a formula (``ops.elementwise``: our opaque ones and SymPy's tanh) and
# the C function each computes: a kernel calls ``math.<name>`` (libm), or with vector math
# the ``vm`` version of :data:`vmath.FUNCTIONS` where one exists.
CALLS = {
    "Exp": "exp",
    "Log": "log",
    "Log1p": "log1p",
    "Expm1": "expm1",
    "Sqrt": "sqrt",
    "Erf": "erf",
    "tanh": "tanh",
}


class ScalarPrinter(PythonCodePrinter):
    """SymPy -> one scalar Python expression that Numba compiles (``math`` functions, or
    with ``vector_math`` the ``vm`` functions of :data:`vmath.FUNCTIONS` where one exists).

    Numba's ``math`` functions follow C (``math.log(-1.0)`` is nan, ``math.exp(1000.0)``
    inf) and the kernels use ``error_model="numpy"`` (``1.0 / 0.0`` is inf), so a formula
    computes what NumPy computes for it (docs/semantics.md).
    """

    _kf = dict(PythonCodePrinter._kf, log1p="math.log1p", expm1="math.expm1", erf="math.erf")
    VECTOR_COLUMN = 0  # the float64 versions of vmath.FUNCTIONS

    def __init__(self, settings=None, vector_math=False):
        super().__init__(settings)
        self.calls = {name: f"math.{c}" for name, c in CALLS.items()}
        if vector_math:
            for name, versions in vmath.FUNCTIONS.items():
                self.known_functions[name] = f"vm.{versions[self.VECTOR_COLUMN]}"
            for name, c in CALLS.items():
                if c in vmath.FUNCTIONS:
                    self.calls[name] = f"vm.{vmath.FUNCTIONS[c][self.VECTOR_COLUMN]}"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in self.calls:
            return f"{self.calls[name]}({', '.join(self._print(a) for a in expr.args)})"
        return super()._print_Function(expr)

    _print_Exp = _print_Log = _print_Log1p = _print_Expm1 = _print_Function
    _print_Sqrt = _print_Erf = _print_tanh = _print_Function

    def _number(self, text: str) -> str:
        return text

    def _print_Float(self, expr):
        return self._number(repr(float(expr)))

    def _print_Const(self, expr):
        return self._number(repr(expr.value))

    def _print_Div(self, expr):
        return f"(({self._print(expr.args[0])}) / ({self._print(expr.args[1])}))"

    def _print_Power(self, expr):
        # np.power: IEEE pow (0.0 ** -1.0 is inf; Python's ** raises ZeroDivisionError)
        base, exponent = (self._print(a) for a in expr.args)
        return f"np.power({base}, {exponent})"

    def _print_Pow(self, expr, rational=False):
        if _small_power(expr):
            return self._product(expr)
        return super()._print_Pow(expr, rational)

    def _product(self, expr) -> str:
        """``x**k`` (k in 2..:data:`PRODUCT_POWERS`) as the products Numba computes for it:
        squaring ``x`` and multiplying in the bits of ``k`` (its ``static_power_impl``), so
        ``x**2`` is ``(x*x)`` and ``x**3`` is ``(x*(x*x))``, bit for bit.  Numba compiles
        its power function again in every process; a product costs nothing."""
        base, k = self.parenthesize(expr.base, PRECEDENCE["Pow"]), int(expr.exp)
        result = None
        while k:
            if k & 1:
                result = base if result is None else f"({result}*{base})"
            k >>= 1
            if k:
                base = f"({base}*{base})"
        return result

    def _print_Paren(self, expr):
        return f"({self._print(expr.args[0])})"

    def _print_DiracDelta(self, expr):
        # a distribution: its documented value is 0 almost everywhere (as in JAX)
        return self._number("0.0")

    def _print_sign(self, expr):
        a = self._print(expr.args[0])
        one, zero = self._number("1.0"), self._number("0.0")
        return f"({one} if {a} > 0 else (-{one} if {a} < 0 else {zero}))"

    # every value is real: the real part is the value, the imaginary part zero
    def _print_re(self, expr):
        return self._print(expr.args[0])

    def _print_im(self, expr):
        return self._number("0.0")

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_IsNaN(self, expr):
        a = self._print(expr.args[0])
        return f"({a} != {a})"

    def _print_And(self, expr):
        return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " or ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(not {self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        # nested conditional expressions: only the chosen branch is evaluated
        return piecewise_text(
            expr, self._print, lambda c, v, o: f"({v} if {c} else {o})", "math.nan"
        )

    def _print_Symbol(self, expr):
        return expr.name


# Integer powers up to this one are printed as products (ScalarPrinter._product).
PRODUCT_POWERS = 8


def _small_power(expr) -> bool:
    """Whether ``expr`` is printed as products: a small integer power of a variable or of
    arithmetic on variables (repeated in the text, computed once by LLVM), not of a call."""
    exp, base = expr.exp, expr.base
    return (
        exp.is_Integer
        and 2 <= exp <= PRODUCT_POWERS
        and bool(base.free_symbols)
        and not base.atoms(sp.Function, sp.Piecewise)
    )


class Float32Printer(ScalarPrinter):
    """Numbers as float32 literals, so a float32 formula stays float32 in Numba (an int or
    float64 literal would widen every operation it touches to float64)."""

    VECTOR_COLUMN = 1  # the float32 versions of vmath.FUNCTIONS

    def _number(self, text: str) -> str:
        return f"np.float32({text})"

    def _print_Integer(self, expr):
        return f"np.float32({int(expr)})"

    def _print_Rational(self, expr):
        return f"(np.float32({expr.p}) / np.float32({expr.q}))"

    def _print_Pow(self, expr, rational=False):
        value = sympy_float(expr)  # a constant of a formula (sqrt(2)): rounded once
        if value is not None:
            return self._number(repr(value))
        if _small_power(expr):  # products of float32 values stay float32
            return self._product(expr)
        base, exp = self.parenthesize(expr.base, 100), expr.exp
        if exp.is_Integer and exp > 0:  # an integer power of a float32 stays float32
            return f"{base}**{int(exp)}"
        return f"np.power({self._print(expr.base)}, {self._print(exp)})"


class sigmoid(sp.Function):  # noqa: N801 (printed by name: vmath.FUNCTIONS["sigmoid"])
    """1 / (1 + exp(-u)) as one call, for printing only: :func:`vector_sigmoids` puts it in
    a formula that calls vmath, whose sigmoid is within 2 ulp where the formula as
    written, rounding 1 + exp(-u), loses 2.3 (and underflows to 0 below u = -709)."""

    nargs = 1


def _is_one(e) -> bool:
    return e == sp.S.One or isinstance(e, Const) and e.value == 1.0


def _sigmoid_exp(e):
    """The Exp(v) of a formula 1 / (1 + Exp(v)) (``Div``, or SymPy's power -1), else None."""
    if isinstance(e, Div) and _is_one(e.args[0]):
        den = e.args[1]
    elif e.is_Pow and e.exp == -1:
        den = e.base
    else:
        return None
    den = den.args[0] if isinstance(den, Paren) else den
    if not (den.is_Add and len(den.args) == 2 and any(_is_one(a) for a in den.args)):
        return None
    powers = [a for a in den.args if isinstance(a, (Exp, sp.exp))]
    return powers[0] if powers else None


def vector_sigmoids(expr):
    """``expr`` with every 1 / (1 + exp(v)) written sigmoid(-v)."""
    return expr.replace(
        lambda e: _sigmoid_exp(e) is not None, lambda e: sigmoid(-_sigmoid_exp(e).args[0])
    )


def formula_printer(dtype: str, vector_math: bool):
    """The printer of formulas computed in ``dtype``."""
    cls = Float32Printer if dtype == "float32" else ScalarPrinter
    return cls({"fully_qualified_modules": True, "standard": "python3"}, vector_math)

