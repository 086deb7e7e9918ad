"""Exact fingerprints of graphs: the keys of the warm-start cache.

:func:`fingerprint` writes every attribute of every node exactly (formulas by
:func:`~symgrad.ir.formula_digest.formula_digest`, a hash of their structure whose floats
carry all their bits, so ``0.1`` and ``0.10000000000000002`` differ; constant arrays by
their content hash; other values by type and ``repr``) along with each node's op, inputs,
shape and dtype, so two graphs share a fingerprint only if they are the same graph.  (The
formula digest names a ``Dummy`` symbol by its name alone; graphs hold none.)  It is the
key under which a compiled result is reused, so it does not lean on ``node.digest``, whose
text could change for reasons of speed or order.

The walk is a loop over the topological order (no recursion), as in ``serialize``.

:func:`ops_digest` is the other half of a warm-start key: the rules of every declared op
(``ir/op.py``: vjp, rebuild and the facts), functions by their compiled code.  symgrad's own
source is in the key already, but an op declared by the user, or a rule replaced at run time
(a test that patches a vjp to check that a wrong derivative is caught), changes what a
graph compiles to without changing any source file of symgrad.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import sympy

from .formula_digest import formula_digest
from .graph import toposort
from .op import OPS


# typed, as node._text: 1, 1.0 and True are equal dict keys but must not share a text
@lru_cache(maxsize=1 << 16, typed=True)
def _exact(value) -> str:
    text = getattr(value, "digest_text", None)
    if text is not None:
        return text
    if isinstance(value, sympy.Basic):
        return formula_digest(value)  # srepr would do too, at ten times the cost
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


def _rule_text(value) -> str:
    code = getattr(value, "__code__", None)
    if code is None:
        text = repr(value)
        # an object printed with its address would make every process's key differ
        return type(value).__name__ if " at 0x" in text else text
    cells = [_rule_text(c.cell_contents) for c in (value.__closure__ or ())]
    digest = hashlib.sha256(_code_text(code).encode()).hexdigest()[:16]
    return f"{value.__module__}.{value.__qualname__}:{digest}:{cells}"


def _code_text(code) -> str:
    # the parts that say what the code does (marshal's bytes depend on reference counts)
    consts = [_code_text(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return repr((code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars))


# the facts' identities -> (their digest, the facts): rules rarely change, so the digest is
# looked up by identity; the facts are kept so that no id is reused while it is a key
_ops_digests: dict = {}


def ops_digest() -> str:
    """A digest of every declared op's rules and facts, as they are now."""
    facts = tuple((name, tuple(vars(op).items())) for name, op in sorted(OPS.items()))
    identity = tuple((name, tuple(id(v) for _, v in items)) for name, items in facts)
    found = _ops_digests.get(identity)
    if found is None:
        h = hashlib.sha256()
        for name, items in facts:
            for key, value in sorted(items, key=lambda kv: kv[0]):
                h.update(f"{name}.{key}={_rule_text(value)}\n".encode())
        found = _ops_digests[identity] = (h.hexdigest(), facts)
    return found[0]
