"""The backward pass as the lecture draws it: node by node, upstream times local gradient.

``explain(f, wrt, **values)`` walks the graph of ``f`` as built (not optimised: the nodes
are the ones the user wrote), in reverse order from ``f``, and records for each node its
formula and forward value, the upstream gradient ``∂f/∂node`` (the sum of what its users
sent back), and for each input the local gradient and the product sent to that input.  The
rules are the ones ``sg.grad`` uses (each op's ``vjp``), evaluated with the NumPy
interpreter, so the products that reach an input add up to its gradient.

For the slide's ``f = (x + y) * z`` at ``x=-2, y=5, z=-4``::

    f = q·z = -12
        ∂f/∂q = z = -4
        ∂f/∂z = q = 3
    q = x + y = 3
        ∂q/∂x = 1, ∂q/∂y = 1
        ∂f/∂x = ∂f/∂q · ∂q/∂x = -4 · 1 = -4
        ∂f/∂y = ∂f/∂q · ∂q/∂y = -4 · 1 = -4

Intermediate nodes are called ``q, r, s, ...`` in the order they are computed (``names``
gives them your names); tensors show their shapes and a few numbers.  An elementwise node
has a local gradient (a formula of its inputs); a structural node (matmul, sum, pick, ...)
sends back a rule applied to the upstream gradient (``∂f/∂W = Xᵀ · ∂f/∂S``).

>>> import symgrad as sg
>>> x, y, z = sg.symbols("x y z")
>>> e = sg.explain((x + y) * z, [x, y, z], x=-2.0, y=5.0, z=-4.0)
>>> e.grads
{'x': -4.0, 'y': -4.0, 'z': 3.0}
>>> [(s.name, s.value) for s in e.steps]
[('f', -12.0), ('q', 3.0)]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .autodiff.reverse import on_gradient_path
from .errors import ArgumentError, GraphError
from .formula import formula
from .ir import Node, toposort
from .ir import dtypes as dt
from .ir.shapes import fmt
from .ops import api
from .ops.core import constant, ew
from .ops.elementwise import partial, sym
from .tables import render

INTERMEDIATE_NAMES = "qrstuvpabcdeghkmn"
SHOWN = 3  # numbers shown of a tensor


@dataclass
class Term:
    """What a node sends back to one of its inputs."""

    input: str
    rule: str  # the contribution as a formula of the upstream gradient (∂f/∂q·z)
    value: object  # the contribution's value
    local: str | None = None  # an elementwise node's local gradient ∂node/∂input (z)
    local_value: object = None
    rule_latex: str = ""
    local_latex: str | None = None
    only: bool = True  # the input's only user: what it gets is its whole gradient


@dataclass
class Step:
    """One node of the backward pass."""

    name: str
    formula: str
    value: object
    shape: tuple
    upstream: object  # ∂f/∂node, the sum of the parts
    parts: list = field(default_factory=list)  # [(user's name, value)] that make the upstream
    terms: list[Term] = field(default_factory=list)
    formula_latex: str = ""
    node: Node | None = field(default=None, repr=False)


def _show(value, shown=SHOWN) -> str:
    """A number as the slide writes it, or a tensor as its shape and first few numbers."""
    a = np.asarray(value)
    if a.ndim == 0:
        return f"{float(a):.6g}" if a.dtype.kind == "f" else str(a.item())
    flat = a.ravel()
    numbers = ", ".join(f"{float(v):.4g}" for v in flat[:shown])
    return f"{fmt(a.shape)} [{numbers}{', …' if flat.size > shown else ''}]"


def _tex_number(value) -> str:
    a = np.asarray(value)
    if a.ndim:
        return r"\text{" + _show(a).replace("…", r"\dots") + "}"
    return _show(a)


def _d(f: str, x: str) -> str:
    return f"∂{f}/∂{x}"


def _tex_d(f: str, x: str) -> str:
    return rf"\frac{{\partial {f}}}{{\partial {x}}}"


@dataclass
class Explanation:
    """The steps of a backward pass; ``str()`` is the slide's text, ``_repr_latex_`` its
    LaTeX, ``table()`` a terminal table (rich when installed)."""

    output: str
    steps: list[Step]
    grads: dict  # wrt name -> value
    forward: list = field(default_factory=list)  # [(name, formula, value)] in forward order
    names: dict = field(default_factory=dict, repr=False)  # node -> name
    values: dict = field(default_factory=dict, repr=False)  # node -> forward value

    def lines(self) -> list[str]:
        out = ["forward:"]
        out += [f"    {n} = {text} = {_show(v)}" for n, text, v in self.forward]
        out.append("backward (upstream gradient · local gradient):")
        for s in self.steps:
            out.append(f"    {s.name} = {s.formula} = {_show(s.value)}")
            if len(s.parts) > 1:
                total = " + ".join(_show(v) for _, v in s.parts)
                out.append(
                    f"        {_d(self.output, s.name)} = "
                    + " + ".join(f"{_d(self.output, s.name)}|{u}" for u, _ in s.parts)
                    + f" = {total} = {_show(s.upstream)}"
                )
            locals_ = [t for t in s.terms if t.local is not None]
            if locals_ and s.name != self.output:
                out.append(
                    "        " + ", ".join(f"{_d(s.name, t.input)} = {t.local}" for t in locals_)
                )
            for t in s.terms:
                out.append("        " + self._term_text(s, t))
        out.append(
            "gradient: "
            + ", ".join(f"{_d(self.output, k)} = {_show(v)}" for k, v in self.grads.items())
        )
        return out

    def _term_text(self, s: Step, t: Term) -> str:
        lhs = _d(self.output, t.input)
        if s.name == self.output:  # the upstream gradient is 1: the local gradient is all
            rule = t.local if t.local is not None else t.rule
            return f"{lhs} = {rule} = {_show(t.value)}"
        if t.local is not None and np.ndim(t.value) == 0:
            return (
                f"{lhs} = {_d(self.output, s.name)} · {_d(s.name, t.input)} = "
                f"{_show(s.upstream)} · {_show(t.local_value)} = {_show(t.value)}"
            )
        return f"{lhs} {'=' if t.only else '+='} {t.rule} = {_show(t.value)}"

    def __str__(self):
        return "\n".join(self.lines())

    def __repr__(self):
        return f"<symgrad.Explanation of {self.output}: {len(self.steps)} steps>\n{self}"

    def _repr_latex_(self):
        o, rows = self.output, []
        for s in self.steps:
            rows.append(rf"{s.name} &= {s.formula_latex} = {_tex_number(s.value)}")
            for t in s.terms:
                lhs = _tex_d(o, t.input)
                if s.name == o:
                    rule = t.local_latex if t.local_latex is not None else t.rule_latex
                    rows.append(rf"{lhs} &= {rule} = {_tex_number(t.value)}")
                elif t.local_latex is not None and np.ndim(t.value) == 0:
                    rows.append(
                        rf"{lhs} &= {_tex_d(o, s.name)} {_tex_d(s.name, t.input)} = "
                        rf"{_tex_number(s.upstream)} \cdot {_tex_number(t.local_value)} = {_tex_number(t.value)}"
                    )
                else:
                    eq = "=" if t.only else r"\mathrel{+}="
                    rows.append(rf"{lhs} &{eq} {t.rule_latex} = {_tex_number(t.value)}")
        return r"$\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$"

    def table(self, rich=None) -> str:
        """The steps as a table (one row per input of each node)."""
        rows = []
        for s in self.steps:
            for k, t in enumerate(s.terms):
                rows.append(
                    [
                        s.name if k == 0 else "",
                        s.formula if k == 0 else "",
                        _show(s.value) if k == 0 else "",
                        _show(s.upstream) if k == 0 else "",
                        t.input,
                        t.local if t.local is not None else "(rule)",
                        t.rule,
                        _show(t.value),
                    ]
                )
        headers = [
            "node",
            "formula",
            "value",
            f"∂{self.output}/∂node",
            "input",
            "local gradient",
            "sent back",
            "value sent",
        ]
        return render(headers, rows, title=f"backward pass of {self.output}", rich=rich)


def _names(f: Node, order, user_names, output_name):
    taken = {n.name for n in order if n.name is not None} | set(user_names)
    by_node = {node: name for name, node in user_names.items()}
    more = (f"{c}{i}" for i in itertools.count(1) for c in INTERMEDIATE_NAMES)
    pool = itertools.chain(INTERMEDIATE_NAMES, more)
    for node in order:
        if node.name is not None:
            by_node[node] = node.name
        elif node not in by_node and node.inputs and node is not f:
            by_node[node] = _fresh(pool, taken)
    by_node.setdefault(f, output_name)
    return by_node


def _fresh(pool, taken):
    name = next(n for n in pool if n not in taken)
    taken.add(name)
    return name


def _text(graph, names, latex=False):
    """One node's formula over the names of its inputs (no optimisation, nothing shared)."""
    by_name = {name: node for node, name in names.items()}
    result = formula(graph, names=by_name, optimize=False, cse=False, define_names=False)
    return result.latex if latex else result.text


def explain(f, wrt=None, *, names=None, output="f", **values) -> Explanation:
    """The backward pass of the scalar ``f`` at ``values``, step by step (see the module).

    ``wrt``: a tensor or list (default: every float input of ``f``); ``names``: ``{name:
    node}`` for intermediate nodes; ``output``: what ``f`` is called.
    """
    f = api.as_node(f)
    if f.shape != () or not dt.is_float(f.dtype):
        raise GraphError(f"explain needs a scalar float f, got {f.dtype}{fmt(f.shape)}")
    order = toposort([f])
    if wrt is None:
        wrt = sorted(
            (n for n in order if n.name is not None and dt.is_float(n.dtype)), key=lambda n: n.name
        )
    wrt = [wrt] if isinstance(wrt, Node) else list(wrt)
    for w in wrt:
        if not isinstance(w, Node) or w.name is None:
            raise ArgumentError(f"explain differentiates with respect to input tensors, got {w!r}")
    name_of = _names(f, order, dict(names or {}), output)
    depends = on_gradient_path(order, wrt)

    # the reverse sweep of autodiff/reverse.py, keeping each contribution
    sent: dict[Node, list] = {f: [(None, None, constant(1, f.dtype))]}  # (user, index, part)
    adjoint, steps = {}, []
    for node in reversed(order):
        parts = sent.get(node)
        if not parts or node not in depends:
            continue
        g = (
            parts[0][2]
            if len(parts) == 1
            else ew(sum(sym(i) for i in range(len(parts))), [p for *_, p in parts])
        )
        adjoint[node] = g
        if not node.inputs:
            continue
        contributions = node.op.vjp(node, g)
        step = (node, [])
        for i, (x, gx) in enumerate(zip(node.inputs, contributions)):
            if gx is not None and x in depends:
                sent.setdefault(x, []).append((node, i, gx))
                step[1].append((i, x, gx))
        steps.append(step)

    # everything shown is computed in one run of the interpreter
    wanted = {}
    for node, terms in steps:
        wanted[("value", node)] = node
        wanted[("upstream", node)] = adjoint[node]
        for i, _, gx in terms:
            wanted[("sent", node, i)] = gx
            local = _local(node, i)
            if local is not None:
                wanted[("local", node, i)] = local[0]
    for w in wrt:
        wanted[("grad", w)] = adjoint.get(w, api.broadcast_to(constant(0, w.dtype), w.shape))
    for node in order:  # the forward values of nodes that no gradient flows through
        if node.inputs and node not in depends:
            wanted[("value", node)] = node
    keys = list(wanted)
    from .compile import compile as compile_

    needed = {n.name for n in order if n.name is not None} | {w.name for w in wrt}
    missing = sorted(needed - set(values))
    if missing:
        raise ArgumentError(f"explain needs a value for {missing[0]!r} (inputs: {sorted(needed)})")
    computed = compile_([wanted[k] for k in keys], backend="numpy")(
        **{k: v for k, v in values.items() if k in needed}
    )
    value = dict(zip(keys, computed))

    explained = []
    for node, terms in steps:
        name = name_of[node]
        shown = {i: name_of.get(i) for i in node.inputs if i in name_of}
        step = Step(
            name=name,
            formula=_text(node, shown),
            formula_latex=_text(node, shown, latex=True),
            value=value[("value", node)],
            shape=node.shape,
            upstream=value[("upstream", node)],
            node=node,
            parts=[
                (name_of[u] if u is not None else "1", 1.0 if u is None else value[("sent", u, k)])
                for u, k, _ in sent[node]
            ],
        )
        up = api.tensor("explain_upstream", node.shape, node.dtype)
        rules = node.op.vjp(node, up)
        for i, x, _ in sorted(terms, key=lambda t: name_of[t[1]]):
            term_names = {**shown, node: name, up: "1" if node is f else _d(output, name)}
            tex_names = {**shown, node: name, up: "1" if node is f else rf"\overline{{{name}}}"}
            local = _local(node, i)
            loc_names = dict(shown)
            loc_names.setdefault(node, name)
            step.terms.append(
                Term(
                    input=name_of[x],
                    only=len(sent[x]) == 1,
                    rule=_text(rules[i], term_names),
                    rule_latex=_text(rules[i], tex_names, latex=True),
                    value=value[("sent", node, i)],
                    local=_text(local[0], loc_names) if local else None,
                    local_latex=_text(local[0], loc_names, latex=True) if local else None,
                    local_value=value.get(("local", node, i)),
                )
            )
        explained.append(step)
    forward = [
        (
            name_of[n],
            _text(n, {i: name_of[i] for i in n.inputs if i in name_of}),
            value[("value", n)],
        )
        for n in order
        if ("value", n) in value
    ]
    grads = {w.name: _plain(value[("grad", w)]) for w in wrt}
    for s in explained:
        s.value, s.upstream = _plain(s.value), _plain(s.upstream)
    node_values = {k[1]: _plain(v) for k, v in value.items() if k[0] == "value"}
    return Explanation(output, explained, grads, forward, name_of, node_values)


def _plain(v):
    return float(v) if np.ndim(v) == 0 else v


def _local(node: Node, i: int):
    """An elementwise node's local gradient ∂node/∂input_i as a graph (None otherwise)."""
    if "expr" not in node._attr_map or not node.inputs:
        return None
    deriv, uses_output = partial(node.attr("expr"), i, len(node.inputs))
    return (ew(deriv, [node]) if uses_output else ew(deriv, list(node.inputs))), uses_output
