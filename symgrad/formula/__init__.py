"""Graphs written back as the formulas a person writes: text, LaTeX, and NumPy evaluation.

``formula(g)`` turns a graph (typically a derived gradient) into a closed-form matrix
expression.  The graph is first optimised as the compiler does (so the formula is the one
that runs), then each node becomes a SymPy expression: elementwise formulas are substituted
into each other, structural ops become the function classes of ``ops.py`` (``A·B``,
``Aᵀ``, ``sum(A, axis=1)``, ``pick(S, y)``, ``onehot(y)``; one table, ``TO_FORMULA``, keyed
by op name), and the rewrites of ``rewrite.py`` bring the result into hand form:

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

Modules: ``ops.py`` (function classes and the op table), ``rewrite.py`` (hand form),
``printers.py`` (text, LaTeX), ``evaluate.py`` (NumPy), ``build.py`` (graph -> formula,
naming, node ``repr``).
"""

from .build import Formula, formula, pretty
from .ops import TO_FORMULA
from .printers import TeXPrinter, TextPrinter

__all__ = ["formula", "pretty", "Formula", "TextPrinter", "TeXPrinter", "TO_FORMULA"]
