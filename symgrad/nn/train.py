"""``fit``: the lecture's minibatch training loop, and the ``History`` it returns.

The slide's loop, with one compiled value-and-gradient function::

    while True:
        data_batch = sample_training_data(data, 256)            # a shuffled minibatch
        weights_grad = evaluate_gradient(loss_fun, data_batch, weights)
        weights += - step_size * weights_grad                   # optimizer.step(grads)

``fit(loss, params, data, optimizer, epochs)`` runs it for ``epochs`` epochs: each epoch is
a fresh shuffle of the rows of ``data`` cut into batches of ``batch_size``
(``sg.nn.optim.minibatches``), one ``optimizer.step`` per batch, and
``optimizer.next_epoch()`` at the end (so a schedule sees the epoch).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..compile import compile as compile_graph
from ..compile import value_and_grad
from ..errors import ArgumentError, ShapeError, SymgradError
from ..ir import Node
from .optim import Optimizer, minibatches

__all__ = ["History", "TrainingError", "fit"]


class TrainingError(SymgradError, ValueError):
    """The loss or a gradient became NaN or infinite during ``fit``.

    ``epoch`` and ``step`` (within the epoch) say where; ``history`` holds the epochs done.
    """

    def __init__(self, message, epoch=None, step=None, history=None):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, history


@dataclass
class History:
    """What ``fit`` recorded, one entry per epoch.

    - ``loss``: the mean of the epoch's minibatch losses, weighted by batch size (each
      computed before that batch's update: for a ``mean`` loss, the average loss over the
      epoch's examples as training saw them);
    - ``val_loss``: the loss on ``val_data`` after the epoch (if given);
    - ``train_accuracy``, ``val_accuracy``: the share of rows whose highest score is at the
      label, after the epoch (if ``scores`` was given);
    - ``lr``: the rate the epoch ran at; ``seconds``: its wall-clock time.
    """

    epochs: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    steps: int = 0
    # the unfinished epoch's loss so far (sum of value * rows, rows), for fit(resume=...)
    partial: tuple = field(default=(0.0, 0), repr=False)

    def plot(self, path=None, title=None):
        """Loss (log scale) and, if recorded, accuracy by epoch; saved to ``path`` if given.

        Returns the matplotlib figure (matplotlib is the optional extra ``symgrad[plot]``).
        """
        plt = _pyplot()
        has_accuracy = bool(self.train_accuracy or self.val_accuracy)
        fig, axes = plt.subplots(
            1, 2 if has_accuracy else 1, figsize=(9 if has_accuracy else 5, 3.4)
        )
        axes = np.atleast_1d(axes)
        ax = axes[0]
        ax.plot(self.epochs, self.loss, label="training (minibatches)")
        if self.val_loss:
            ax.plot(self.epochs, self.val_loss, label="validation")
        ax.set(xlabel="epoch", ylabel="loss", title="loss")
        if all(v > 0 for v in self.loss + self.val_loss):
            ax.set_yscale("log")
        ax.legend()
        if has_accuracy:
            ax = axes[1]
            if self.train_accuracy:
                ax.plot(self.epochs, self.train_accuracy, label="training")
            if self.val_accuracy:
                ax.plot(self.epochs, self.val_accuracy, label="validation")
            ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
            ax.legend()
        for ax in axes:
            ax.grid(alpha=0.3)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig

    def __repr__(self):
        last = f", loss {self.loss[-1]:.4g}" if self.loss else ""
        if self.val_accuracy:
            last += f", val accuracy {self.val_accuracy[-1]:.2%}"
        return f"<History {len(self.epochs)} epochs, {self.steps} steps{last}>"


def _pyplot():
    try:  # matplotlib picks its backend (Agg without a display, inline in a notebook)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("History.plot needs matplotlib: pip install 'symgrad[plot]'") from None
    return plt


def _rows(what, data):
    """``data`` as a dict of arrays with one common number of rows; that number."""
    if not isinstance(data, Mapping) or not data:
        raise ArgumentError(f"fit: {what} must be a non-empty dict input name -> array")
    arrays = {k: v if _is_dask(v) else np.asarray(v) for k, v in data.items()}
    lengths = {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items()}
    first = next(iter(lengths))
    for k, n in lengths.items():
        if n is None:
            raise ShapeError(f"fit: {what}[{k!r}] is a scalar; every entry needs rows to sample")
        if n != lengths[first]:
            raise ShapeError(
                f"fit: {what}[{k!r}] has {n} rows but {what}[{first!r}] has {lengths[first]}"
            )
    return arrays, lengths[first]


def _is_dask(value):
    # a Dask array (data on a cluster: see sg.dask), told apart without importing Dask
    return type(value).__module__.startswith("dask.")


def _progress(progress, total):
    """A tqdm bar over ``total`` steps, or None: off when asked or when stderr is not a
    terminal (``progress=None``), and when tqdm is not installed."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None  # the bar is optional: symgrad[train] installs tqdm
    return tqdm(total=total, unit="step", file=sys.stderr, leave=True, dynamic_ncols=True)


def _accuracy(predict, arrays, labels):
    scores = predict(**{k: arrays[k] for k in predict.input_names})
    return float(np.mean(np.argmax(scores, axis=-1) == arrays[labels]))


def fit(
    loss,
    params,
    data,
    optimizer,
    epochs,
    batch_size=256,
    seed=0,
    *,
    scores=None,
    labels=None,
    val_data=None,
    progress=None,
    client=None,
    resume=None,
    backend="numba",
    **options,
):
    """Train: minimise ``loss`` over minibatches of ``data``, updating ``optimizer.params``.

    - ``loss``: a scalar graph; ``params``: a dict name -> parameter tensor, the same names
      as ``optimizer.params`` (name -> NumPy array, updated in place);
    - ``data``: a dict input tensor name -> array, every array with the same number of rows;
      each step takes ``batch_size`` rows of each (the last batch of an epoch is smaller);
    - ``seed``: the shuffles come from ``np.random.default_rng(seed)``: the same seed, data
      and initial values give the same run, bit for bit;
    - ``scores`` (a graph of shape ``(N, C)``) and ``labels`` (the labels tensor or its name
      in ``data``): record training (and ``val_data``) accuracy after each epoch;
    - ``val_data``: a dict like ``data``, evaluated after each epoch (loss, accuracy);
    - ``progress``: a tqdm progress bar on stderr; ``None`` (default) shows it when stderr
      is a terminal, ``False`` never, ``True`` always (if tqdm is installed);
    - ``backend`` and ``options`` go to ``sg.value_and_grad`` (compiled once, for the run);
    - Dask arrays in ``data`` (chunked along their rows) train on a Dask cluster (``client``,
      default the current one; ``sg.dask``): each step's minibatch is sampled as above,
      across chunks, so a run does not depend on the number of workers; the chunks'
      gradients are combined exactly and the parameters, updated here, are scattered to the
      workers once per step.  If a step fails on the cluster, ``fit`` raises a
      ``TrainingError`` with the parameters as after the last completed step;
    - ``resume``: the ``history`` of such an error (``error.history``): with the same other
      arguments, ``fit`` goes on from the step after the last completed one, as if it had
      not stopped (the same minibatches; the optimiser keeps its own state).

    If the loss or a gradient is NaN or infinite, ``fit`` stops with a ``TrainingError``
    naming the epoch and step (both from 0); the parameters are left as they were before
    that step.  Returns a :class:`History`.

    >>> import numpy as np, symgrad as sg
    >>> X, y = sg.tensor("X", ("N", 2)), sg.tensor("y", ("N",), dtype="int64")
    >>> model = sg.nn.Linear(2, 2)
    >>> scores = model(X)
    >>> loss = sg.losses.softmax_cross_entropy(scores, y)
    >>> values = model.init(seed=0)
    >>> rng = np.random.default_rng(0)
    >>> data = {"X": rng.normal(size=(200, 2)), "y": rng.integers(0, 2, 200)}
    >>> data["X"][:, 0] += 3 * data["y"]                       # separable along x0
    >>> history = sg.nn.fit(loss, model.params, data, sg.nn.optim.SGD(values, lr=0.5),
    ...                     epochs=5, batch_size=32, scores=scores, labels=y, backend="numpy")
    >>> history.train_accuracy[-1] > 0.9, len(history.loss), history.steps
    (True, 5, 35)
    """
    if not isinstance(params, Mapping) or not params:
        raise ArgumentError("fit: params must be a non-empty dict name -> parameter tensor")
    for key, tensor in params.items():
        if not isinstance(tensor, Node) or tensor.op.leaf != "input":
            raise ArgumentError(f"fit: params[{key!r}] must be an input tensor, got {tensor!r}")
    if not isinstance(optimizer, Optimizer):
        raise ArgumentError(f"fit: optimizer must be a sg.nn.optim optimiser, got {optimizer!r}")
    if list(optimizer.params) != list(params):
        raise ArgumentError(
            f"fit: the optimizer's parameters {list(optimizer.params)} must be params' names "
            f"{list(params)}, in the same order"
        )
    for name in ("epochs", "batch_size"):
        value = {"epochs": epochs, "batch_size": batch_size}[name]
        low = 0 if name == "epochs" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ArgumentError(f"fit: {name} must be an integer >= {low}, got {value!r}")
    arrays, n = _rows("data", data)
    val_arrays = _rows("val_data", val_data)[0] if val_data is not None else None
    if isinstance(labels, Node):
        labels = labels.name
    if scores is not None and labels not in arrays:
        raise ArgumentError(
            f"fit: with scores, labels must name an entry of data {list(arrays)}, got {labels!r}"
        )
    if scores is not None and val_arrays is not None and labels not in val_arrays:
        raise ArgumentError(f"fit: val_data has no labels {labels!r}; it has {list(val_arrays)}")

    step = value_and_grad(loss, dict(params), backend, **options)
    predict = compile_graph(scores, backend, **options) if scores is not None else None
    weights = {params[k].name: w for k, w in optimizer.params.items()}  # by tensor name
    failures = ()
    if any(_is_dask(a) for a in arrays.values()):
        from .. import dask as sg_dask  # the optional extra, only for data on a cluster

        if val_arrays is not None and any(map(_is_dask, val_arrays.values())):
            raise ArgumentError("fit: val_data must be NumPy arrays (it is evaluated here)")
        run = sg_dask.Training(step, arrays, weights, client)
        failures = (sg_dask.DistributedError,)
    else:

        def run(rows):
            return step(**{k: a[rows] for k, a in arrays.items()}, **weights)

    rng = np.random.default_rng(seed)
    history = History() if resume is None else resume
    steps_per_epoch = math.ceil(n / batch_size)
    done = len(history.epochs)  # resuming: replay the shuffles of the epochs done
    for _ in range(done):
        minibatches(n, batch_size, rng)
    bar = _progress(progress, epochs * steps_per_epoch)
    if bar is not None:
        bar.update(history.steps)
    try:
        for _ in range(epochs - done):
            epoch, started, (total, count) = optimizer.epoch, time.perf_counter(), history.partial
            skip = history.steps - len(history.epochs) * steps_per_epoch
            if not skip:
                history.lr.append(optimizer.lr)
            for index, rows in enumerate(minibatches(n, batch_size, rng)):
                if index < skip:
                    continue
                try:
                    value, grads = run(rows)
                except failures as exc:
                    raise TrainingError(
                        f"fit: step {index} of epoch {epoch} failed on the cluster ({exc}); the "
                        "parameters are as after the last completed step, and "
                        "fit(..., resume=error.history) goes on from there",
                        epoch,
                        index,
                        history,
                    ) from exc
                bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
                if not math.isfinite(value) or bad:
                    what = (
                        f"the loss is {value}"
                        if not math.isfinite(value)
                        else (f"the gradient of {bad[0]!r} is not finite (loss {value:.6g})")
                    )
                    raise TrainingError(
                        f"fit: {what} at epoch {epoch}, step {index} of the epoch "
                        f"(step {history.steps} of the run); the parameters are as they were "
                        f"before this step. A smaller learning rate may help.",
                        epoch,
                        index,
                        history,
                    )
                optimizer.step(grads)
                history.steps += 1
                total, count = total + value * len(rows), count + len(rows)
                history.partial = (total, count)
                if bar is not None:
                    bar.update(1)
            history.epochs.append(epoch)
            history.partial = (0.0, 0)
            history.loss.append(total / count if count else math.nan)
            if val_arrays is not None:
                history.val_loss.append(step(**val_arrays, **weights)[0])
            if predict is not None:
                history.train_accuracy.append(
                    run.accuracy(predict, labels)
                    if failures
                    else _accuracy(predict, {**arrays, **weights}, labels)
                )
                if val_arrays is not None:
                    history.val_accuracy.append(
                        _accuracy(predict, {**val_arrays, **weights}, labels)
                    )
            history.seconds.append(time.perf_counter() - started)
            if bar is not None:
                shown = {"epoch": epoch, "loss": f"{history.loss[-1]:.4g}"}
                if history.val_accuracy:
                    shown["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
                bar.set_postfix(shown)
            optimizer.next_epoch()
    finally:
        if bar is not None:
            bar.close()
    return history
