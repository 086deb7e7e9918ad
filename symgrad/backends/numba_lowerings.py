"""One lowering per op for the Numba backend (:data:`LOWER`): how a node becomes source.

An entry is a function emitting the node on its own (``_matmul`` calls ``blas.matmul``,
or ``blas.matvec``, ``vecmat`` or ``vecdot`` for a vector; ``pick`` and ``one_hot`` loop
over the labels), or, for the
ops whose ``loop`` fact says they join loop groups, a :class:`Map` or :class:`Reduce` saying
how they compute one element inside a group that :class:`~symgrad.backends.numba_codegen.Kernel` schedules; a
:class:`Product` (matmul) can also add a block's share into a total, for row-blocked kernels.
Each lowering writes through the kernel it is given (``k.emit``, ``k.var``, ``k.loops``).
Labels and windows were checked before the call (``inputs.py``), so kernels index without
bounds checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..ir import Node
from ..ops.layout import offsets
from .numba_printers import CALLS, NP_DTYPES

if TYPE_CHECKING:
    from .numba_codegen import Kernel

def accumulates(node: Node) -> bool:
    """Whether ``node``'s lowering can add its value into a total (a ``Product``; a
    ``Reduction`` accumulates too, but element by element inside its own loop)."""
    return isinstance(LOWER[node.op], Product)


def gathers(node: Node) -> bool:
    """Whether ``node``'s lowering reads single elements of its first input, through
    ``Kernel.element`` (a :class:`Gather`)."""
    return isinstance(LOWER[node.op], Gather)


class Map(NamedTuple):
    """How an op whose ``loop`` fact is "map" lowers: one element inside a loop group, or a
    plain local when its value is a scalar."""

    element: Callable  # (kernel, node, read, depth) -> expression of one element
    scalar: Callable  # (kernel, node) -> emits the scalar value
    calls: Callable = lambda node: False  # node -> its element calls a function (exp, ...)


class Reduce(NamedTuple):
    """How an op whose ``loop`` fact is "reduce" lowers: its initial value and one step of
    accumulation inside the loop over its input."""

    init: Callable  # node -> the initial value (source text)
    accumulate: Callable  # (kernel, node, target, value, depth) -> emits one step
    parallel_safe: Callable  # (node, outer axis) -> whether prange over that axis is safe
    wide: Callable = lambda node: False  # node -> accumulates in float64, rounded at the end


def _wide(node: Node) -> bool:
    """Whether a reduction accumulates in float64: a float32 sum does, and rounds once at
    the end (deterministic, and accurate: 2e7 float32 ones sum to 2e7, not 2**24)."""
    return node.op.loop == "reduce" and LOWER[node.op].wide(node)


def round_wide(k: Kernel, node: Node):
    """A reduction that accumulated in float64 (``_wide``) rounded once to float32."""
    if _wide(node):
        acc = accumulator(k, node)
        cast = f"np.float32({acc})" if node.shape == () else f"ar.astype({acc}, np.float32)"
        k.emit(f"{k.var[node]} = {cast}")


def accumulator(k: Kernel, node: Node) -> str:
    return f"{k.var[node]}_acc" if _wide(node) else k.var[node]


def acc_dtype(node: Node) -> str:
    """The NumPy dtype a reduction accumulates in (source text)."""
    return NP_DTYPES["float64" if _wide(node) else node.dtype]


def allocate(k: Kernel, node: Node):
    """The storage of a loop-group member that is read after its loop."""
    v, dtype = accumulator(k, node), acc_dtype(node)
    if node.op.loop == "reduce":
        init = LOWER[node.op].init(node)
        if node.shape == ():
            k.emit(f"{v} = {dtype}({init})")
        else:
            k.emit(f"{v} = ar.full({k.shape(node.shape)}, {init}, {dtype})")
    else:
        k.emit(f"{v} = ar.empty({k.shape(node.shape)}, {dtype})")


def reduction_slot(k: Kernel, node: Node, idx) -> str:
    """The slot of a reduction that the loop iteration at ``idx`` accumulates into."""
    axes, v = node.attr("axes"), accumulator(k, node)
    if node.shape == ():
        return v
    if node.attr("keepdims"):
        return f"{v}[{', '.join('0' if i in axes else idx[i] for i in range(len(idx)))}]"
    return f"{v}[{', '.join(idx[i] for i in range(len(idx)) if i not in axes)}]"


def _accumulate_sum(k: Kernel, node: Node, target: str, value: str, depth: int):
    k.emit(f"{target} += {value}", depth)


def _accumulate_max(k: Kernel, node: Node, target: str, value: str, depth: int):
    # NaN propagates as in np.max: once the running max is NaN it stays
    k.emit(f"{target} = ar.max_nan({target}, {value})", depth)


def _lowest(node: Node) -> str:
    return "-np.inf" if node.dtype.startswith("float") else "np.iinfo(np.int64).min"


def _sum_parallel_safe(node: Node, outer) -> bool:
    # each iteration of the outer loop writes its own slots unless it sums over that axis
    # into an array (a sum to a scalar is a reduction Numba parallelises)
    return node.shape == () or outer not in node.attr("axes")


# The functions a formula calls (printed as vm.* or math.*), not computed inline: ours,
# SymPy's that print as libm calls, less the ones that are a compare or two (abs, max, ...).
_CALLED = (set(CALLS) | set(PythonCodePrinter._kf)) - {
    "Abs", "Max", "Min", "ceiling", "floor", "isinf", "isnan"
}


def _calls_functions(node: Node) -> bool:
    """Whether an elementwise formula calls a function (exp, erf, sqrt, ..., or a power
    whose exponent is not an integer): the work a vectorised loop saves.  Arithmetic,
    division and selects (``Piecewise``, a ReLU's ``0 if x <= 0 else x``) are not calls."""
    expr = node.attr("expr")
    called = {type(f).__name__ for f in expr.atoms(sp.Function)} & _CALLED
    return bool(called) or any(not p.exp.is_Integer for p in expr.atoms(sp.Pow))


def reduced_axes(node: Node) -> set[int]:
    """The axes of its loop a reduction accumulates along (all, for a scalar result)."""
    return set(range(node.inputs[0].ndim)) if node.shape == () else set(node.attr("axes"))


def _ew_element(k: Kernel, node: Node, read, depth: int) -> str:
    """One element of an ew node, of the node's dtype: a formula over inputs of another
    dtype (a cast, or float32 values in a float64 node) is converted as the NumPy backend
    converts its result, so the group's other members read the node's value, not a wider
    or narrower one (a float32 product of float32 values read as float64 overflows)."""
    expr = k.formula(node, read, depth)
    if node.dtype in ("float64", "float32") and any(x.dtype != node.dtype for x in node.inputs):
        return f"{NP_DTYPES[node.dtype]}({expr})"
    return expr


def _scalar_ew(k: Kernel, node: Node):
    expr = k.formula(node, lambda x: k.var[x], 1)
    k.emit(f"{k.var[node]} = {NP_DTYPES[node.dtype]}({expr})")


def _argmax_mask(k: Kernel, node: Node):
    (x,) = node.inputs
    axes, v = node.attr("axes"), k.var[node]
    kept_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    k.emit(f"{v}_best = ar.full({k.shape(kept_shape)}, -np.inf, {NP_DTYPES[x.dtype]})")
    k.emit(f"{v}_found = ar.zeros({k.shape(kept_shape)}, np.bool_)")
    k.emit(f"{v} = ar.zeros({k.shape(x.shape)}, np.bool_)")
    slot = lambda idx: ", ".join("0" if i in axes else idx[i] for i in range(x.ndim))  # noqa: E731
    idx, depth = k.loops(x.shape, 1, parallel_ok=False)
    s, val = slot(idx), k.index(x, x.shape, idx)
    k.emit(f"{v}_best[{s}] = ar.max_nan({v}_best[{s}], {val})", depth)
    idx, depth = k.loops(x.shape, 1, parallel_ok=False)
    s, val = slot(idx), k.index(x, x.shape, idx)
    k.emit(f"if not {v}_found[{s}] and ({val} == {v}_best[{s}] or {val} != {val}):", depth)
    k.emit(f"{v}[{', '.join(idx)}] = True", depth + 1)
    k.emit(f"{v}_found[{s}] = True", depth + 1)


def _emit_whole(lowering, k: Kernel, node: Node):
    """A lowering called as a function emits the node on its own (its ``whole``)."""
    lowering.whole(k, node)


class Product(NamedTuple):
    """How an op that sums products over an axis lowers (matmul): on its own, or, when that
    axis is the batch dim of a row-blocked kernel, as a total (``rowblock.py``) allocated
    before the loop over blocks, to which each block adds its rows' share."""

    whole: Callable  # (kernel, node) -> emits the node's value
    total: Callable  # (kernel, node) -> emits the total (written by the first block)
    accumulate: Callable  # (kernel, node) -> emits: total += the block's share

    __call__ = _emit_whole


def _operands(k: Kernel, node: Node) -> tuple[str, str]:
    return tuple(
        k.var[x] if x.dtype == node.dtype else f"ar.astype({k.var[x]}, {NP_DTYPES[node.dtype]})"
        for x in node.inputs
    )


def _matmul(k: Kernel, node: Node):
    a, b = _operands(k, node)
    k.emit(f"{k.var[node]} = {_product_call(node)}({a}, {b})")


# blas.py's product of a matrix or vector (ndim 2 or 1) by a matrix or vector: NumPy's own
# gemm, gemv or dot without NumPy's dot glue, which Numba would link into the kernel and
# optimise again
_PRODUCTS = {(2, 2): "matmul", (2, 1): "matvec", (1, 2): "vecmat", (1, 1): "vecdot"}


def _product_call(node: Node) -> str:
    return "bl." + _PRODUCTS[tuple(x.ndim for x in node.inputs)]


def _matmul_total(k: Kernel, node: Node):
    if node.shape == ():
        k.emit(f"{k.var[node]} = {NP_DTYPES[node.dtype]}(0)")
    else:  # (written by the first block: no zeros to fill and read back)
        k.new_array(node, "empty")


def _matmul_add(k: Kernel, node: Node):
    a, b = _operands(k, node)
    if node.shape == ():
        k.emit(f"{k.var[node]} += bl.vecdot({a}, {b})")
    else:  # gemm or gemv into the total, no temporary; the first block writes it
        add = "True" if node in k.filled else "r0 > 0"
        k.emit(f"{_product_call(node)}_add({a}, {b}, {k.var[node]}, {add})")


def _transpose(k: Kernel, node: Node):
    (x,) = node.inputs
    if x.ndim == 2:  # .T is an F-ordered view that BLAS reads without a copy
        k.emit(f"{k.var[node]} = {k.var[x]}.T")
    else:
        k.emit(f"{k.var[node]} = ar.transpose({k.var[x]}, {tuple(node.attr('perm'))})")


def _reshape(k: Kernel, node: Node):
    (x,) = node.inputs
    v, src = k.var[node], k.var[x]
    if x.shape == ():
        k.emit(f"{v} = ar.full({k.shape(node.shape)}, {src}, {NP_DTYPES[node.dtype]})")
    elif node.shape == ():  # the one element of an array of ones
        k.emit(f"{v} = {src}[{', '.join('0' * x.ndim)}]")
    else:
        k.emit(f"{v} = ar.reshape({src}, {k.shape(node.shape)})")


class Gather(NamedTuple):
    """How an op that reads single elements of its first input lowers (pick): through
    ``Kernel.element``, so that an elementwise input read by nothing else is computed at
    those elements only (the picked log-probabilities, not all of them)."""

    whole: Callable  # (kernel, node) -> emits the node's value

    __call__ = _emit_whole


def _pick(k: Kernel, node: Node):
    scores, labels = node.inputs
    v = k.var[node]
    if node.shape == ():  # (of the node's dtype, as an ew scalar is)
        k.emit(f"{v} = {NP_DTYPES[node.dtype]}({k.element(scores, [k.var[labels]], 1)})")
        return
    k.new_array(node, "empty")
    idx, depth = k.loops(node.shape, 1, parallel_ok=True)
    at = ", ".join(idx)
    value = k.element(scores, idx + [f"{k.var[labels]}[{at}]"], depth)
    k.emit(f"{v}[{at}] = {value}", depth)


def _one_hot(k: Kernel, node: Node):
    (labels,) = node.inputs
    v = k.var[node]
    k.new_array(node, "zeros")
    if labels.shape == ():
        k.emit(f"{v}[{k.var[labels]}] = 1")
        return
    idx, depth = k.loops(labels.shape, 1, parallel_ok=True)
    at = ", ".join(idx)
    k.emit(f"{v}[{at}, {k.var[labels]}[{at}]] = 1", depth)


def _slice(k: Kernel, node: Node):
    (x,) = node.inputs
    v = k.var[node]
    k.new_array(node, "empty")
    idx, depth = k.loops(node.shape, 1, parallel_ok=True)
    at = [_strided(k, s, st, i) for s, st, i in zip(node.attr("starts"), node.attr("steps"), idx)]
    k.emit(f"{v}[{', '.join(idx)}] = {k.var[x]}[{', '.join(at)}]", depth)


def _strided(k: Kernel, start, step, i: str) -> str:
    """The index ``start + step * i`` as source (windows were checked before the call)."""
    text = k.size(start)
    if i == "0":
        return text
    return f"{text} + {step} * {i}" if step != 1 else f"{text} + {i}"


def _slice_scatter(k: Kernel, node: Node):
    (g,) = node.inputs
    v = k.var[node]
    k.new_array(node, "zeros")
    idx, depth = k.loops(g.shape, 1, parallel_ok=True)
    at = [_strided(k, s, st, i) for s, st, i in zip(node.attr("starts"), node.attr("steps"), idx)]
    k.emit(f"{v}[{', '.join(at)}] = {k.index(g, g.shape, idx)}", depth)


def _concatenate(k: Kernel, node: Node):
    v, axis = k.var[node], node.attr("axis")
    k.new_array(node, "empty")
    for x, start in zip(node.inputs, offsets(node)):
        idx, depth = k.loops(x.shape, 1, parallel_ok=True)
        at = [_strided(k, start, 1, i) if a == axis else i for a, i in enumerate(idx)]
        k.emit(f"{v}[{', '.join(at)}] = {k.index(x, x.shape, idx)}", depth)


def _argmax(k: Kernel, node: Node):
    # the first maximal index along the axis; a NaN counts as the maximum (np.argmax)
    (x,), (axis,), v = node.inputs, node.attr("axes"), k.var[node]
    kept = k.shape(node.shape or (1,))
    out = f"{v}_at" if node.shape == () else v
    k.emit(f"{out} = ar.zeros({kept}, np.int64)")
    k.emit(f"{v}_best = ar.empty({kept}, {NP_DTYPES[x.dtype]})")
    k.emit(f"{v}_state = ar.zeros({kept}, np.int8)  # 0 unseen, 1 seen, 2 found a NaN")
    idx, depth = k.loops(x.shape, 1, parallel_ok=False)
    rest = [i for a, i in enumerate(idx) if a != axis]
    slot = f"[{', '.join(rest)}]" if rest else "[0]"
    k.emit(f"{v}_val = {k.index(x, x.shape, idx)}", depth)
    k.emit(f"{v}_st = {v}_state{slot}", depth)
    k.emit(
        f"if {v}_st == 0 or ({v}_st == 1 and ({v}_val > {v}_best{slot} or {v}_val != {v}_val)):",
        depth,
    )
    k.emit(f"{v}_best{slot} = {v}_val", depth + 1)
    k.emit(f"{out}{slot} = {idx[axis]}", depth + 1)
    k.emit(f"{v}_state{slot} = 2 if {v}_val != {v}_val else 1", depth + 1)
    if node.shape == ():
        k.emit(f"{v} = {out}[0]")


def _argument(k: Kernel, node: Node):
    """Inputs and constant arrays are the kernel's arguments, named in ``Kernel.source``."""
    raise AssertionError(f"{node!r} is a kernel argument; it is never emitted")


def _dim(k: Kernel, node: Node):
    k.emit(f"{k.var[node]} = {NP_DTYPES[node.dtype]}({k.dims[node.attr('name')]})")


def _identity(k: Kernel, node: Node):
    k.emit(f"{k.var[node]} = {k.var[node.inputs[0]]}")


LOWER = {
    "input": _argument,
    "const": _argument,
    "dim": _dim,
    "ew": Map(
        element=_ew_element,
        scalar=_scalar_ew,
        calls=_calls_functions,
    ),
    "broadcast_to": Map(element=lambda k, n, read, depth: read(n.inputs[0]), scalar=_identity),
    "sum": Reduce(
        init=lambda node: "0",
        accumulate=_accumulate_sum,
        parallel_safe=_sum_parallel_safe,
        wide=lambda node: node.dtype == "float32",
    ),
    "max": Reduce(
        init=_lowest, accumulate=_accumulate_max, parallel_safe=lambda node, outer: False
    ),
    "argmax_mask": _argmax_mask,
    "argmax": _argmax,
    "matmul": Product(whole=_matmul, total=_matmul_total, accumulate=_matmul_add),
    "transpose": _transpose,
    "reshape": _reshape,
    "relabel": _identity,  # the same array: bound sizes were checked before the call
    "slice": _slice,
    "slice_scatter": _slice_scatter,
    "concatenate": _concatenate,
    "pick": Gather(whole=_pick),
    "one_hot": _one_hot,
    "stop_gradient": _identity,
}

