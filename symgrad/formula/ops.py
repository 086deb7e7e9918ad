"""Structural ops as SymPy functions, and the one table that writes each graph op as a
formula (:data:`TO_FORMULA`, keyed by op name, plus :data:`LEAVES`).

Each function class knows how to print itself (text, LaTeX) and how to compute itself
with NumPy (``evaluate``).
"""

from __future__ import annotations

import re

import numpy as np
import sympy as sp

from ..ir import Node
from ..ops.elementwise import sym, to_native

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
    expr = to_native(node.attr("expr"), nan_checks=True)
    return expr.xreplace({sym(i): a for i, a in enumerate(args)})


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
    "ew": lambda b, node: to_native(node.attr("expr")),
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
