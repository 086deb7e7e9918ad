"""The expression graph: immutable, hash-consed tensor nodes.

Grammar of the IR (every node is one of these; the op set is closed)::

    node   := input(name, shape, dtype)            a value the caller passes
            | const(array)                          an array known when the graph is built
            | dim(name)                             the run-time size of a named dim
            | ew(expr; node*)                       elementwise SymPy expr over x0..xk, broadcast
            | sum(node; axes, keepdims) | max(node; axes, keepdims)
            | argmax_mask(node; axes)               1 at the first maximum along axes
            | matmul(node, node)                    1-D and 2-D operands
            | transpose(node; perm) | reshape(node; shape) | broadcast_to(node; shape)
            | pick(scores, labels)                  scores[..., labels] along the last axis
            | one_hot(labels; num_classes, dtype)
            | stop_gradient(node)                   identity whose derivative is zero

A scalar constant is ``ew`` with no inputs.  Two nodes built from the same op, inputs and
attributes are the *same object* (hash-consing), so common subexpressions are shared from
the start and equality is identity.  The shape and dtype are derived from the rest when the
node is built (``ops/`` holds the rules) and stored for convenience.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache

from ..errors import ArgumentError
from .shapes import Shape, fmt

_table: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_lock = threading.Lock()


def _text(value) -> str:
    """An attribute as text that does not depend on the process (for the digest)."""
    # cached per (type, value): 1, True, 1.0 and sympy.Integer(1) are equal as dict keys
    # but print differently, and the first one seen must not decide the others' text
    return _typed_text(type(value), value)


@lru_cache(maxsize=1 << 16)  # formulas repeat across nodes; printing them is the cost
def _typed_text(kind, value) -> str:
    return getattr(value, "digest_text", None) or repr(value)


@dataclass(frozen=True, eq=False, repr=False)
class Node:
    op: str
    inputs: tuple[Node, ...]
    attrs: tuple[tuple[str, object], ...]
    shape: Shape
    dtype: str
    # a hash of the structure (op, attributes, inputs' digests): the same in every process,
    # so canonical input orders, and the kernels generated from them, are too
    digest: str = field(compare=False)

    # Interned nodes: structurally equal means identical, so identity is equality.
    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)

    def __post_init__(self):
        # attributes by name, for attr(); derived from `attrs`, so not part of identity
        object.__setattr__(self, "_attr_map", dict(self.attrs))

    def attr(self, name: str):
        return self._attr_map[name]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str | None:
        """The name of an ``input`` node (None for other ops)."""
        return self.attr("name") if self.op == "input" else None

    def __repr__(self) -> str:
        if self.op == "input":
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


def intern(op: str, inputs: tuple, attrs: dict, shape: Shape, dtype: str) -> Node:
    """The unique node for ``(op, inputs, attrs)``; built with ``shape`` and ``dtype`` if new.

    Callers (ops/) compute shape and dtype from the same op, inputs and attrs, so they are
    not part of the key.
    """
    attrs_t = tuple(sorted(attrs.items()))
    key = (op, tuple(id(i) for i in inputs), attrs_t)
    with _lock:
        node = _table.get(key)
        if node is None:
            text = repr((op, [i.digest for i in inputs], [(k, _text(v)) for k, v in attrs_t]))
            digest = hashlib.sha1(text.encode()).hexdigest()
            node = Node(op, tuple(inputs), attrs_t, tuple(shape), dtype, digest)
            _table[key] = node
    return node
