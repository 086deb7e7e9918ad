"""Pictures of graphs with Graphviz, in the style of the lecture's computational graphs.

``draw(f)`` writes the graph as DOT: inputs as boxes, computed nodes as ellipses labelled
with their formula over their inputs' names (``q = x + y``) and, for tensors, their shape.
With ``values`` each wire carries the value of the node it leaves (green, above) and, with
``grads=True``, the gradient of ``f`` with respect to it (red, below), as on the slides.
Big graphs (more than :data:`LARGE` nodes) are drawn after fusion: each chain of elementwise
ops is one node.  The picture is rendered by Graphviz's ``dot`` program; without it you get
the DOT source and a message saying so.

>>> import symgrad as sg
>>> x, y, z = sg.symbols("x y z")
>>> d = sg.draw((x + y) * z, values=dict(x=-2.0, y=5.0, z=-4.0), grads=True)
>>> "q = x + y" in d.source and "-12" in d.source
True
"""

from __future__ import annotations

import html
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from .explain import _show, explain
from .formula import formula
from .ir import Node, toposort
from .ir import dtypes as dt
from .ir.shapes import fmt
from .ops.api import as_node

LARGE = 40  # nodes; bigger graphs are drawn with their elementwise chains fused
VALUE_COLOR, GRAD_COLOR = "#1a7f37", "#cf222e"
NO_DOT = (
    "Graphviz's `dot` program was not found, so no picture was rendered; the DOT source is "
    "in .source (install Graphviz: `apt-get install graphviz`, `brew install graphviz`, or "
    "https://graphviz.org/download/)"
)


@dataclass
class Drawing:
    """A drawn graph: ``source`` (DOT), ``path`` (the rendered file, if any), ``message``."""

    source: str
    path: Path | None = None
    message: str = ""

    def __str__(self):
        return self.source

    def graphviz(self):
        """The drawing as a ``graphviz.Source`` (its API: ``.render``, ``.view``, formats);
        needs the ``graphviz`` package (``pip install symgrad[viz]``)."""
        try:
            import graphviz
        except ImportError:
            raise ImportError(
                "Drawing.graphviz() needs the graphviz package: pip install 'symgrad[viz]'"
            ) from None
        return graphviz.Source(self.source)

    def _repr_svg_(self):
        if not shutil.which("dot"):
            return None
        return subprocess.run(
            ["dot", "-Tsvg"], input=self.source.encode(), capture_output=True, check=True
        ).stdout.decode()


def _label(node: Node, names) -> str:
    """``q = x + y`` (plus the shape for a tensor) for a computed node, its name for a leaf."""
    name = names[node]
    if node.name is not None or not node.inputs:
        text = name if node.name is not None else formula(node, optimize=False).text
    else:
        by_name = {names[i]: i for i in node.inputs if i in names}
        body = formula(node, names=by_name, optimize=False, cse=False, define_names=False).text
        text = f"{name} = {body}"
    if node.shape:
        text += f"\n{node.dtype}{fmt(node.shape)}"
    return text


def _html(text: str) -> str:
    return "<br/>".join(html.escape(line) for line in text.split("\n"))


def _wire(value, grad) -> str:
    parts = []
    if value is not None:
        parts.append(f'<font color="{VALUE_COLOR}">{html.escape(_show(value, 2))}</font>')
    if grad is not None:
        parts.append(f'<font color="{GRAD_COLOR}">{html.escape(_show(grad, 2))}</font>')
    return "<" + "<br/>".join(parts) + ">" if parts else ""


def draw(f, values=None, grads=False, path=None, wrt=None, collapse=None, names=None) -> Drawing:
    """Draw the graph of ``f`` (see the module docstring).

    ``values``: inputs by name, to show forward values (and with ``grads=True`` the
    gradient of the scalar ``f`` along every wire); ``path``: a file to render to (its
    suffix is the format: ``.png``, ``.svg``, ``.pdf``; ``.dot`` writes the source);
    ``collapse``: fuse elementwise chains (default: when the graph has more than
    :data:`LARGE` nodes); ``names``: ``{name: node}`` for intermediate nodes.
    """
    f = as_node(f)
    if collapse is None:
        collapse = len(toposort([f])) > LARGE
    if collapse:
        from .passes import fuse, simplify

        (f,) = fuse(simplify([f]))
    node_values, node_grads = {}, {}
    if values is not None and f.shape == () and dt.is_float(f.dtype):
        e = explain(f, wrt, names=names, **values)
        node_names, node_values = e.names, dict(e.values)
        for n in toposort([f]):
            if n.name is not None and n.name in values:
                node_values[n] = values[n.name]
        if grads:
            node_grads = {s.node: s.upstream for s in e.steps}
            node_grads.update({n: e.grads[n.name] for n in node_names if n.name in e.grads})
    else:
        if grads:
            raise ValueError("grads=True needs values and a scalar float f")
        from .explain import _names

        node_names = _names(f, toposort([f]), dict(names or {}), "f")
        if values is not None:
            from .compile import compile as compile_

            nodes = [n for n in toposort([f]) if n.inputs]
            needed = {n.name for n in toposort([f]) if n.name is not None}
            for n, v in zip(
                nodes,
                compile_(nodes, backend="numpy")(
                    **{k: v for k, v in values.items() if k in needed}
                ),
            ):
                node_values[n] = v
    order = toposort([f])
    # inputs first, by name (x above y above z, as on the slides), then in computing order
    order = sorted((n for n in order if n.name is not None), key=lambda n: n.name) + [
        n for n in order if n.name is None
    ]
    ids = {n: f"n{i}" for i, n in enumerate(order)}
    names_all = {n: node_names.get(n) or _leaf_name(n) for n in order}
    lines = [
        "digraph symgrad {",
        '  rankdir=LR; bgcolor="white";',
        '  node [fontname="Helvetica", fontsize=12]; edge [fontname="Helvetica", fontsize=10];',
    ]
    for n in order:
        shape = "box" if n.name is not None else ("plaintext" if not n.inputs else "ellipse")
        lines.append(f"  {ids[n]} [shape={shape}, label=<{_html(_label(n, names_all))}>];")
    for n in order:
        for i in sorted(dict.fromkeys(n.inputs), key=order.index):
            label = _wire(node_values.get(i), node_grads.get(i))
            lines.append(f"  {ids[i]} -> {ids[n]}" + (f" [label={label}];" if label else ";"))
    out_label = _wire(node_values.get(f), 1.0 if node_grads else None)
    lines.append("  out [shape=point, width=0.05];")
    lines.append(f"  {ids[f]} -> out" + (f" [label={out_label}];" if out_label else ";"))
    lines.append("}")
    drawing = Drawing("\n".join(lines) + "\n")
    return _render(drawing, path)


def _leaf_name(node: Node) -> str:
    return formula(node, optimize=False).text


def _render(drawing: Drawing, path) -> Drawing:
    if path is None:
        if not shutil.which("dot"):
            drawing.message = NO_DOT
        return drawing
    path = Path(path)
    if path.suffix == ".dot":
        path.write_text(drawing.source)
        drawing.path = path
        return drawing
    if not shutil.which("dot"):
        fallback = path.with_suffix(".dot")
        fallback.write_text(drawing.source)
        drawing.path, drawing.message = fallback, NO_DOT + f"; wrote {fallback}"
        warnings.warn(drawing.message, stacklevel=3)
        return drawing
    fmt_ = path.suffix.lstrip(".") or "png"
    subprocess.run(
        ["dot", f"-T{fmt_}", "-o", str(path)],
        input=drawing.source.encode(),
        check=True,
        capture_output=True,
    )
    drawing.path = path
    return drawing


__all__ = ["draw", "Drawing"]
