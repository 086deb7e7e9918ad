"""The digest text of a formula (``ir/formula_digest.py``): a structural hash that is exact,
independent of the process and of the order SymPy stores a sum's terms in, and linear in
the formula's size (no recursion: a formula of any depth has one)."""

from __future__ import annotations

import sys

import sympy as sp

import symgrad as sg
from symgrad.ir.formula_digest import formula_digest
from symgrad.ops import core
from symgrad.ops.core import scalar
from symgrad.ops.elementwise import Const, Paren, constant_expr, sym


def test_floats_are_exact():
    # str() rounds to 15 digits, so the old digest text of both was the same
    x = sg.symbols("x_fd_exact")
    assert (x * 0.1).digest != (x * 0.10000000000000002).digest
    assert formula_digest(sp.Float(0.1, precision=53)) != formula_digest(
        sp.Float(0.10000000000000002, precision=53)
    )
    assert formula_digest(Const(0.1)) != formula_digest(Const(0.10000000000000002))


def test_equal_formulas_have_equal_digests_and_others_not():
    a, b = sym(0), sym(1)
    assert formula_digest(a + b) == formula_digest(b + a)
    assert formula_digest(sp.And(a > 0, b > 0)) == formula_digest(sp.And(b > 0, a > 0))
    assert formula_digest(a - b) != formula_digest(b - a)
    assert formula_digest(sp.Piecewise((a, a > b), (b, True))) != formula_digest(
        sp.Piecewise((b, a > b), (a, True))
    )
    # the same name with other assumptions is another symbol
    assert formula_digest(sp.Symbol("x0")) != formula_digest(sym(0))
    # an atom is not a call of a function of that name with no arguments
    assert formula_digest(sp.Integer(2)) != formula_digest(sp.Integer(3))


def test_a_dummy_symbol_is_its_name():
    # a Dummy's index counts Dummies made by this process: it must not reach the digest
    first, second = sp.Dummy("d"), sp.Dummy("d")
    assert first != second
    assert formula_digest(first + 1) == formula_digest(second + 1)


def test_a_deep_formula_needs_no_recursion():
    e = sym(0)
    for k in range(3000):  # built with evaluate=False: SymPy's own constructors would recurse
        e = Paren(sp.Mul(Const(0.5 + k), e, evaluate=False), evaluate=False)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        text = formula_digest(e)
    finally:
        sys.setrecursionlimit(old)
    assert text.startswith("sympy:") and text != formula_digest(e.args[0])


def test_cached_scalars_keep_signed_zeros_apart():
    # scalar() caches its node by (type, repr, dtype): 0.0 == -0.0 as keys, not as constants
    for first, second in ((0.0, -0.0), (-0.0, 0.0), (1, True), (True, 1.0)):
        core._scalar.cache_clear()
        a, b = scalar(first), scalar(second)
        assert a.attr("expr") == constant_expr(first) and b.attr("expr") == constant_expr(second)
    assert scalar(0.0) is not scalar(-0.0)
    x = sg.tensor("x_fd_zero", (2,))
    f = sg.compile(x * -0.0, backend="numpy")  # x * 0.0 is 0 (docs/semantics.md, rule 2)
    assert list(map(str, f(x_fd_zero=[-1.0, 1.0]))) == ["0.0", "-0.0"]
