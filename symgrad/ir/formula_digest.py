"""The digest text of a SymPy formula: a hash of its structure, in time linear in its size.

A node's digest (``node.py``) is a hash of its attributes' texts, and an elementwise node's
formula is a SymPy expression.  Printing it with ``str`` costs about 8 µs per term (SymPy's
printers dispatch on the class and sort every sum and product by a recursive key), and a
fused formula of a long chain has hundreds of terms nested a hundred deep: on a 10,000-step
chain that was most of the time the passes spent building nodes.  Here each subexpression
is hashed once, from its class name and its arguments' hashes (a Merkle hash), so the cost
is one small SHA-1 per distinct subexpression.

Conventions (what makes the text the same in every process, and exact):

* a function or operator is its class name (``Mul``, ``Paren``, ``tanh``; an undefined
  function its name) and its arguments in order; the arguments of a sum, a product and
  ``And``/``Or`` are taken as a set (their hashes sorted), so the text does not depend on
  the order SymPy stored them in;
* an atom is its class name and SymPy's own content for equality: a symbol's name and
  assumptions (a ``Const``'s name holds its value's ``repr``), an ``Integer`` or a
  ``Rational`` its integers, a ``Float`` its binary mantissa, exponent and precision
  (exact: 0.1 and 0.10000000000000002 differ, unlike ``str``, which rounds to 15 digits);
* a ``Dummy`` symbol is its name only (its index is a count of this process).

The walk is a loop with an explicit stack (no recursion), so a formula of any depth has a
digest.  Equal formulas (SymPy's ``==``) have equal texts.
"""

from __future__ import annotations

import hashlib

import sympy as sp
from sympy.core.operations import LatticeOp


def _atom_text(atom) -> str:
    if isinstance(atom, sp.Symbol):
        # Symbol's own content: a Dummy's adds a process-wide counter, left out
        content = (atom.name,) if isinstance(atom, sp.Dummy) else sp.Symbol._hashable_content(atom)
    else:
        content = atom._hashable_content()
    return f"{type(atom).__name__}:{content!r}"


def formula_digest(expr: sp.Basic) -> str:
    """A hex digest of ``expr``'s structure (see the module docstring).

    >>> x = sp.Symbol("x0", real=True)
    >>> formula_digest(x + 1) == formula_digest(1 + x)
    True
    >>> formula_digest(x * 0.1) == formula_digest(x * 0.10000000000000002)
    False
    """
    done: dict[int, bytes] = {}  # id of a subexpression (alive inside expr) -> its hash
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if id(e) in done:
            continue
        args = e.args
        if args and not ready:  # its arguments first, then itself again
            stack.append((e, True))
            stack.extend((a, False) for a in args if id(a) not in done)
            continue
        if args:
            parts = [done[id(a)] for a in args]
            if e.is_Add or e.is_Mul or isinstance(e, LatticeOp):
                parts.sort()
            # hashes have a fixed length, so the concatenation is unambiguous
            text = type(e).__name__.encode() + b"(" + b"".join(parts) + b")"
        else:
            text = _atom_text(e).encode()
        done[id(e)] = hashlib.sha1(text).digest()
    return "sympy:" + done[id(expr)].hex()
