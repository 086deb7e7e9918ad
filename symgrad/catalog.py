"""A small graph for every op and loss, for ``symgrad check``.

The cases come from the op tables, so an op added there joins the check:

* every row of the elementwise table (``ops/elementwise.FUNCTIONS``) is applied to small
  tensors: its parameters are tensors, except those in :data:`STATIC` (``alpha``,
  ``lo``, ``hi``: numbers); inputs are mixed-sign values away from kinks and ties, or
  positive ones where the formula is undefined for negatives (``log``, ``sqrt``);
* every other differentiable op of the registry (``ir/op.OPS``) has a case in
  ``_structural()``; one without a case is reported as unchecked (and fails the check,
  so that a new op cannot slip through without one); an op with no derivative (``argmax``)
  is listed as such;
* every loss in ``nn/losses.py`` with each reduction it takes.

>>> names = [c.name for c in cases()]
>>> "ew:sigmoid" in names and "matmul" in names and "loss:multiclass_hinge(mean)" in names
True
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from .ir.op import OPS
from .nn import losses
from .ops import api, core, layout
from .ops import elementwise as ew_ops

# parameters of elementwise formulas that are numbers, not tensors, and their values
STATIC = {"alpha": 0.3, "lo": -1.0, "hi": 1.0}
MIXED = np.array([-1.3, -0.6, 0.7, 1.6])
OTHER = np.array([0.9, -1.1, 1.2, -0.4])


@dataclass
class Case:
    name: str
    f: object = None  # graph (None: no case)
    wrt: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    problem: str | None = ""  # why it cannot be checked (None: it has no derivative)


def _elementwise(name, formula) -> Case:
    if isinstance(formula, type):  # a SymPy function class (exp, log, ...): one argument
        params = ["x"]
    else:
        params = [
            p.name
            for p in inspect.signature(formula).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    tensors = [p for p in params if p not in STATIC]
    nodes = [api.tensor(f"x{i}", (4,)) for i in range(len(tensors))]
    args = [
        ew_ops.number(STATIC[p]) if p in STATIC else ew_ops.sym(tensors.index(p)) for p in params
    ]
    f = core.ew(formula(*args), nodes)
    values = {n.name: v for n, v in zip(nodes, (MIXED, OTHER, MIXED[::-1]))}
    from .compile import compile as compile_

    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(compile_(f, backend="numpy")(**values))):
            values = {p: np.abs(v) + 0.1 for p, v in values.items()}  # log, sqrt: positive
    return Case(f"ew:{name}", f, nodes, values)


def _structural():
    X, W = api.tensor("X", (3, 4)), api.tensor("W", (4, 2))
    v, b = api.tensor("v", (4,)), api.tensor("b", (4,))
    y = api.tensor("y", (3,), dtype="int64")
    rng = np.random.default_rng(0)
    values = {
        "X": rng.permutation(12).reshape(3, 4) / 7 - 0.8,
        "W": rng.standard_normal((4, 2)),
        "v": rng.standard_normal(4),
        "b": rng.standard_normal(4),
        "y": np.array([0, 3, 1]),
    }
    return (
        {
            "sum": (api.sum(X, axis=1) + api.sum(X), [X]),
            "max": (api.max(X, axis=1), [X]),  # distinct values: no ties
            "matmul": (X @ W + (X @ v)[:, None] + (v @ W)[None, :], [X, W, v]),
            "transpose": (api.transpose(X) * api.tensor("XT_scale", (4, 3)), [X]),
            "reshape": (api.reshape(X, (2, 6)) * api.tensor("R_scale", (2, 6)), [X]),
            "broadcast_to": (api.broadcast_to(b, (3, 4)) * X, [b, X]),
            "pick": (api.pick(X, y) * api.pick(X * X, y), [X]),
            "one_hot": (api.one_hot(y, 4) * X * X, [X]),
            # the max shift of logsumexp is stopped: the value does not depend on it
            "stop_gradient": (api.logsumexp(X, axis=1), [X]),
            "argmax_mask": (api.max(X * X, axis=0), [X]),  # the max's rule builds the mask
            "ew": (api.exp(X) * api.tanh(X), [X]),
            "slice": (X[1:, ::2] * X[:2, 1::2], [X]),
            "slice_scatter": (
                layout.slice_scatter(X, (1, 0), (1, 1), (4, 5)) * api.tensor("Z", (4, 5)),
                [X],
            ),
            "concatenate": (api.concatenate([X, X * X, 1.0], axis=1), [X]),
            # a broadcast that binds a named dim to a fixed size is relabelled back
            "relabel": (
                core.relabel(api.tensor("L", ("K", 4)), (3, 4)) * X,
                [api.tensor("L", ("K", 4))],
            ),
        },
        dict(
            values,
            XT_scale=rng.standard_normal((4, 3)),
            R_scale=rng.standard_normal((2, 6)),
            Z=rng.standard_normal((4, 5)),
            L=rng.standard_normal((3, 4)),
        ),
    )


def _losses():
    S, T, W = api.tensor("S", (5, 3)), api.tensor("T", (5, 3)), api.tensor("W", (3, 2))
    y = api.tensor("y", (5,), dtype="int64")
    rng = np.random.default_rng(1)
    values = {
        "S": rng.standard_normal((5, 3)),
        "T": rng.standard_normal((5, 3)),
        "W": rng.standard_normal((3, 2)),
        "y": np.array([0, 2, 1, 1, 0]),
    }
    made = {
        "softmax_cross_entropy": lambda r: losses.softmax_cross_entropy(S, y, reduction=r),
        "multiclass_hinge": lambda r: losses.multiclass_hinge(S, y, reduction=r),
        "squared_error": lambda r: losses.squared_error(S, T, reduction=r),
    }
    out = []
    for name, fn in inspect.getmembers(losses, inspect.isfunction):
        if name.startswith("_") or fn.__module__ != losses.__name__:
            continue
        if name == "l2":
            out.append(Case("loss:l2", losses.l2(S, W), [S, W], values))
        elif name in made:
            for r in losses.REDUCTIONS:
                out.append(Case(f"loss:{name}({r})", made[name](r), [S], values))
        else:
            out.append(Case(f"loss:{name}", problem="no case in symgrad/catalog.py"))
    return out


def cases() -> list[Case]:
    """Every case, elementwise rows first, then structural ops, then losses."""
    out = [_elementwise(name, formula) for name, formula in ew_ops.FUNCTIONS.items()]
    table, values = _structural()
    for op in OPS.values():
        if op.leaf:  # no inputs, nothing to send back
            continue
        if not op.differentiable:
            out.append(Case(op.name, problem=None))  # nothing to check: it has no derivative
            continue
        if op not in table:
            out.append(Case(op, problem="no case in symgrad/catalog.py"))
            continue
        f, wrt = table[op]
        used = {n.name for n in _inputs(f)}
        out.append(Case(op, f, wrt, {k: v for k, v in values.items() if k in used}))
    for case in _losses():
        if case.f is not None:
            used = {n.name for n in _inputs(case.f)}
            case.values = {k: v for k, v in case.values.items() if k in used}
        out.append(case)
    return out


def _inputs(f):
    from .ir import inputs_of

    return inputs_of([f])
