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


# --- functions that SymPy may not rewrite ------------------------------------------------
# SymPy's own log, sqrt, exp, 1/x and x**(1/2) come with identities of exact real or complex
# arithmetic that are wrong in floating point: exp(log(x)) -> x (nan at x = -1),
# x/x -> 1 (nan at 0), sqrt(x)**2 -> x, exp(a)*exp(-a) -> 1 (nan when exp(a) overflows).
# The classes below are opaque to SymPy's automatic evaluation (``eval`` returns None, so
# even ``Log(2)`` stays as written and is folded by NumPy, see ``ew``) but keep
# ``sympy.diff`` through ``fdiff``.  A formula holds SymPy's ``Pow`` only with a positive
# integer exponent; every other power is a ``Power``.  See docs/semantics.md.


class _Opaque(sp.Function):
    is_real = True

    @classmethod
    def eval(cls, *args):
        return None


class Exp(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return Exp(self.args[0])


class Log(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return Recip(self.args[0])


class Log1p(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return Recip(self.args[0] + 1)


class Expm1(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return Exp(self.args[0])


class Sqrt(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return Recip(2 * Sqrt(self.args[0]))


class Erf(_Opaque):
    nargs = 1

    def fdiff(self, argindex=1):
        return 2 / sp.sqrt(sp.pi) * Exp(-(self.args[0] ** 2))


class Div(_Opaque):
    """a / b, one IEEE division (never cancelled against ``b``, never ``a * (1/b)``, which
    differs: 5e-324 / 5e-324 is 1, 5e-324 * (1 / 5e-324) is inf)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        return a if b == 1 else None  # exact

    def fdiff(self, argindex=1):
        a, b = self.args
        return Div(1, b) if argindex == 1 else -Div(Div(a, b), b)


def Recip(x):  # noqa: N802 - reads as the function it builds
    """1 / x as a formula."""
    return Div(sp.Integer(1), x)


class Power(_Opaque):
    """x**y for an exponent that is not a positive integer constant (NumPy's power)."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        # x**0 is 1 and x**1 is x for every x (IEEE pow(nan, 0) = 1); a positive integer
        # power is SymPy's Pow (repeated multiplication is exact up to rounding)
        if y.is_Integer and y >= 0:
            return x**y
        return None

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return y * power(x, y - 1)
        return Power(x, y) * Log(x)


def power(x, y):
    """``x**y`` as a formula: SymPy's Pow for positive integer constants, else ``Power``."""
    return Power(sp.sympify(x), sp.sympify(y))


class Paren(_Opaque):
    """Grouping: the value of its argument, computed on its own before it is used.

    Fusion splices a producer's formula into its user's as ``Paren(formula)``, so SymPy
    cannot reassociate or fold across the two ops (``(x * 1e-200) * 1e-200`` is not
    ``x * 1e-400``, ``(a + b) - b`` is not ``a``).  Only floating-point commutativity, which
    is exact, is left to SymPy.  The chain rule (``g * Paren(derivative)``), the sum of an
    adjoint's parts (in pairs) and the one-hot sum rewrite group so too: a flat sum or
    product of three or more terms is computed in an order that follows the inputs'
    numbering and the backend's names (docs/semantics.md, "Reassociation across ops").
    """

    nargs = 1

    @classmethod
    def eval(cls, x):
        # an atom, a call or a group needs no grouping
        if x.is_Atom or isinstance(x, (sp.Function, Paren)) and not isinstance(x, sp.Piecewise):
            return x
        # a product's sign comes out (exact: rounding is symmetric), so -(-y) can cancel
        if x.is_Mul and x.could_extract_minus_sign():
            return -cls(-x)
        return None

    def fdiff(self, argindex=1):
        return sp.Integer(1)


def spliced(expr):
    """A producer's formula as it goes into its user's (fusion, the one-hot sum rewrite):
    computed on its own (:class:`Paren`); a condition as it is (logic has no rounding to
    keep apart)."""
    return expr if isinstance(expr, Boolean) else Paren(expr)


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


class Const(sp.Symbol):
    """A floating-point constant inside a formula, kept as an atom.

    SymPy multiplies and adds its numbers exactly (and with an unbounded exponent), so a
    float folded into a formula as a SymPy ``Float`` would combine with its neighbours in
    arithmetic that is not the node's.  A ``Const`` combines with nothing; its value is
    already rounded to the dtype of the node it was folded into.
    """

    def __new__(cls, value: float):
        obj = super().__new__(cls, f"c[{float(value)!r}]", real=True)
        return obj

    @property
    def value(self) -> float:
        return float(self.name[2:-1])

    def _sympystr(self, printer):
        return repr(self.value)

    def __getnewargs_ex__(self):  # pickles as its value (a Symbol pickles its assumptions)
        return (self.value,), {}


def relation(kind, a, b):
    """``kind(a, b)`` (``sp.StrictLessThan``, ..., ``sp.Eq``, ``sp.Ne``), as written where an
    operand has a symbol: formulas are built over distinct real symbols (``x0 <= 0``,
    ``x0 >= x1``), about which SymPy decides nothing, and asking its assumptions cost
    milliseconds the first time in a process.  Between numbers SymPy decides."""
    a, b = sp.sympify(a), sp.sympify(b)
    return kind(a, b, evaluate=not (a.free_symbols or b.free_symbols))


def _le(a, b):
    return relation(sp.LessThan, a, b)


def _piecewise_max(a, b):
    # Ties go to the first argument, as in max reductions: d/da max(a, a) = 1, d/db = 0.
    # NaN wins as in np.maximum: a NaN ``a`` takes the first branch, a NaN ``b`` the second.
    return sp.Piecewise((a, relation(sp.GreaterThan, a, b) | IsNaN(a)), (b, True))


def _piecewise_min(a, b):
    return sp.Piecewise((a, _le(a, b) | IsNaN(a)), (b, True))


# name -> formula over SymPy scalars.  Conventions at kinks are encoded by which branch
# owns the kink: relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha, abs'(0) = sign(0) = 0.
# Each piecewise formula lets NaN take a branch that propagates it (a comparison with NaN
# is False): relu(nan) is nan as np.maximum(nan, 0).
FUNCTIONS = {
    "exp": Exp,
    "log": Log,
    "log1p": Log1p,
    "sqrt": Sqrt,
    "abs": sp.Abs,
    "tanh": sp.tanh,
    "sigmoid": lambda x: Recip(1 + Exp(-x)),
    "relu": lambda x: sp.Piecewise((0, _le(x, 0)), (x, True)),
    "leaky_relu": lambda x, alpha: sp.Piecewise((alpha * x, _le(x, 0)), (x, True)),
    "elu": lambda x, alpha: sp.Piecewise((alpha * Expm1(x), _le(x, 0)), (x, True)),
    "gelu": lambda x: x / 2 * (1 + Erf(x / sp.sqrt(2))),
    "gelu_tanh": lambda x: (
        x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 10**6) * x**3)))
    ),
    # silu is x * sigmoid(x) as two nodes (see api.silu) so sigmoid's saved output is reused.
    # Softplus is written per sign so neither branch overflows: log1p(exp(-|x|)) + max(x, 0).
    "softplus": lambda x: sp.Piecewise((Log1p(Exp(x)), _le(x, 0)), (x + Log1p(Exp(-x)), True)),
    "maximum": _piecewise_max,
    "minimum": _piecewise_min,
    "sin": sp.sin,
    "cos": sp.cos,
    "square": lambda x: x**2,
    # log(sigmoid(x)) = -softplus(-x), per sign so that neither branch overflows and the
    # derivative (sigmoid(-x)) stays finite for |x| up to 1e4 and beyond
    "log_sigmoid": lambda x: sp.Piecewise(
        (-Log1p(Exp(-x)), relation(sp.StrictGreaterThan, x, 0)), (x - Log1p(Exp(x)), True)
    ),
    # clip'(x) = 1 for lo <= x <= hi, boundaries included (PyTorch's convention)
    "clip": lambda x, lo, hi: sp.Piecewise(
        (lo, relation(sp.StrictLessThan, x, lo)), (hi, relation(sp.StrictGreaterThan, x, hi)),
        (x, True),
    ),
}


def to_native(expr, nan_checks: bool = False):
    """``expr`` with SymPy's own functions instead of ours (for display and for proofs):
    ``Div(a, b)`` is ``a/b``, ``Exp`` is ``exp``, ``Paren`` goes, a ``Const`` is its exact
    value (a ``Rational`` for a short binary fraction: 0.5 reads 1/2, else a ``Float``).
    ``IsNaN`` is False (SymPy's reals hold no NaN) unless ``nan_checks`` keeps it."""
    native = (
        expr.replace(Paren, lambda a: a)
        .replace(Div, lambda a, b: a / b)
        .replace(Power, lambda a, b: a**b)
        .xreplace({c: _exact(c.value) for c in expr.atoms(Const)})
        .replace(Exp, sp.exp)
        .replace(Log, sp.log)
        .replace(Sqrt, sp.sqrt)
        .replace(Erf, sp.erf)
        .replace(Log1p, log1p)
        .replace(Expm1, expm1)
    )
    return native if nan_checks else native.replace(IsNaN, lambda a: sp.false)


def _exact(value: float) -> sp.Expr:
    ratio = Fraction(value)
    if ratio.denominator <= 1 << 16 and abs(ratio.numerator) < 1 << 53:
        return sp.Rational(ratio.numerator, ratio.denominator)
    return sp.Float(value, precision=53)


def number(value) -> sp.Expr:
    """A Python or NumPy scalar as a SymPy number: an ``Integer`` for an integral value
    below 2**53 in magnitude (exact in both float dtypes' arithmetic up to rounding),
    else a ``Float`` with all 53 bits."""
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return sp.Integer(int(value))
    if not isinstance(value, (float, np.floating)):
        raise ArgumentError(f"expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ArgumentError(f"constant {value} is not finite")
    negative_zero = value == 0 and math.copysign(1.0, value) < 0
    if value.is_integer() and abs(value) < 2**53 and not negative_zero:
        return sp.Integer(int(value))
    return sp.Float(value, precision=53)


def constant_expr(value, dtype: str = "float64") -> sp.Expr:
    """The formula of a scalar constant of ``dtype``: an ``Integer`` for an integral value
    (below 2**53, not -0.0), a boolean for a bool, else a :class:`Const` holding the value
    rounded to ``dtype``."""
    if dtype == "bool":
        return sp.true if bool(value) else sp.false
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        raise ArgumentError(f"constant {value} is not finite")
    number_ = number(value)
    if isinstance(number_, sp.Integer):
        if dtype == "int64" or abs(int(number_)) < 2**24 or dtype == "float64":
            return number_
    if dtype == "int64":
        raise ArgumentError(f"constant {value!r} is not an integer")
    return Const(float(np.asarray(value, dtype=dtype)))


def is_number(expr) -> bool:
    """Whether a formula is one number (the formula of a scalar constant)."""
    return isinstance(expr, (sp.Integer, Const)) or expr in (sp.true, sp.false)


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


# SymPy work on a derivative is bounded by the size of the formula: beyond these, the
# derivative is kept as sympy.diff gives it (a larger kernel, never a long compile).
FIT_MAX_OPS = 40
FIT_MAX_EXPONENT = 64


def _fit_allowed(expr, deriv) -> bool:
    if sp.count_ops(expr) > FIT_MAX_OPS or sp.count_ops(deriv) > FIT_MAX_OPS:
        return False
    return all(
        abs(p.exp) <= FIT_MAX_EXPONENT for p in (expr.atoms(sp.Pow) | deriv.atoms(sp.Pow))
    ) and not expr.atoms(Power, Const, IsNaN)


@cache
def _fit_in_output(expr, deriv):
    """``deriv`` written as a polynomial of degree <= 2 in ``y = expr``, or None.

    This is how the backward pass reuses forward values: sigmoid' becomes y*(1 - y),
    tanh' becomes 1 - y**2, exp' becomes y.  The polynomial is fitted at three points and
    accepted only if SymPy proves it equal to the derivative (over the reals, with SymPy's
    own functions: a proof, not an evaluation) and it is cheaper.  Only small formulas are
    tried (:data:`FIT_MAX_OPS`, :data:`FIT_MAX_EXPONENT`): ``x**1e6`` must not hang.
    """
    if not _fit_allowed(expr, deriv):
        return None
    x, y = sym(0), sp.Symbol("y", real=True)
    native, native_deriv = to_native(expr), to_native(deriv)
    points = [sp.Rational(3, 10), sp.Rational(7, 10), sp.Rational(11, 10)]
    try:
        rows = [[1, native.subs(x, t), native.subs(x, t) ** 2] for t in points]
        rhs = [native_deriv.subs(x, t) for t in points]
        coeffs = sp.Matrix(rows).evalf(30).solve(sp.Matrix(rhs).evalf(30))
    except (ValueError, TypeError, ZeroDivisionError):  # includes a singular fit
        return None
    coeffs = [sp.nsimplify(c, tolerance=1e-20, rational=True) for c in coeffs]
    if any(sp.denom(c) > 100 for c in coeffs):
        return None
    poly = coeffs[0] + coeffs[1] * y + coeffs[2] * y**2
    if sp.count_ops(poly) >= sp.count_ops(deriv):
        return None
    if not _proved_zero(native_deriv - poly.subs(y, native)):
        return None
    return poly.subs(y, sym(0))


def _proved_zero(expr) -> bool:
    """Whether SymPy proves ``expr`` identically zero.  Exact rational arithmetic with its
    function calls as unknowns (``cancel``) first: it proves sigmoid' = y*(1 - y) in
    milliseconds, where ``simplify`` takes 0.1 s the first time in a process (it imports
    SymPy's units module); ``simplify`` for what it leaves."""
    if expr == 0:
        return True
    try:
        if sp.cancel(sp.together(expr)) == 0:
            return True
    except sp.PolynomialError:
        pass
    return sp.simplify(expr) == 0


@cache
def partial(expr, i: int, n_inputs: int):
    """d expr / d x_i as ``(formula, uses_output)``.

    With ``uses_output`` the formula's ``x0`` is the node's own output (saved forward
    value) instead of its input.  The derivative of ``sign`` (abs'') is SymPy's
    ``DiracDelta``, a distribution: it is 0 almost everywhere, as in JAX.  A formula too
    deep for SymPy is an :class:`ArgumentError`.
    """
    try:
        deriv = sp.diff(expr, sym(i))
    except RecursionError:
        raise ArgumentError(f"the derivative of {expr} is too deeply nested for SymPy") from None
    deriv = deriv.replace(sp.DiracDelta, lambda *args: sp.Integer(0))
    if n_inputs == 1 and deriv.has(sym(0)) and not expr.has(sp.Piecewise):
        reused = _fit_in_output(expr, deriv)
        if reused is not None:
            return reused, True
    return deriv, False
