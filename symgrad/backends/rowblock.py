"""Which nodes of a kernel can run one block of rows at a time, for the row-blocked schedule.

A loss over a batch reads its data matrix ``X`` (rows: the batch dim ``N``) twice: the
scores ``X @ W`` in the forward pass and the weight gradient ``X.T @ G`` in the backward
pass.  When ``X`` is larger than the cache, each read comes from memory: on the linear
classifiers (``X`` 500 x 3073) that is most of the time.  Row by row the two reads need not
be apart: the scores, the loss terms and ``G`` of a block of rows depend only on those rows
(and on the parameters), and ``X.T @ G`` is a sum over rows, so

    for each block of rows:  S_b = X_b @ W;  ...;  G_b = ...;  dW += X_b.T @ G_b

reads each row of ``X`` once, while it is in cache.  :func:`plan` finds the batch dim and
gives every node of a kernel its place in that schedule:

========  =================================================================================
``PRE``   does not depend on the rows: computed once, before the loop over blocks
``ROW``   row ``i`` depends on row ``i`` of its inputs only (``batch.RULES`` decides, as
          for chunks of a Dask batch): computed per block, with the block's rows only
``ACC``   a sum over the rows of ``ROW`` values (a ``sum`` over the batch axis, or a
          matmul contracting it): its total is allocated before the loop, each block adds
          its rows' share
``POST``  needs a total or the whole batch (reads an ``ACC`` value, a max over the rows,
          ...): computed after the loop, from whole arrays
========  =================================================================================

A sum accumulates row after row in the same order as without blocks, so
its value is the same bit for bit; a matmul adds the blocks' products in turn, which rounds
differently from one product over all rows (the values agree to rounding).

The plan is made only where it pays: a matmul per row (``X_b @ W``) and one summing over
the rows (``X_b.T @ G``), no value of the rows needed whole after the loop (an output per
row), every argument with the batch dim has it first, once (so a block of rows is a
contiguous slice ``X[r0:r1]``), and no product per row reads another's result: a model
without hidden layers.  A linear model does a few operations per element of ``X``, so its
time is reading ``X``, and reading it once halves it (blocked / unblocked 0.54 on the
linear classifiers of ``benchmarks/run.py``).  A hidden layer's product ``h_b @ W2`` is as
much arithmetic per row again: the kernel is bound by its products, not by reading ``X``,
and blocks gained little (0.95-1.01 on MLPs of 1 to 20 hidden layers, widths 64 to 784,
batches of 16 to 4096 rows) while they cost compile time (0.25 s of ``mlp_act``'s 2.0 s,
0.8 s of a 20-layer MLP's 4.4 s; all on one Xeon core, 2026-12-07).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import batch as batch_kinds
from ..ir import Node
from ..ir.shapes import names_of

PRE, ROW, ACC, POST = "pre", "row", "acc", "post"


@dataclass
class Plan:
    """Where each node of a kernel runs in the row-blocked schedule (module docstring)."""

    batch: str  # the named dim whose rows are blocked
    kind: dict[Node, str]  # node -> PRE, ROW, ACC or POST
    row_args: list[Node]  # kernel arguments with the batch dim (always at axis 0)
    axis: dict[Node, int] = field(default_factory=dict)  # ROW node -> its batch axis

    def nodes(self, kind: str, order: list[Node]) -> list[Node]:
        """The nodes of ``kind`` in ``order`` (topological, so each phase is too)."""
        return [n for n in order if self.kind.get(n) == kind]


def plan(order: list[Node], args: list[Node], outputs: list[Node],
         contracts: Callable[[Node], bool]) -> Plan | None:
    """The row-blocked schedule of a kernel computing ``order`` from ``args``, or None.

    ``contracts(node)`` says whether the backend can add a block's share of a non-``loop``
    node that sums over the rows (a matmul) into a total.  Of the dims leading an argument,
    the batch dim is one with a product per row (``X_b @ W``) and a product summing over
    the rows (``X_b.T @ G``), and the most nodes in blocks."""
    best = None
    for batch in _candidates(args):
        p = _classify(order, args, outputs, batch, contracts)
        if p is None:
            continue
        products = {p.kind[n] for n in order if n.op.loop is None and contracts(n)}
        if {ROW, ACC} <= products and not _hidden_layer(p, order, contracts) and (
            best is None or _inside(p) > _inside(best)
        ):
            best = p
    return best


def _hidden_layer(p: Plan, order: list[Node], contracts) -> bool:
    """Whether a product per row reads, through the rows' values, another one's result
    (``gelu(X_b @ W1) @ W2``): a model with a hidden layer (module docstring)."""
    after: set[Node] = set()  # row values computed from a product's result
    for n in order:
        if p.kind.get(n) != ROW:
            continue
        reads = any(i in after for i in n.inputs)
        product = n.op.loop is None and contracts(n)
        if product and reads:
            return True
        if product or reads:
            after.add(n)
    return False


def _inside(p: Plan) -> int:
    return sum(1 for k in p.kind.values() if k in (ROW, ACC))


def _candidates(args: list[Node]) -> list[str]:
    """Named dims leading an argument, in argument order."""
    out = []
    for n in args:
        if n.ndim and isinstance(n.shape[0], str) and n.shape[0] not in out:
            out.append(n.shape[0])
    return out


def _row_axis(node: Node, batch: str) -> int | None:
    """The axis of ``batch`` in ``node``'s shape if it is there once (else None)."""
    axes = [a for a, d in enumerate(node.shape) if d == batch]
    return axes[0] if len(axes) == 1 else None


def _classify(order, args, outputs, batch, contracts) -> Plan | None:
    for n in order:
        if any(d != batch and batch in names_of(d) for d in n.shape):
            return None  # an expression of the batch dim (N - 1): rows do not line up
    kind: dict[Node, str] = {}
    p = Plan(batch, kind, [n for n in args if batch in n.shape])
    given = set(args)  # inputs, and the saved values a backward kernel receives
    if any(_row_axis(n, batch) != 0 for n in p.row_args):
        return None  # a block of its rows would not be a contiguous slice
    for n in order:
        axis = _row_axis(n, batch)
        has_batch = batch in n.shape
        if n in p.row_args:
            kind[n], p.axis[n] = ROW, 0
            continue
        if n in given or n.op.leaf is not None:  # arguments without the batch dim, constants
            kind[n] = PRE
            continue
        inputs = [kind[i] for i in n.inputs]
        if ACC in inputs or POST in inputs:
            kind[n] = POST
        elif ROW not in inputs:
            # parameters spread along the rows (a broadcast): per block, like the rows;
            # anything else with the batch dim is computed whole
            if not has_batch:
                kind[n] = PRE
            elif n.op.loop == "map" and axis is not None:
                kind[n], p.axis[n] = ROW, axis
            else:
                kind[n] = POST
        else:
            kind[n] = _with_rows(n, [
                batch_kinds.Row(p.axis[i]) if kind[i] == ROW else batch_kinds.PARAM
                for i in n.inputs
            ], batch, contracts)
            if kind[n] == ROW:
                p.axis[n] = axis
    # A value of the rows needed whole (an output per row, the scores a max over the batch
    # reads) would be copied out block by block: an extra pass, for kernels that read X
    # once anyway (a forward pass saving its activations).  Those keep one loop per node.
    readers = {i for n in order if kind[n] == POST for i in n.inputs} | set(outputs)
    if any(kind[n] == ROW and n in readers and n not in p.row_args for n in order):
        return None
    return p


def _with_rows(node: Node, kinds: list, batch: str, contracts) -> str:
    """ROW, ACC or POST for a node reading rows (the inputs' ``kinds`` as ``batch`` has them)."""
    rule = batch_kinds.RULES.get(node.op.name)
    try:
        k = rule(node, kinds, batch) if rule is not None else None
    except batch_kinds.Refused:  # a max over the rows, rows mixed, ...: whole arrays
        return POST
    if isinstance(k, batch_kinds.Row):
        # the block's rows must be the node's own dim there, once (not a relabelled one)
        return ROW if _row_axis(node, batch) == k.axis else POST
    if k == batch_kinds.SUM and (node.op.loop == "reduce" or contracts(node)):
        return ACC
    return POST
