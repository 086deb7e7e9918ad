"""Rewrites of a formula into hand form (see the package docstring), in the order
:func:`hand_form` applies them; each prepares the next."""

from __future__ import annotations

import contextvars

import sympy as sp

from .ops import (
    Broadcast,
    LogSoftmax,
    MatMul,
    ReduceMax,
    ReduceSum,
    Reshaped,
    Sigmoid,
    Softmax,
)

# --- rewrites into hand form -------------------------------------------------------------


def _drop_max_guard(e):
    """Piecewise((m, m > -oo), (0, True)) -> m: the shift of a fully masked row.

    SymPy writes ``m > -oo`` in several forms (``-oo - m < 0``); each says ``m + oo > 0``.
    """

    def guards(x):
        if not (isinstance(x, sp.Piecewise) and len(x.args) == 2 and x.args[1] == (0, sp.true)):
            return False
        (a, cond), _ = x.args
        if not isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan)):
            return False
        above = (
            cond.lhs - cond.rhs if isinstance(cond, sp.StrictGreaterThan) else cond.rhs - cond.lhs
        )
        return above == a + sp.oo

    return e.replace(guards, lambda x: x.args[0][0])


def _distribute(e):
    """``-(a + b)`` -> ``-a - b``, as SymPy does when it builds, but not when substituting."""
    return e.replace(
        lambda x: x.is_Mul and len(x.args) == 2 and x.args[0].is_Number and x.args[1].is_Add,
        lambda x: sp.Add(*(x.args[0] * t for t in x.args[1].args)),
    )


def _sigmoids(e):
    """``(1 + exp(-a))**-k`` -> ``σ(a)**k``."""

    def match(x):
        if not (x.is_Pow and x.exp.is_Integer and x.exp < 0 and x.base.is_Add):
            return False
        terms = x.base.args
        return len(terms) == 2 and 1 in terms and any(isinstance(t, sp.exp) for t in terms)

    def to_sigmoid(x):
        ex = next(t for t in x.base.args if isinstance(t, sp.exp))
        return Sigmoid(-ex.args[0]) ** -x.exp

    return e.replace(match, to_sigmoid)


def _softmax_parts(total):
    """For ``sum(exp(S - max(S)), last axis, keepdims)``, return (exp node, S); else None."""
    if not isinstance(total, ReduceSum):
        return None
    ex, keepdims, ndim, *axes = total.args
    if not (
        isinstance(ex, sp.exp) and keepdims == sp.true and [int(a) for a in axes] == [int(ndim) - 1]
    ):
        return None
    shifted = ex.args[0]
    for s in (t for t in sp.Add.make_args(shifted)):
        rest = shifted - s
        if isinstance(-rest, ReduceMax) and (-rest).args[0] == s and list((-rest).args[3:]) == axes:
            return ex, s
    return None


def _softmaxes(e):
    """``exp(S - max(S)) / sum(exp(S - max(S)))`` -> ``softmax(S)``, wherever the exp meets
    its row sum; also ``log(sum(...)) + max(S)`` stays as it is (the log-sum-exp)."""
    for total in [t for t in sp.preorder_traversal(e) if isinstance(t, ReduceSum)]:
        parts = _softmax_parts(total)
        if parts is None:
            continue
        ex, s = parts
        sigma = sp.Dummy("sigma")
        e = e.xreplace({total: sigma}).xreplace({ex: Softmax(s) * sigma}).xreplace({sigma: total})
    return e


def _margins(e):
    """``a < b`` -> ``b - a > 0``, ``a > b`` -> ``a - b > 0``: conditions read as margins."""
    flip = {sp.StrictLessThan: sp.StrictGreaterThan, sp.LessThan: sp.GreaterThan}

    def margin(x):
        if type(x) in flip:
            return flip[type(x)](_distribute(x.rhs - x.lhs), 0, evaluate=False)
        return type(x)(_distribute(x.lhs - x.rhs), 0, evaluate=False)

    return e.replace(
        lambda x: (
            isinstance(x, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan))
            and x.rhs != 0
            and x.rhs.is_finite is not False
        ),
        margin,
    )


def _log_softmaxes(e):
    """``S - log(sum(exp(S - max(S)))) - max(S)`` -> ``log_softmax(S)`` (also inside a
    longer sum), and ``exp(log_softmax(S))`` -> ``softmax(S)``."""
    for total in [t for t in sp.preorder_traversal(e) if isinstance(t, ReduceSum)]:
        parts = _softmax_parts(total)
        if parts is None:
            continue
        ex, s = parts
        shift = _distribute(s - ex.args[0])
        terms = set(sp.Add.make_args(_distribute(s - sp.log(total) - shift)))

        def match(a, terms=terms):
            return a.is_Add and terms <= set(a.args)

        def to_log_softmax(a, terms=terms, s=s):
            return sp.Add(*(set(a.args) - terms)) + LogSoftmax(s)

        e = e.replace(match, to_log_softmax)
    return e.replace(
        lambda x: isinstance(x, sp.exp) and isinstance(x.args[0], LogSoftmax),
        lambda x: Softmax(x.args[0].args[0]),
    )


def _linear_sums(e):
    """Scalar factors out of sums: ``sum(-c·A)`` is ``-c·sum(A)``."""

    def pull(x):
        a, *attrs = x.args
        c, rest = sp.factor_terms(a).as_independent(*_TENSORS.get(), as_Add=False)
        return c * type(x)(rest, *attrs) if c != 1 else x

    return e.replace(lambda x: isinstance(x, ReduceSum), pull)


def _pull_scalars(e, tensors):
    """Scalar factors out of matrix products, common factors out of sums."""

    def pull(x):
        coeff, parts = sp.S.One, []
        for a in x.args:
            a = sp.factor_terms(a)
            if isinstance(a, Broadcast) and a.args[0].is_number:  # c·ones: c moves out
                c, rest = a.args[0], Broadcast(sp.S.One, *a.args[1:])
            else:
                c, rest = a.as_independent(*tensors, as_Add=False)
                if c.atoms(Broadcast, Reshaped):  # a broadcast value is a tensor, not a scalar
                    c, rest = sp.S.One, a
            coeff, parts = coeff * c, parts + [rest]
        return coeff * MatMul(*parts)

    e = e.replace(lambda x: isinstance(x, MatMul), pull)
    return sp.factor_terms(e)


_TENSORS = contextvars.ContextVar("tensors", default=frozenset())  # for _linear_sums


def hand_form(e, tensors):
    """All the rewrites, in order; ``tensors`` are the symbols that are not scalars."""
    e = _log_softmaxes(_sigmoids(_drop_max_guard(_distribute(e))))
    e = _margins(_softmaxes(e))
    token = _TENSORS.set(tensors)
    try:
        return _pull_scalars(_linear_sums(e), tensors)
    finally:
        _TENSORS.reset(token)
