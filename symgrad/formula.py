"""Graphs written back as the formulas a person writes: text, LaTeX, and NumPy evaluation.

``formula(g)`` turns a graph (typically a derived gradient) into a closed-form matrix
expression.  The graph is first optimised as the compiler does (so the formula is the one
that runs), then each node becomes a SymPy expression: elementwise formulas are substituted
into each other, structural ops become the small function classes below (``A·B``, ``Aᵀ``,
``sum(A, axis=1)``, ``pick(S, y)``, ``onehot(y)``), and a few rewrites bring the result
into hand form:

* ``exp(S - max(S))`` over its row sum is ``softmax(S)``, ``1/(1 + exp(-a))`` is ``σ(a)``;
* the max shift's guard against fully masked rows (``max > -inf``) is dropped;
* scalar factors move out of matrix products (``Xᵀ(G/N)`` is ``Xᵀ·G/N``) and common factors
  out of sums (``h - h²`` is ``h ⊙ (1 - h)``);
* a condition ``a < b`` is written as a margin ``b - a > 0``; a 0/1 choice is an Iverson
  bracket ``[S - s + 1 > 0]``.

Subexpressions used more than once get names (``P = softmax(XW)``), as do one-hot matrices
(``Y = onehot(y)``) and the nodes passed in ``names``.  ``⊙`` is the elementwise product,
``·`` a matrix or scalar product.

>>> import symgrad as sg
>>> x, y, z = sg.symbols("x y z")
>>> print(sg.formula(sg.grad((x + y) * z, x)))
z
>>> print(sg.formula(sg.grad(sg.sigmoid(x) * z, x)))
z·σ(x)·(1 - σ(x))

Which graphs get a hand form: softmax (from its max-shifted exp and row sum), sigmoid,
products, sums and reductions, picks and one-hots, masks.  Anything else is still written
out exactly, op by op (``max(S, axis=1)``, ``argmax_mask(S, axis=1)``, ``reshape``): the
formula is always the graph's value, never an approximation of it (``Formula.evaluate``
computes it with NumPy, which is how the tests check the rewrites).
"""

from __future__ import annotations

import contextvars
import itertools
import re
from collections import Counter

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from .errors import GraphError
from .ir import Node, toposort
from .ir.shapes import fmt
from .ops.api import as_node
from .ops.elementwise import sym

# --- structural ops as SymPy functions ---------------------------------------------------
# Each class knows how to print itself (text, LaTeX) and how to compute itself with NumPy.


def _axis_text(axes, ndim_hint=None) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


class FormulaOp(sp.Function):
    """A structural op inside a formula; ``args[0]`` is the operand, the rest attributes."""

    is_extended_real = True  # tensors of real numbers (so SymPy may compare them)

    text_name = ""

    @classmethod
    def attrs(cls, expr):
        return expr.args[1:]

    def _sympystr(self, printer):
        return f"{self.text_name}({printer.doprint(self.args[0])}{self._attr_text()})"

    def _latex(self, printer):
        return rf"\operatorname{{{self.text_name}}}\left({printer.doprint(self.args[0])}{self._attr_text()}\right)"

    def _attr_text(self) -> str:
        return ""


def _atomlike(e) -> bool:
    return e.is_Atom or isinstance(e, (sp.Function, Transposed))


class MatMul(FormulaOp):
    """``a · b`` (NumPy ``@``: 1-D and 2-D operands)."""

    @staticmethod
    def evaluate(a, b):
        return np.matmul(a, b)

    def _parts(self, printer, latex=False):
        out = []
        for a in self.args:
            text = printer.doprint(a)
            if isinstance(a, Broadcast) and a.args[0].is_number:  # a matrix of ones (times c)
                ones = f"ones{_dims_text(a.args[1:])}"
                text = ones if a.args[0] == 1 else f"{text}·{ones}"
            if not _atomlike(a):
                text = (r"\left(" + text + r"\right)") if latex else "(" + text + ")"
            out.append((a, text))
        return out

    def _sympystr(self, printer):
        (a, ta), (b, tb) = self._parts(printer)
        short = all(_short_name(x) for x in (a, b))
        return ta + ("" if short or tb.startswith("(") else " · ") + tb

    def _latex(self, printer):
        (a, ta), (b, tb) = self._parts(printer, latex=True)
        return (
            ta
            + (
                " "
                if all(_short_name(x) for x in (a, b)) or tb.startswith(r"\left(")
                else r" \cdot "
            )
            + tb
        )


def _short_name(e) -> bool:
    if isinstance(e, Transposed):
        e = e.args[0]
    return isinstance(e, sp.Symbol) and len(e.name) == 1


class Transposed(FormulaOp):
    """``aᵀ`` (2-D) or ``transpose(a, perm)``."""

    @staticmethod
    def evaluate(a, *perm):
        return np.transpose(a, tuple(int(p) for p in perm) or None)

    def _sympystr(self, printer):
        a = self.args[0]
        text = printer.doprint(a)
        if len(self.args) > 1 and list(self.args[1:]) != [1, 0]:
            return f"transpose({text}, {tuple(int(p) for p in self.args[1:])})"
        return (text if _atomlike(a) else f"({text})") + "ᵀ"

    def _latex(self, printer):
        text = printer.doprint(self.args[0])
        return (text if _atomlike(self.args[0]) else rf"\left({text}\right)") + r"^{\top}"


class _Reduction(FormulaOp):
    """``op(a, axis=...)``; args: operand, keepdims, ndim, axes..."""

    numpy = None

    @classmethod
    def evaluate(cls, a, keepdims, ndim, *axes):
        return cls.numpy(a, axis=tuple(int(x) for x in axes), keepdims=bool(keepdims))

    def _attr_text(self):
        _, keepdims, ndim, *axes = self.args
        if len(axes) == int(ndim):
            return ""
        return ", axis=" + _axis_text([int(a) for a in axes])


class ReduceSum(_Reduction):
    text_name, numpy = "sum", staticmethod(np.sum)

    def _latex(self, printer):
        return rf"\sum{self._sub()}\left({printer.doprint(self.args[0])}\right)"

    def _sub(self):
        text = self._attr_text()
        return "_{" + text[2:].replace("axis=", r"\mathrm{axis}=") + "}" if text else ""


class ReduceMax(_Reduction):
    text_name, numpy = "max", staticmethod(np.max)


class ArgmaxMask(FormulaOp):
    """1 at the first maximum along the axes (the max's subgradient)."""

    text_name = "argmax_mask"

    @staticmethod
    def evaluate(x, *axes):
        rest = [a for a in range(x.ndim) if a not in axes]
        moved = np.transpose(x, rest + list(axes))
        flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
        mask = np.zeros(flat.shape, dtype=bool)
        np.put_along_axis(mask, np.argmax(flat, axis=-1)[..., None], True, axis=-1)
        return np.transpose(mask.reshape(moved.shape), np.argsort(rest + list(axes)))

    def _attr_text(self):
        return ", axis=" + _axis_text([int(a) for a in self.args[1:]])


class Pick(FormulaOp):
    """``pick(S, y)``: ``S[i, y[i]]`` per row."""

    text_name = "pick"

    @staticmethod
    def evaluate(s, labels):
        labels = np.asarray(labels)
        return np.take_along_axis(s, labels[..., None], axis=-1)[..., 0]

    def _sympystr(self, printer):
        return f"pick({printer.doprint(self.args[0])}, {printer.doprint(self.args[1])})"

    def _latex(self, printer):
        return rf"\operatorname{{pick}}\left({printer.doprint(self.args[0])}, {printer.doprint(self.args[1])}\right)"


class OneHot(FormulaOp):
    """``onehot(y)``: a row of zeros with a 1 at each label; args: labels, classes."""

    text_name = "onehot"

    @staticmethod
    def evaluate(labels, classes):
        return np.eye(int(classes))[np.asarray(labels)]


class Softmax(FormulaOp):
    """``softmax(S)`` along the last axis."""

    text_name = "softmax"

    @staticmethod
    def evaluate(s):
        e = np.exp(s - np.max(s, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)


class LogSoftmax(FormulaOp):
    """``log_softmax(S)`` along the last axis."""

    text_name = "log_softmax"

    @staticmethod
    def evaluate(s):
        shifted = s - np.max(s, axis=-1, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


class Sigmoid(FormulaOp):
    """``σ(a) = 1/(1 + exp(-a))``."""

    @staticmethod
    def evaluate(a):
        return 1 / (1 + np.exp(-a))

    def _sympystr(self, printer):
        return f"σ({printer.doprint(self.args[0])})"

    def _latex(self, printer):
        return rf"\sigma\left({printer.doprint(self.args[0])}\right)"


class Reshaped(FormulaOp):
    """A reshape; written as its operand when it only adds or drops 1s (NumPy's
    broadcasting makes that implicit).  args: operand, implicit, target dims."""

    text_name = "reshape"

    def _sympystr(self, printer):
        if self.args[1] == sp.true:
            return printer.doprint(self.args[0])
        return f"reshape({printer.doprint(self.args[0])}, {_dims_text(self.args[2:])})"

    def _latex(self, printer):
        if self.args[1] == sp.true:
            return printer.doprint(self.args[0])
        return rf"\operatorname{{reshape}}\left({printer.doprint(self.args[0])}, {_dims_text(self.args[2:])}\right)"


class Broadcast(FormulaOp):
    """A broadcast to a bigger shape, implicit in the formula's arithmetic (it is written
    as its operand).  args: operand, target dims."""

    def _sympystr(self, printer):
        return printer.doprint(self.args[0])

    def _latex(self, printer):
        return printer.doprint(self.args[0])


class Sliced(FormulaOp):
    """``X[1:, ::2]``; args: operand, rank, starts, steps, result dims."""

    @staticmethod
    def evaluate(a, rank, *rest):
        starts, steps, shape = rest[:rank], rest[rank : 2 * rank], rest[2 * rank :]
        index = tuple(slice(b, b + k * n, k) for b, k, n in zip(starts, steps, shape))
        return np.asarray(a)[index]

    def _windows(self):
        rank = int(self.args[1])
        starts, steps, shape = (
            self.args[2 : 2 + rank],
            self.args[2 + rank : 2 + 2 * rank],
            self.args[2 + 2 * rank :],
        )
        out = []
        for b, k, n in zip(starts, steps, shape):
            text = f"{b if b else ''}:{b + k * n}" + (f":{k}" if k != 1 else "")
            out.append(text)
        return ", ".join(out)

    def _sympystr(self, printer):
        a = self.args[0]
        text = printer.doprint(a)
        return (text if _atomlike(a) else f"({text})") + f"[{self._windows()}]"

    def _latex(self, printer):
        return printer.doprint(self.args[0]) + r"_{[" + self._windows() + r"]}"


class Scattered(FormulaOp):
    """Zeros of a shape with the operand written into a window (the adjoint of a slice);
    args: operand, rank, starts, steps, result dims."""

    text_name = "slice_scatter"

    @staticmethod
    def evaluate(g, rank, *rest):
        starts, steps, shape = rest[:rank], rest[rank : 2 * rank], rest[2 * rank :]
        out = np.zeros(shape, dtype=np.result_type(g, np.float64))
        index = tuple(slice(b, b + k * n, k) for b, k, n in zip(starts, steps, np.shape(g)))
        out[index] = g
        return out

    def _attr_text(self):
        rank = int(self.args[1])
        return f", {_dims_text(self.args[2 + 2 * rank :])} at {tuple(int(b) for b in self.args[2 : 2 + rank])}"


class Concatenated(FormulaOp):
    """``concat(A, B, axis=1)``; args: axis, operands."""

    @staticmethod
    def evaluate(axis, *xs):
        return np.concatenate([np.asarray(x, dtype=np.float64) for x in xs], axis=int(axis))

    def _sympystr(self, printer):
        parts = ", ".join(printer.doprint(x) for x in self.args[1:])
        return f"concat({parts}, axis={self.args[0]})"

    def _latex(self, printer):
        parts = ", ".join(printer.doprint(x) for x in self.args[1:])
        return rf"\operatorname{{concat}}\left({parts}\right)"


class Argmax(_Reduction):
    """The index of the first maximum along an axis."""

    text_name = "argmax"

    @classmethod
    def evaluate(cls, a, keepdims, ndim, *axes):
        return np.argmax(a, axis=int(axes[0]))


def _window(cls, node, arg):
    rank = len(node.attr("starts"))
    return cls(arg, rank, *node.attr("starts"), *node.attr("steps"), *(_dim(d) for d in node.shape))


def _dims_text(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _reshape_expr(node: Node, arg):
    a = node.inputs[0]
    implicit = tuple(d for d in a.shape if d != 1) == tuple(d for d in node.shape if d != 1)
    return Reshaped(arg, sp.true if implicit else sp.false, *(_dim(d) for d in node.shape))


class _Generic(Exception):
    pass


# --- graph -> SymPy, one rule per op (the per-op knowledge of formulas) -----------------

Leaf = sp.Symbol


def _ew(node, args):
    # a bool operand that is not a condition already (a mask) is read as "mask != 0"
    args = [
        sp.Ne(a, 0) if i.dtype == "bool" and not isinstance(a, sp.logic.boolalg.Boolean) else a
        for i, a in zip(node.inputs, args)
    ]
    return node.attr("expr").xreplace({sym(i): a for i, a in enumerate(args)})


def _reduction(cls):
    def build(node, args):
        return cls(
            args[0],
            sp.true if node.attr("keepdims") else sp.false,
            node.inputs[0].ndim,
            *node.attr("axes"),
        )

    return build


TO_FORMULA = {
    "ew": _ew,
    "sum": _reduction(ReduceSum),
    "max": _reduction(ReduceMax),
    "argmax_mask": lambda node, args: ArgmaxMask(args[0], *node.attr("axes")),
    "matmul": lambda node, args: MatMul(*args),
    "transpose": lambda node, args: Transposed(args[0], *node.attr("perm")),
    "reshape": lambda node, args: _reshape_expr(node, args[0]),
    "broadcast_to": lambda node, args: Broadcast(args[0], *(_dim(d) for d in node.shape)),
    "pick": lambda node, args: Pick(*args),
    "one_hot": lambda node, args: OneHot(args[0], _dim(node.attr("num_classes"))),
    "stop_gradient": lambda node, args: args[0],  # the value; derivatives are already taken
    "relabel": lambda node, args: args[0],  # the same values under other dims
    "slice": lambda node, args: _window(Sliced, node, args[0]),
    "slice_scatter": lambda node, args: _window(Scattered, node, args[0]),
    "concatenate": lambda node, args: Concatenated(node.attr("axis"), *args),
    "argmax": lambda node, args: Argmax(args[0], sp.false, node.inputs[0].ndim, *node.attr("axes")),
}


def _const(builder, node):
    array = np.asarray(node.attr("value").array)
    if array.ndim == 0:  # a scalar kept out of formulas: inf, -inf or nan
        value = float(array)
        return (
            sp.Float(value)
            if np.isfinite(value)
            else {1: sp.oo, -1: -sp.oo}.get(np.sign(value), sp.nan)
        )
    count = sum(kind == "const" for kind, _ in builder.symbols.values())
    return builder.leaf(_sym(f"K{count + 1}"), node, "const", array)


# leaves get symbols (a scalar constant is its number)
LEAVES = {
    "input": lambda b, node: b.leaf(_sym(node.name), node, "input", node),
    "dim": lambda b, node: b.leaf(_dim(node.attr("name")), node, "dim", node.attr("name")),
    "const": _const,
    "ew": lambda b, node: node.attr("expr"),
}


def _sym(name: str) -> sp.Symbol:
    """A tensor or named value in a formula (real: values are real numbers)."""
    return sp.Symbol(name, real=True)


def _dim(d):
    if isinstance(d, int):
        return sp.Integer(d)
    text = str(d)
    if text.isidentifier():
        return sp.Symbol(text, integer=True, positive=True)
    names = {n: _dim(n) for n in re.findall(r"[A-Za-z_]\w*", text)}  # an expression: N - 1
    return sp.parse_expr(text, local_dict=names)


class _GenericOp(FormulaOp):
    """An op without a formula rule, written as ``op(args)`` (evaluated by the interpreter)."""

    def _sympystr(self, printer):
        return f"{self.args[0]}({', '.join(printer.doprint(a) for a in self.args[1:])})"

    def _latex(self, printer):
        return rf"\operatorname{{{self.args[0]}}}\left({', '.join(printer.doprint(a) for a in self.args[1:])}\right)"


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

# --- naming ------------------------------------------------------------------------------

NAME_HINTS = {Softmax: "P", Sigmoid: "h", OneHot: "Y"}  # else M for a mask, or A, B, ...
TENSOR_NAMES = "ABEFGHKQRTUVZ"


def _names(taken):
    for letter in itertools.chain(TENSOR_NAMES, (f"A{i}" for i in itertools.count(1))):
        if letter not in taken:
            yield letter


def _is_small(e, tensors) -> bool:
    """Small enough to write again instead of naming: ``XW``, ``pick(S, y)``, ``1/N``."""
    if e.is_Mul and len(e.args) == 2 and e.args[0] == -1:
        e = e.args[1]
    if e.is_Atom or isinstance(e, (Reshaped, Broadcast)) and e.args[0].is_Atom:
        return True
    if isinstance(e, (MatMul, Pick, Transposed)):
        return all(
            a.is_Atom or isinstance(a, (Transposed, Reshaped, Broadcast)) and a.args[0].is_Atom
            for a in e.args
        )
    scalar = not (e.atoms(FormulaOp) or e.free_symbols & tensors)
    return sp.count_ops(e) <= (4 if scalar else 1)


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
        """Piecewise((1, c), (0, True)) is the 0/1 indicator of c."""
        return len(expr.args) == 2 and expr.args[0][0] == 1 and expr.args[1] == (0, sp.true)


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
        if self._iverson(expr):
            return f"[{self._print(expr.args[0][1])}]"
        *branches, (last, cond) = expr.args
        text = (
            self._print(last)
            if cond == sp.true
            else f"where({self._print(cond)}, {self._print(last)}, nan)"
        )
        for value, c in reversed(branches):
            text = f"where({self._print(c)}, {self._print(value)}, {text})"
        return text

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
        if self._iverson(expr):
            return rf"\left[{self._print(expr.args[0][1])}\right]"
        return super()._print_Piecewise(expr)

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if name.startswith("\\"):  # already LaTeX (explain's adjoint names)
            return name
        if "_" in name and len(name) > 2:  # grad_y_pred, w1 ... read as one name, not a subscript
            return r"\mathit{" + name.replace("_", r"\_") + "}"
        return super()._print_Symbol(expr)


# --- the formula object ------------------------------------------------------------------


class Formula:
    """A graph as named definitions and results, each a SymPy expression.

    ``str(formula)`` is the text form, ``formula.latex`` (and ``_repr_latex_``) LaTeX, and
    ``formula.evaluate(**inputs)`` computes the results with NumPy from the formulas
    themselves (not from the graph), so it checks that the written form is the graph's value.
    """

    def __init__(self, definitions, results, symbols, scalars):
        self.definitions = definitions  # [(name, expr)] in dependency order
        self.results = results  # [(name or None, expr)]
        self._symbols = (
            symbols  # SymPy symbol -> ("input", name) | ("dim", name) | ("const", array)
        )
        self._scalars = frozenset(scalars)

    def _print(self, printer):
        printer.scalars = self._scalars
        return printer.doprint

    def lines(self, printer=None) -> list[str]:
        show = self._print(printer or TextPrinter())
        out = [f"{name} = {show(e)}" for name, e in self.definitions]
        for name, e in self.results:
            out.append(f"{name} = {show(e)}" if name else show(e))
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.lines())

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"<symgrad.Formula\n{self.text}\n>"

    @property
    def latex(self) -> str:
        show = self._print(TeXPrinter())
        rows = [f"{_tex_name(n)} &= {show(e)}" for n, e in self.definitions]
        rows += [f"{_tex_name(n)} &= {show(e)}" if n else show(e) for n, e in self.results]
        if len(rows) == 1 and not self.results[0][0]:
            return rows[0]
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"

    def _repr_latex_(self):
        return f"${self.latex}$"

    def evaluate(self, **inputs):
        """The results computed with NumPy from these formulas (a list, or one value).

        Named dims are read from the inputs' shapes; a dim no input shows is passed as an
        int keyword (``C=10``)."""
        env = {}
        dims = {k: v for k, v in inputs.items() if isinstance(v, int) and not isinstance(v, bool)}
        for s, (kind, what) in self._symbols.items():
            if kind == "input":
                if what.name not in inputs:
                    raise GraphError(f"evaluate needs a value for {what.name!r}")
                env[s] = np.asarray(inputs[what.name])
                for d, n in zip(what.shape, np.shape(env[s])):
                    if isinstance(d, str):
                        dims[d] = n
            elif kind == "const":
                env[s] = what
        for s, (kind, what) in self._symbols.items():
            if kind == "dim":
                env[s] = float(dims[what])
        for name, e in self.definitions:
            env[_sym(name)] = _evaluate(e, env, dims)
        values = [_evaluate(e, env, dims) for _, e in self.results]
        return values[0] if len(values) == 1 else values


def _tex_name(name: str) -> str:
    return TeXPrinter()._print_Symbol(sp.Symbol(name)) if name else ""


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


# --- building ----------------------------------------------------------------------------


class _Builder:
    """Graph -> SymPy, node by node, with leaf symbols and the hand-form rewrites."""

    def __init__(self, names=None, optimize=True):
        self.names = dict(names or {})  # node -> display name
        self.symbols = {}  # Symbol -> (kind, what)
        self.scalars = set()
        self.tensors = set()
        self.optimize = optimize

    def leaf(self, s, node: Node, kind, what):
        """Register a leaf symbol (an input, a dim or a constant array)."""
        self.symbols[s] = (kind, what)
        (self.scalars if node.shape == () else self.tensors).add(s)
        return s

    def expressions(self, outputs):
        exprs = {}
        for node in toposort(outputs):
            if node in self.names:
                s = _sym(self.names[node])
                (self.scalars if node.shape == () else self.tensors).add(s)
                exprs[node] = s
                continue
            args = [exprs[i] for i in node.inputs]
            if not node.inputs and node.op in LEAVES:
                exprs[node] = LEAVES[node.op](self, node)
                continue
            rule = TO_FORMULA.get(node.op)
            try:
                if rule is None:
                    raise _Generic
                e = rule(node, args)
            except _Generic:
                e = _GenericOp(sp.Symbol(node.op), *args)
            exprs[node] = e
        return exprs

    def finish(self, e):
        """The rewrites into hand form, in order (each prepares the next)."""
        e = _log_softmaxes(_sigmoids(_drop_max_guard(_distribute(e))))
        e = _margins(_softmaxes(e))
        token = _TENSORS.set(self.tensors)
        try:
            return _pull_scalars(_linear_sums(e), self.tensors)
        finally:
            _TENSORS.reset(token)


def _prepare(outputs, names, optimize):
    """Optimise outputs and named nodes together, so the named nodes are found in them."""
    named = list(names.values())
    nodes = list(outputs) + named
    if optimize:
        from .passes import optimize as run

        nodes = run(nodes)
    return nodes[: len(outputs)], {n: name for name, n in zip(names, nodes[len(outputs) :])}


def formula(graph, names=None, optimize=True, cse=True, define_names=True) -> Formula:
    """The graph written as a formula (see the module docstring).

    ``graph``: one graph, a list, or a dict ``{name: graph}`` (the names label the results);
    ``names``: ``{name: node}`` for subexpressions to call by a name (``{"h": h}``); they
    are matched in the optimised graph, so a name shows where its node survives optimisation.
    ``optimize=False`` writes the graph as built; ``cse=False`` writes everything inline;
    ``define_names=False`` leaves out the definitions of the named nodes.

    >>> import symgrad as sg
    >>> X, W = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
    >>> print(sg.formula({"dW": sg.grad(sg.sum(X @ W) / 2, W)}))
    dW = Xᵀ · ones(N, C)/2
    """
    if isinstance(graph, dict):
        labels, graphs = list(graph), list(graph.values())
    elif isinstance(graph, (list, tuple)):
        labels, graphs = [None] * len(graph), list(graph)
    else:
        labels, graphs = [None], [graph]
    graphs = [as_node(g) for g in graphs]
    names = {k: as_node(v) for k, v in (names or {}).items()}
    outputs, named = _prepare(graphs, names, optimize)
    builder = _Builder(named)
    exprs = builder.expressions(outputs + list(named))
    named_defs = (
        [(name, builder.finish(e)) for name, e in _named_definitions(named, builder)]
        if define_names
        else []
    )
    results = [builder.finish(exprs[o]) for o in outputs]
    taken = {str(s) for s in builder.symbols} | set(names) | {str(lab) for lab in labels if lab}
    definitions, results = _name_shared(results, taken, builder, cse)
    for name, e in named_defs:
        builder.scalars.add(_sym(name)) if not (e.free_symbols & builder.tensors) else None
    return Formula(
        named_defs + definitions, list(zip(labels, results)), builder.symbols, builder.scalars
    )


def _named_definitions(named, builder):
    """Definitions of the named nodes, over each other's names (in graph order)."""
    out = []
    for node in toposort(list(named)):
        if node not in named:
            continue
        inner = _Builder({n: s for n, s in named.items() if n is not node})
        inner.symbols, inner.scalars, inner.tensors = (
            builder.symbols,
            builder.scalars,
            builder.tensors,
        )
        out.append((named[node], inner.expressions([node])[node]))
    return out


def _name_shared(results, taken, builder, cse):
    """Name one-hots always, and subexpressions used more than once if they are not small."""
    onehots = sorted({o for e in results for o in e.atoms(OneHot)}, key=str)
    definitions, replace = [], {}
    for o in onehots:
        label = str(o.args[0])
        name = (
            label.upper() if label.upper() not in taken and len(label) == 1 else _fresh("Y", taken)
        )
        taken.add(name)
        definitions.append((name, o))
        replace[o] = _sym(name)
        builder.tensors.add(_sym(name))
    results = [e.xreplace(replace) for e in results]
    if not cse:
        return definitions, results
    counts = Counter()

    def visit(e):  # a subexpression inside a repeated one is counted once, with its parent
        counts[e] += 1
        if counts[e] == 1:
            for a in e.args:
                visit(a)

    for r in results:
        visit(r)
    repeated = [
        e for e, c in counts.items() if c > 1 and not _is_small(e, builder.tensors) and _nameable(e)
    ]
    repeated.sort(key=lambda e: (sp.count_ops(e), str(e)))  # inner ones first
    generic, kept = _names(taken), []
    while repeated:
        e = repeated.pop(0)
        hint = NAME_HINTS.get(type(e)) or ("M" if e.atoms(sp.Piecewise) else None)
        name = _fresh(hint, taken) if hint else next(generic)
        taken.add(name)
        s = _sym(name)
        tensor = bool(e.free_symbols & builder.tensors) or bool(e.atoms(OneHot))
        (builder.tensors if tensor else builder.scalars).add(s)
        kept.append((name, e))
        results = [r.xreplace({e: s}) for r in results]
        repeated = [x.xreplace({e: s}) for x in repeated]
    return definitions + kept, results


def _nameable(e) -> bool:
    """Values, not conditions, attributes or wrappers of a single name."""
    if e.is_Atom or isinstance(e, (sp.logic.boolalg.Boolean, sp.Tuple, ExprCondPair)):
        return False
    return not (isinstance(e, (Reshaped, Broadcast)) and e.args[0].is_Atom)


def _fresh(hint, taken):
    if hint not in taken:
        return hint
    for i in itertools.count(1):
        if f"{hint}{i}" not in taken:
            return f"{hint}{i}"


def pretty(f, **kwargs) -> str:
    """The formula of ``f`` as text (``str(sg.formula(f))``)."""
    return str(formula(f, **kwargs))


# --- readable nodes ----------------------------------------------------------------------

REPR_NODE_LIMIT = 80  # bigger graphs show their op only: printing must stay instant
REPR_WIDTH = 100


def _node_repr(node: Node) -> str:
    if node.name is not None:
        return f"tensor({node.name!r}, {fmt(node.shape)}, {node.dtype})"
    try:
        if len(toposort([node])) > REPR_NODE_LIMIT:
            raise _Generic
        text = " ".join(formula(node, optimize=False, cse=False).text.split())
        if len(text) > REPR_WIDTH:
            text = text[: REPR_WIDTH - 1] + "…"
    except Exception:  # a repr must never fail: fall back to the op
        text = f"{node.op} #{node.digest[:6]}"
    return f"<tensor {fmt(node.shape)} {node.dtype}: {text}>"


def _node_latex(node: Node):
    if node.shape != () or len(toposort([node])) > REPR_NODE_LIMIT:
        return None
    return formula(node, optimize=False, cse=False)._repr_latex_()


Node.__repr__ = _node_repr
Node._repr_latex_ = _node_latex

__all__ = ["formula", "pretty", "Formula", "TextPrinter", "TeXPrinter", "TO_FORMULA"]
