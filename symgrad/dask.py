"""Data-parallel value and gradients on Dask: the same compiled function, run where the
data is.

``sg.dask.value_and_grad(vg, X=X, y=y, W=W)`` takes the inputs of a compiled
``sg.value_and_grad`` function: Dask arrays chunked along the batch dim (the rows: their
first dim, a named dim such as ``N``) and NumPy arrays or numbers (the parameters, the same
for every chunk).  Each chunk's value and gradients are computed by a Dask task, where the
chunk lives, and combined exactly (``symgrad.batch``):

- a ``sum`` over the batch: the chunks' results are added;
- a ``mean``: each chunk's results are weighted by its share of the rows, then added;
- a sum plus parameter-only terms: added, less the empty-batch value for each extra chunk.

So the result equals the one-process result up to rounding.  A loss whose reduction over
the batch is none of these (a max over rows, a variance, ...) is refused with a
``GraphError`` naming it.  Chunk results are added in a fixed tree in chunk order, so a run
gives the same numbers whatever the number of workers.

The compiled function travels as its graph (``Compiled`` pickles as its recipe) and each
worker process builds it once, loading its kernels from the worker's own kernel cache
(``$SYMGRAD_CACHE_DIR`` there).  Parameters are scattered to the workers once per call,
never embedded in the task graph.  A call returns the whole combined result or raises
:class:`DistributedError`; it never returns a partial gradient.

This module needs the optional extra ``symgrad[dask]`` (``dask[array]`` and
``distributed``); ``import symgrad`` does not import it (``sg.dask`` loads it on first use).
"""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
from distributed import default_client, futures_of

from . import batch as batching
from .compile import Compiled
from .errors import ArgumentError, SymgradError
from .ir import Node

__all__ = ["DistributedError", "Step", "submit", "value_and_grad", "combination_of"]


class DistributedError(SymgradError, RuntimeError):
    """A distributed step failed (a worker died too often, a task raised): no result was
    returned and nothing was updated; the step may be run again."""


# --- what the loss allows --------------------------------------------------------------


def _loss_graph(vg: Compiled) -> Node:
    if vg.recipe is not None and vg.recipe[0] == "value_and_grad":
        return vg.recipe[1][0]
    return vg.outputs[0]


def _wrt_names(vg: Compiled) -> list[str]:
    wrt = vg.recipe[1][1] if vg.recipe is not None else []
    if isinstance(wrt, Node):
        wrt = [wrt]
    elif isinstance(wrt, dict):
        wrt = list(wrt.values())
    return [w.name for w in wrt]


def combination_of(vg: Compiled, batch: str) -> str:
    """How ``vg``'s results on chunks of the batch dim ``batch`` combine: ``"mean"``,
    ``"sum"`` or ``"sum+param"``; raises a ``GraphError`` naming a reduction that does not
    combine (see ``symgrad.batch``)."""
    return batching.analyse(_loss_graph(vg), batch)


# --- flattening the packed results -----------------------------------------------------


def _flatten(result):
    value, grads = result
    if isinstance(grads, dict):
        return [value, *grads.values()]
    if isinstance(grads, list):
        return [value, *grads]
    return [value, grads]


def _unflatten(flat, like):
    value, grads = like
    if isinstance(grads, dict):
        return flat[0], dict(zip(grads, flat[1:]))
    if isinstance(grads, list):
        return flat[0], list(flat[1:])
    return flat[0], flat[1]


def _scalar_or_array(x):
    return float(x) if np.ndim(x) == 0 else np.asarray(x)


# --- the tasks -------------------------------------------------------------------------


def _shipped(vg: Compiled) -> _Pickled:
    return _Pickled(pickle.dumps(vg, protocol=pickle.HIGHEST_PROTOCOL))


class _Pickled(bytes):
    """A pickled Compiled, unpickled inside tasks (in a worker's thread, not its event loop:
    the first unpickling in a process compiles, and a busy event loop misses its
    heartbeats); later unpickling in that process finds it built (``compile._restore``)."""


def _chunk_task(vg, weight, rows, params, chunks):
    """One chunk's weighted value and gradients, flat (runs on a worker)."""
    vg = pickle.loads(vg)
    if rows is not None:
        chunks = {k: v[rows] for k, v in chunks.items()}
    flat = _flatten(vg(**chunks, **params))
    return [weight * v for v in flat]


def _sum_task(*parts):
    """The sum of chunk results, added left to right (a fixed order)."""
    total = parts[0]
    for part in parts[1:]:
        total = [x + y for x, y in zip(total, part)]
    return total


FAN_IN = 8  # chunk results added by one task: fewer tasks (and round trips) than pairs


def _tree_sum(client, parts):
    """Sums of groups of ``FAN_IN`` in a fixed order: the same grouping whatever runs them."""
    while len(parts) > 1:
        groups = [parts[i : i + FAN_IN] for i in range(0, len(parts), FAN_IN)]
        parts = [g[0] if len(g) == 1 else client.submit(_sum_task, *g, pure=False) for g in groups]
    return parts[0]


# --- planning a call -------------------------------------------------------------------


def _split_inputs(vg: Compiled, inputs: dict):
    """(batch dim, Dask inputs rechunked alike, other inputs) checked against ``vg``."""
    if not isinstance(vg, Compiled) or not vg.pack.startswith("value"):
        raise ArgumentError(
            f"sg.dask.value_and_grad takes a function from sg.value_and_grad, got {vg!r}"
        )
    by_name = {n.name: n for n in vg.signature.inputs}
    unknown = sorted(set(inputs) - set(by_name))
    missing = sorted(set(by_name) - set(inputs))
    if unknown or missing:
        raise ArgumentError(
            f"sg.dask.value_and_grad: the inputs are {sorted(by_name)}; "
            f"missing {missing}, unknown {unknown}"
        )
    arrays = {k: v for k, v in inputs.items() if isinstance(v, da.Array)}
    if not arrays:
        raise ArgumentError(
            "sg.dask.value_and_grad needs at least one Dask array (the batch data, chunked "
            "along its first dim)"
        )
    dims = {}
    for name, arr in arrays.items():
        shape = by_name[name].shape
        if arr.ndim != len(shape) or not shape:
            raise ArgumentError(
                f"sg.dask: {name!r} has {arr.ndim} dims, but the tensor has shape {shape}"
            )
        dims[name] = shape[0]
    batch = next(iter(dims.values()))
    if not isinstance(batch, str) or any(d != batch for d in dims.values()):
        raise ArgumentError(
            "sg.dask: the Dask inputs' first dim must be the batch dim, one named dim for all "
            f"of them (as in sg.tensor('X', ('N', 'D'))); here they are {dims}"
        )
    wrt_rows = [n for n in _wrt_names(vg) if n in arrays]
    if wrt_rows:
        raise ArgumentError(
            f"sg.dask: gradients with respect to batch data ({wrt_rows[0]!r}) are not "
            "supported; differentiate with respect to the parameters"
        )
    params = {}
    for name, value in inputs.items():
        if name in arrays:
            continue
        if batch in by_name[name].shape:
            raise ArgumentError(
                f"sg.dask: {name!r} has the batch dim {batch!r}: pass it as a Dask array "
                "chunked like the other batch data"
            )
        params[name] = value
    first = next(iter(arrays.values()))
    rows = first.chunks[0]
    arrays = {
        k: a.rechunk({0: rows, **{i: -1 for i in range(1, a.ndim)}}) for k, a in arrays.items()
    }
    for k, a in arrays.items():
        if a.shape[0] != first.shape[0]:
            raise ArgumentError(
                f"sg.dask: {k!r} has {a.shape[0]} rows, but another batch input has "
                f"{first.shape[0]}"
            )
    return batch, arrays, params


def _scatter(client, values: dict) -> dict:
    """The values on every worker, as a dict of futures (under fresh keys: scattering a dict
    would use its keys, the input names, for every step's data)."""
    names = list(values)
    futures = client.scatter([values[k] for k in names], broadcast=True, hash=False)
    return dict(zip(names, futures))


def _empty_like(arrays) -> dict:
    return {k: np.empty((0,) + a.shape[1:], dtype=a.dtype) for k, a in arrays.items()}


class Step:
    """A distributed value-and-gradient function over fixed Dask inputs.

    ``Step(vg, client, **data)`` persists the Dask arrays on the cluster (their chunks
    stay on the workers between calls) and checks that the loss combines over chunks;
    ``step(params, rows=None)`` computes the value and gradients over all rows (or over the
    global row indices ``rows``, a minibatch) for the parameter values ``params`` (a dict by
    input name), packed as ``vg`` packs them.  ``submit`` returns a :class:`Pending`.
    """

    def __init__(self, vg: Compiled, client=None, **data):
        self.client = client or default_client()
        probe = {k: v for k, v in data.items()}
        names = {n.name for n in vg.signature.inputs}
        for k in names - set(probe):  # parameters come per call: stand-ins for the check
            probe[k] = None
        self.batch, arrays, _ = _split_inputs(vg, probe)
        self.vg = vg
        self.rule = combination_of(vg, self.batch)
        order = list(arrays)
        self.arrays = dict(zip(order, self.client.persist([arrays[k] for k in order])))
        self.param_names = sorted(names - set(arrays))
        self.rows = tuple(self.arrays[next(iter(self.arrays))].chunks[0])
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        futures = {f.key: f for f in futures_of(list(self.arrays.values()))}
        self.blocks = {
            k: [futures[d.key] for d in a.to_delayed().ravel()] for k, a in self.arrays.items()
        }
        self._vg_future = self.client.scatter(_shipped(vg), broadcast=True, hash=False)

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    def submit(self, params: dict, rows=None) -> Pending:
        missing = sorted(set(self.param_names) - set(params))
        unknown = sorted(set(params) - set(self.param_names))
        if missing or unknown:
            raise ArgumentError(
                f"sg.dask: the parameters are {self.param_names}; missing {missing}, "
                f"unknown {unknown}"
            )
        plan = self._plan(rows)
        total = sum(count for _, _, count in plan)
        empty = None
        if self.rule == "sum+param" or total == 0:
            # the value on no rows: the parameter-only terms (and the answer for no rows)
            empty = _flatten(self.vg(**_empty_like(self.arrays), **params))
        if total == 0:
            return Pending(None, empty, self.vg, None)
        scattered = _scatter(self.client, params)
        parts = []
        for c, local, count in plan:
            weight = count / total if self.rule == "mean" else 1.0
            chunks = {k: blocks[c] for k, blocks in self.blocks.items()}
            parts.append(
                self.client.submit(
                    _chunk_task, self._vg_future, weight, local, scattered, chunks, pure=False
                )
            )
        correction = None
        if self.rule == "sum+param" and len(parts) > 1:
            correction = [(len(parts) - 1) * v for v in empty]
        return Pending(_tree_sum(self.client, parts), None, self.vg, correction)

    def __call__(self, params: dict, rows=None, retries: int = 1):
        """The step's result; a failed step is run again ``retries`` times (a step has no
        effect until it returns, so running it again is safe) before DistributedError."""
        for attempt in range(retries + 1):
            try:
                return self.submit(params, rows).result()
            except DistributedError:
                if attempt == retries:
                    raise
                # what was scattered may have been lost with a worker: send it again
                self._vg_future = self.client.scatter(_shipped(self.vg), broadcast=True, hash=False)

    def _plan(self, rows):
        """(chunk, local rows or None for all, row count) for each chunk with rows."""
        if rows is None:
            return [(c, None, n) for c, n in enumerate(self.rows) if n]
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ArgumentError(f"sg.dask: rows must be a 1-D array of row indices, got {rows!r}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise ArgumentError(f"sg.dask: rows must be in [0, {self.n}) for this data")
        chunk_of = np.searchsorted(self.offsets, rows, side="right") - 1
        plan = []
        for c in np.unique(chunk_of):
            local = rows[chunk_of == c] - self.offsets[c]
            plan.append((int(c), local, len(local)))
        return plan


class Pending:
    """A distributed step under way: ``result()`` gives the packed value and gradients."""

    def __init__(self, future, ready, vg, correction):
        self.future, self._ready, self._vg, self._correction = future, ready, vg, correction

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def result(self, timeout=None):
        if self.future is None:
            flat = self._ready
        else:
            try:
                flat = self.future.result(timeout=timeout)
            except SymgradError:
                raise
            except Exception as exc:
                raise DistributedError(
                    f"sg.dask: the distributed step failed ({type(exc).__name__}: {exc}); "
                    "no result was returned and nothing was updated: run the step again"
                ) from exc
        if self._correction is not None:
            flat = [v - c for v, c in zip(flat, self._correction)]
        flat = [_scalar_or_array(v) for v in flat]
        like = (0.0, _like_grads(self._vg))
        value, grads = _unflatten(flat, like)
        return float(value), grads


def _like_grads(vg: Compiled):
    """An empty stand-in with the shape of ``vg``'s gradient packing."""
    if vg.pack == "value_named":
        return dict.fromkeys(vg.keys)
    if vg.pack == "value_grads":
        return []
    return None


def submit(vg: Compiled, *, client=None, **inputs) -> Pending:
    """Start :func:`value_and_grad` without waiting: returns a :class:`Pending`."""
    arrays = {k: v for k, v in inputs.items() if isinstance(v, da.Array)}
    params = {k: v for k, v in inputs.items() if k not in arrays}
    _split_inputs(vg, inputs)  # every check before anything runs
    return Step(vg, client, **arrays).submit(params)


def value_and_grad(vg: Compiled, *, client=None, **inputs):
    """``vg``'s value and gradients over Dask inputs, combined exactly over chunks.

    ``inputs`` are ``vg``'s keywords: Dask arrays chunked along their first dim (the batch
    dim; other dims are put in one chunk) and NumPy arrays or numbers (parameters).  The
    result is packed as ``vg(...)`` packs it.  ``client`` defaults to the current Dask
    client.  Raises ``GraphError`` if the loss does not combine over chunks and
    :class:`DistributedError` if the computation failed twice (it is run once more after a
    failure, such as a worker lost with what was scattered to it).
    """
    arrays = {k: v for k, v in inputs.items() if isinstance(v, da.Array)}
    params = {k: v for k, v in inputs.items() if k not in arrays}
    _split_inputs(vg, inputs)  # every check before anything runs
    return Step(vg, client, **arrays)(params)


# --- training (sg.nn.fit with Dask data) -------------------------------------------------


def is_dask(value) -> bool:
    """Whether ``value`` is a Dask array (without importing Dask for other values)."""
    return isinstance(value, da.Array)


def _correct_task(predict, labels, params, chunks):
    predict = pickle.loads(predict)
    scores = predict(**{k: v for k, v in {**chunks, **params}.items() if k in predict.input_names})
    return int(np.sum(np.argmax(scores, axis=-1) == chunks[labels]))


class Training:
    """What ``sg.nn.fit`` runs on a cluster: minibatch steps over the persisted data.

    ``step(rows)`` is the value and gradients on the global rows ``rows`` (sampled by fit
    across chunks, so a run does not depend on the number of workers), with the current
    values of ``weights`` (a dict updated in place by the optimiser) scattered once per
    step; ``accuracy(predict, labels)`` is the share of rows whose highest score is at the
    label, counted per chunk.
    """

    def __init__(self, vg: Compiled, arrays: dict, weights: dict, client=None):
        self.weights = weights
        self.step_fn = Step(vg, client, **arrays)
        self.client = self.step_fn.client

    def __call__(self, rows):
        return self.step_fn(dict(self.weights), rows=rows)

    def accuracy(self, predict: Compiled, labels: str) -> float:
        step = self.step_fn
        scattered = _scatter(self.client, self.weights)
        model = self.client.scatter(_shipped(predict), broadcast=True, hash=False)
        counts = []
        for c, n in enumerate(step.rows):
            if n:
                chunks = {k: blocks[c] for k, blocks in step.blocks.items()}
                counts.append(
                    self.client.submit(_correct_task, model, labels, scattered, chunks, pure=False)
                )
        try:
            return sum(self.client.gather(counts)) / step.n
        except Exception as exc:
            raise DistributedError(f"sg.dask: counting correct rows failed ({exc})") from exc
