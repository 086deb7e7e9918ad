"""The printers: formulas as Unicode text and as LaTeX.  Function classes of
:mod:`.ops` print themselves; any other SymPy function prints by its name."""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from ..ops.numeric import piecewise_text
from .ops import FormulaOp, MatMul, OneHot, _atomlike

# --- printers ----------------------------------------------------------------------------


class _Common:
    """Shared by both printers: which factors are scalars, and how products read."""

    scalars: frozenset = frozenset()

    def _is_scalar(self, e) -> bool:
        return e.is_Number or (e.free_symbols <= self.scalars and not e.atoms(OneHot))

    def _split(self, expr):
        c, factors = expr.as_coeff_mul()
        num, den = [], []
        if c.is_Rational and c.q != 1:
            den.append(sp.Integer(c.q))
            c = sp.Integer(c.p)
        for f in factors:
            if f.is_Pow and f.exp.is_Number and f.exp < 0:
                den.append(f.base**-f.exp)
            else:
                num.append(f)
        return c, num, den

    def _join(self, factors, times, odot, paren):
        scal = [f for f in factors if self._is_scalar(f)]
        tens = [f for f in factors if not self._is_scalar(f)]
        # a stable order a person would use: the upstream gradient (a product) first, then
        # names, functions, and sums last (z·σ(x)·(1 - σ(x)), (G · w2ᵀ) ⊙ h ⊙ (1 - h))
        scal.sort(key=lambda f: (not f.is_Number, f.is_Add, not f.is_Symbol, str(f)))
        tens.sort(key=lambda f: (not f.atoms(MatMul), f.is_Add, not f.is_Symbol, str(f)))
        scal_text = times.join(paren(f, False) for f in scal)
        tens_text = odot.join(paren(f, len(tens) > 1) for f in tens)
        return times.join(t for t in (scal_text, tens_text) if t)

    def _mul(self, expr, times, odot, frac):
        c, num, den = self._split(expr)
        sign = "-" if c < 0 else ""
        c = -c if c < 0 else c

        def paren(f, in_chain):
            text = self._print(f)
            needs = f.is_Add or (in_chain and isinstance(f, MatMul))
            return self._wrap(text) if needs else text

        parts = ([c] if c != 1 else []) + num
        top = self._join(parts, times, odot, paren) if parts else "1"
        if not den:
            return sign + top
        bottom = self._join(den, times, odot, paren)
        return sign + frac(top, bottom, len(num) + (c != 1) > 1)

    def _sorted_terms(self, expr):
        """Big terms first, numbers last; a positive term first if there is one (1 - Y)."""
        terms = sorted(
            expr.args,
            key=lambda t: (t.is_Number, t.could_extract_minus_sign(), -sp.count_ops(t), str(t)),
        )
        positive = [t for t in terms if not t.could_extract_minus_sign()]
        if positive and terms[0].could_extract_minus_sign():
            terms.remove(positive[0])
            terms.insert(0, positive[0])
        return terms

    def _add(self, expr):
        out = ""
        for t in self._sorted_terms(expr):
            text = self._print(t)
            if not out:
                out = text
            elif text.startswith("-"):
                out += " - " + text[1:]
            else:
                out += " + " + text
        return out

    def _iverson(self, expr):
        """The condition ``c`` of a 0/1 indicator: Piecewise((1, c), (0, True)), or
        Piecewise((0, r), (1, True)) for a comparison ``r`` (the NaN-propagating order of
        relu's derivative) read as ``[not r]``; else None."""
        if len(expr.args) != 2 or expr.args[1][1] != sp.true:
            return None
        (first, cond), (last, _) = expr.args
        if first == 1 and last == 0:
            return cond
        if first == 0 and last == 1 and isinstance(cond, sp.core.relational.Relational):
            return sp.Not(cond)
        return None


class TextPrinter(_Common, StrPrinter):
    """Formulas as Unicode text: ``Xᵀ(softmax(XW) - Y)/N + 0.002·W``."""

    _SUPERSCRIPTS = {2: "²", 3: "³"}

    def _wrap(self, text):
        return f"({text})"

    def _print_Mul(self, expr):
        return self._mul(
            expr, "·", " ⊙ ", lambda t, b, many: f"{t}/{b}" if "·" not in b else f"{t}/({b})"
        )

    def _print_Add(self, expr, order=None):
        return self._add(expr)

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        b = self._print(base)
        b = b if _atomlike(base) else f"({b})"
        if e == sp.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        if e.is_Integer and e < 0:
            return "1/" + self._print(base**-e) if -e != 1 else f"1/{b}"
        if e in self._SUPERSCRIPTS:
            return b + self._SUPERSCRIPTS[int(e)]
        return f"{b}^{self.parenthesize(e, 1000)}"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"

    def _print_Piecewise(self, expr):
        cond = self._iverson(expr)
        if cond is not None:
            return f"[{self._print(cond)}]"
        return piecewise_text(expr, self._print, lambda c, v, o: f"where({c}, {v}, {o})", "nan")

    def _print_Relational(self, expr):
        lhs, rhs = expr.args
        if isinstance(expr, sp.Ne) and isinstance(lhs, FormulaOp) and rhs == 0:
            return self._print(lhs)  # a mask read as a condition
        if rhs.is_Number and rhs.is_finite and rhs != 0:  # a margin reads a + 1 > 0
            lhs, rhs = sp.Add(lhs, -rhs, evaluate=False), sp.Integer(0)
        return f"{self._print(lhs)} {expr.rel_op} {self._print(rhs)}"

    def _print_Infinity(self, expr):
        return "inf"

    def _print_NegativeInfinity(self, expr):
        return "-inf"

    def _print_Function(self, expr):
        # every function, known or not (custom SymPy Function subclasses too), by its name
        return f"{type(expr).__name__}({', '.join(self._print(a) for a in expr.args)})"


class TeXPrinter(_Common, LatexPrinter):
    """Formulas as LaTeX: ``X^{\\top} (\\operatorname{softmax}(X W) - Y) / N + ...``."""

    def __init__(self):
        super().__init__({"mul_symbol": "dot"})

    def _wrap(self, text):
        return rf"\left({text}\right)"

    def _print_Mul(self, expr):
        return self._mul(expr, r" \cdot ", r" \odot ", lambda t, b, many: rf"\frac{{{t}}}{{{b}}}")

    def _print_Add(self, expr, order=None):
        return self._add(expr)

    def _print_Float(self, expr):
        return (
            repr(float(expr)).replace("e", r" \cdot 10^{") + "}"
            if "e" in repr(float(expr))
            else repr(float(expr))
        )

    def _print_Piecewise(self, expr):
        cond = self._iverson(expr)
        if cond is not None:
            return rf"\left[{self._print(cond)}\right]"
        return super()._print_Piecewise(expr)

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if name.startswith("\\"):  # already LaTeX (explain's adjoint names)
            return name
        if "_" in name and len(name) > 2:  # grad_y_pred, w1 ... read as one name, not a subscript
            return r"\mathit{" + name.replace("_", r"\_") + "}"
        return super()._print_Symbol(expr)
