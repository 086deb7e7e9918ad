"""The expression graph: immutable, hash-consed tensor nodes.

A node is ``op(inputs; attributes)`` with a shape and a dtype.  The op set is closed: it is
the registry :data:`symgrad.ir.op.OPS`, and each op is declared once in ``symgrad/ops/``
with its constructor, rules and facts (docs/design.md lists them all).  The leaves are
``input`` (a value the caller passes), ``const`` (an array known when the graph is built)
and ``dim`` (the run-time size of a named dim); a scalar constant is ``ew`` with no inputs.

Two nodes built from the same op, inputs and attributes are the *same object*
(hash-consing), so common subexpressions are shared from the start and equality is
identity.  The shape and dtype are derived from the rest when the node is built (the op's
constructor holds the rule) and stored for convenience.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache

import sympy

from ..errors import ArgumentError
from .formula_digest import formula_digest
from .op import Op
from .shapes import Shape, fmt

_table: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_lock = threading.Lock()


# typed: 1, 1.0 and True (or 0 and False) are equal dict keys but print differently; a
# shared entry would make a digest depend on which of them this process printed first
@lru_cache(maxsize=1 << 16, typed=True)  # formulas repeat across nodes
def _text(value) -> str:
    """An attribute as text that does not depend on the process (for the digest); a formula
    by its structure (``formula_digest``: printing a long one is slow)."""
    if isinstance(value, sympy.Basic):
        return formula_digest(value)
    return getattr(value, "digest_text", None) or repr(value)


@dataclass(frozen=True, eq=False, repr=False)
class Node:
    op: Op  # the op object (a str subclass: it prints and compares as its name)
    inputs: tuple[Node, ...]
    attrs: tuple[tuple[str, object], ...]
    shape: Shape
    dtype: str
    # a hash of the structure (op, attributes, inputs' digests): the same in every process,
    # so canonical input orders, and the kernels generated from them, are too
    digest: str = field(compare=False)
    # the longest path from a leaf to this node (a leaf's is 0)
    height: int = field(compare=False)

    # Interned nodes: structurally equal means identical, so identity is equality.  object's
    # own slots (not Python methods): every set and dict of nodes calls them, millions of
    # times in a pass over a graph of 10^5 nodes
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __post_init__(self):
        # attributes by name, for attr(); derived from `attrs`, so not part of identity
        object.__setattr__(self, "_attr_map", dict(self.attrs))

    def attr(self, name: str):
        return self._attr_map[name]

    @property
    def order_key(self) -> tuple[int, str]:
        """The canonical order of nodes where an order is a matter of convention (the
        inputs of an elementwise node): by height, then digest.  Both are the same in every
        process; the height first makes the steps of a chain, which read nodes at the same
        relative heights, number their inputs alike, so they get equal formulas (composed
        by fusion and printed by a backend once) instead of a random permutation each."""
        return (self.height, self.digest)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str | None:
        """The name of an ``input`` node (None for other ops)."""
        return self.attr("name") if self.op.leaf == "input" else None

    def __repr__(self) -> str:
        if self.op.leaf == "input":
            return f"tensor({self.name!r}, {fmt(self.shape)}, {self.dtype})"
        return f"<{self.op} {fmt(self.shape)} {self.dtype} #{self.digest[:6]}>"

    # NumPy must defer to our operators instead of treating a Node as an object scalar.
    __array_ufunc__ = None

    def __bool__(self):
        raise ArgumentError(
            "a symgrad tensor has no truth value when the graph is built; "
            "use sg.where for a data-dependent choice"
        )

    # The arithmetic operators (+, @, <, .T, ...) are attached in ops/api.py, next to their
    # meaning, so that ir/ depends on nothing above it.  `==` stays identity (nodes are
    # dict keys everywhere); sg.equal / sg.not_equal compare elementwise.


def intern(op: Op, inputs: tuple, attrs: dict, shape: Shape, dtype: str) -> Node:
    """The unique node for ``(op, inputs, attrs)``; built with ``shape`` and ``dtype`` if new.

    Callers (ops/) compute shape and dtype from the same op, inputs and attrs, so they are
    not part of the key.
    """
    attrs_t = tuple(sorted(attrs.items()))
    key = (op, tuple(id(i) for i in inputs), attrs_t)
    with _lock:
        node = _table.get(key)
        if node is None:
            # one line each: the op, the inputs' digests (hex), then `name=text` per attribute
            # (attribute texts are reprs or hex: one line each); a join costs half a repr
            lines = [op, *[i.digest for i in inputs], *[f"{k}={_text(v)}" for k, v in attrs_t]]
            text = "\n".join(lines)
            digest = hashlib.sha1(text.encode()).hexdigest()
            height = 1 + max((i.height for i in inputs), default=-1)
            node = Node(op, tuple(inputs), attrs_t, tuple(shape), dtype, digest, height)
            _table[key] = node
    return node
