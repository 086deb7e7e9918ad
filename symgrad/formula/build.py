"""Graph -> formula: the :class:`Formula` object, :func:`formula`, naming of shared
subexpressions, and the readable ``repr`` of nodes."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from ..errors import GraphError
from ..ir import Node, toposort
from ..ir.shapes import fmt
from ..ops.api import as_node
from .evaluate import _evaluate
from .ops import (
    LEAVES,
    TO_FORMULA,
    Broadcast,
    FormulaOp,
    MatMul,
    OneHot,
    Pick,
    Reshaped,
    Sigmoid,
    Softmax,
    Transposed,
    _Generic,
    _GenericOp,
    _sym,
)
from .printers import TeXPrinter, TextPrinter
from .rewrite import hand_form

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
        """The rewrites into hand form (``rewrite.hand_form``)."""
        return hand_form(e, self.tensors)


def _prepare(outputs, names, optimize):
    """Optimise outputs and named nodes together, so the named nodes are found in them."""
    named = list(names.values())
    nodes = list(outputs) + named
    if optimize:
        from ..passes import optimize as run

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
