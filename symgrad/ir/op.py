"""What an op is: its name, its rules, and the facts other stages ask instead of its name.

An :class:`Op` is declared once, in the module of ``symgrad/ops/`` that gives it meaning,
next to its constructor (the constructor holds the shape and dtype rule).  A node's ``op``
*is* the op object.  ``Op`` subclasses ``str`` so that a node's op prints and compares as
its name (tests may compare it with a string), but code in ``symgrad/`` asks the op's facts
(``node.op.fresh``, ``node.op.loop``) or compares objects (``node.op is MATMUL``); only the
op definitions and the backends' lowering tables know ops by name.  See docs/design.md,
"The op object".

Every op registers itself in :data:`OPS` when it is created; ``tests/test_ops.py`` walks
every op against every backend's lowering table and every fact.
"""

from __future__ import annotations

OPS: dict[str, Op] = {}

# How an op takes part in a backend's loop groups (one loop nest computing many nodes):
LOOP_KINDS = (
    None,  # computed on its own
    "map",  # one value per element of its own shape, from its inputs' elements (broadcast)
    "reduce",  # accumulates over its input's shape; its value is complete after the loop
)


class Op(str):
    """An op of the IR: ``Op(name, vjp=..., rebuild=..., fresh=..., ...)``.

    Rules:

    * ``vjp(node, g)`` -> one adjoint per input (``None`` where none flows); builds graph
      nodes.  ``None`` for an op with no derivative (then ``differentiable`` is False and
      ``grad`` raises naming the op if a gradient must flow through it).
    * ``rebuild(node, inputs)`` -> the node with the same op and attributes over new
      inputs, through the constructor (so its identities apply).

    Facts:

    * ``fresh``: a backend computes the value into memory of its own (never an input, a
      constant, a view or a read-only broadcast), so a compiled function may hand it out.
    * ``loop``: one of :data:`LOOP_KINDS`.
    * ``labels(node)`` -> ``(input position, class count)`` when the op reads integer
      labels that must be in ``[0, class count)``, else ``None`` (the default).
    * ``indices_below(node)`` -> the dim its integer values are below (``argmax`` along an
      axis of size K gives indices in ``[0, K)``), so they are valid labels for K classes or
      more; default ``None``.
    * ``moves_values``: the value holds only values of its first input, rearranged (a view,
      a copy, a broadcast), so labels passing through it keep their range.
    * ``requires(node)`` -> ``(dim, minimum, reason)`` for each dim known only at call time
      that must be at least ``minimum`` (a max over nothing has no value; a slice must fit);
      the compiled function checks them before running.  Default none.
    * ``binds(node)`` -> ``(dim, size)`` for each named dim the op fixes to a size (a name
      broadcast against a fixed size; docs/design.md, "Dims"); checked at call time.
    * ``leaf``: ``"input"``, ``"const"`` or ``"dim"`` for the leaves, else ``None``.
    * ``scalar_identity``: on scalars the op is the identity (``to_sympy`` looks through).
    * ``stops_gradient``: no gradient flows to the inputs, whatever they are (so an op
      without a derivative below it is no error).
    * ``hot_rows``: each row along the last axis holds exactly one 1, the rest 0 (a one-hot;
      the simplifier sums such rows away).
    """

    def __new__(cls, name: str, **facts):
        if name in OPS:
            raise ValueError(f"op {name!r} is declared twice")
        self = super().__new__(cls, name)
        self.name = name
        self.vjp = facts.pop("vjp")
        self.rebuild = facts.pop("rebuild")
        self.fresh = facts.pop("fresh")
        self.loop = facts.pop("loop", None)
        self.labels = facts.pop("labels", _none)
        self.moves_values = facts.pop("moves_values", False)
        self.indices_below = facts.pop("indices_below", _none)
        self.requires = facts.pop("requires", _nothing)
        self.binds = facts.pop("binds", _nothing)
        self.leaf = facts.pop("leaf", None)
        self.scalar_identity = facts.pop("scalar_identity", False)
        self.hot_rows = facts.pop("hot_rows", False)
        self.stops_gradient = facts.pop("stops_gradient", False)
        if facts:
            raise TypeError(f"unknown facts for op {name!r}: {sorted(facts)}")
        if self.loop not in LOOP_KINDS:
            raise ValueError(f"op {name!r}: loop must be one of {LOOP_KINDS}")
        OPS[name] = self
        return self

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def __reduce__(self):  # an op pickles as a reference to the declared object
        return (OPS.__getitem__, (self.name,))

    # Hashes and compares as its name (a str), so tables may be keyed by either.
    __hash__ = str.__hash__
    __eq__ = str.__eq__


def _none(node):
    return None


def _nothing(node):
    return ()


# the facts, for the test that walks every op against every fact
FACTS = (
    "vjp",
    "rebuild",
    "fresh",
    "loop",
    "labels",
    "indices_below",
    "moves_values",
    "requires",
    "binds",
    "leaf",
    "scalar_identity",
    "hot_rows",
    "stops_gradient",
)


def rebuild(node, inputs):
    """The node with the same op and attributes over ``inputs`` (its identities applied)."""
    if all(a is b for a, b in zip(node.inputs, inputs)):
        return node
    return node.op.rebuild(node, list(inputs))
