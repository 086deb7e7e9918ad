"""Exact fingerprints of graphs: the keys of the warm-start cache.

A node's ``digest`` prints its attributes with SymPy's ``str``, which rounds floats to 15
digits (``0.1`` and ``0.10000000000000002`` print alike); it is a fine hash for ordering and
naming, but not a key under which a compiled result may be reused.  :func:`fingerprint`
writes every attribute exactly instead (SymPy expressions with ``srepr``, whose floats carry
all their digits; constant arrays by their content hash) along with each node's op, inputs,
shape and dtype, so two graphs share a fingerprint only if they are the same graph.

The walk is a loop over the topological order (no recursion), as in ``serialize``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import sympy

from .graph import toposort


# typed, as node._text: 1, 1.0 and True are equal dict keys but must not share a text
@lru_cache(maxsize=1 << 16, typed=True)
def _exact(value) -> str:
    text = getattr(value, "digest_text", None)
    if text is not None:
        return text
    if isinstance(value, sympy.Basic):
        return sympy.srepr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_exact(v) for v in value) + ",)"
    return f"{type(value).__name__}:{value!r}"


def fingerprint(roots, *groups) -> str:
    """A hex digest of the graph of ``roots`` and of which nodes ``roots`` and each further
    list in ``groups`` (e.g. the inputs a function declares) are.

    >>> import symgrad as sg
    >>> x = sg.symbols("x")
    >>> fingerprint([x * 0.1]) == fingerprint([x * 0.10000000000000002])
    False
    >>> fingerprint([x * 0.1]) == fingerprint([x * 0.1])
    True
    """
    roots = list(roots)
    groups = [list(g) for g in groups]
    every = roots + [n for g in groups for n in g]
    position = {}
    h = hashlib.sha256()
    for node in toposort(every):
        position[node] = len(position)
        record = (
            node.op.name,
            tuple(position[i] for i in node.inputs),
            tuple((k, _exact(v)) for k, v in node.attrs),
            node.shape,
            node.dtype,
        )
        h.update(repr(record).encode() + b"\n")
    for group in [roots] + groups:
        h.update(repr([position[n] for n in group]).encode() + b"|")
    return h.hexdigest()
