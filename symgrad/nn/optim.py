"""Minibatch SGD with a step-decayed learning rate, the lecture's training recipe.

The course's loop, with the gradient from :func:`symgrad.value_and_grad`::

    while True:
        data_batch = sample_training_data(data, 256)          # minibatches(...)
        weights_grad = evaluate_gradient(loss_fun, data_batch, weights)
        weights += - step_size * weights_grad                 # SGD.step(...)

and step decay: multiply the learning rate by 0.1 at fixed epochs (30, 60 and 90 for a
ResNet).  Epochs count from 0, so the rate drops once ``milestones[0]`` epochs are done::

    opt = SGD({"W": W, "b": b}, lr=0.5, milestones=(8, 12))
    for epoch in range(15):
        for rows in minibatches(len(y), 256, rng):
            loss, grads = vg(X=X[rows], y=y[rows], W=W, b=b)
            opt.step(grads)                                   # W, b change in place
        opt.next_epoch()

Only NumPy and the public ``symgrad`` API are used here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

import symgrad as sg

__all__ = ["SGD", "minibatches", "step_decay"]


def step_decay(lr, epoch, milestones=(30, 60, 90), factor=0.1):
    """The learning rate at ``epoch``: ``lr`` times ``factor`` once per milestone reached.

    Epochs count from 0; ``epoch == m`` is the first epoch after ``m`` full epochs, and
    runs at the reduced rate (PyTorch's ``MultiStepLR`` convention).

    >>> [f"{step_decay(0.1, epoch):g}" for epoch in (0, 29, 30, 59, 60, 90, 200)]
    ['0.1', '0.1', '0.01', '0.01', '0.001', '0.0001', '0.0001']
    >>> step_decay(0.8, 5, milestones=(2, 4), factor=0.5)
    0.2
    """
    for milestone in milestones:
        if epoch >= milestone:
            lr *= factor
    return lr


def minibatches(n, batch_size, rng):
    """Row indices of one epoch: a fresh shuffle of ``range(n)`` in slices of ``batch_size``.

    Every index appears exactly once; the last batch is smaller when ``batch_size`` does
    not divide ``n``.  ``rng`` is a ``np.random.Generator`` (or a seed for one).

    >>> batches = list(minibatches(5, 2, np.random.default_rng(0)))
    >>> [len(rows) for rows in batches], sorted(np.concatenate(batches).tolist())
    ([2, 2, 1], [0, 1, 2, 3, 4])
    """
    if not _is_int(n) or n < 0:
        raise sg.ArgumentError(f"minibatches: n must be an integer >= 0, got {n!r}")
    if not _is_int(batch_size) or batch_size < 1:
        raise sg.ArgumentError(
            f"minibatches: batch_size must be an integer >= 1, got {batch_size!r}"
        )
    order = np.random.default_rng(rng).permutation(n)
    return (order[start : start + batch_size] for start in range(0, n, batch_size))


class SGD:
    """Stochastic gradient descent on NumPy arrays, updated in place.

    ``params`` maps names to float arrays (the optimiser keeps the arrays, in the dict's
    order).  Each :meth:`step` applies, with ``lr`` the current (step-decayed) rate,

    - ``momentum == 0`` (default): ``w -= lr * g``, the lecture's update exactly;
    - ``momentum > 0``, classical momentum: ``v = momentum * v - lr * g; w += v``, the
      velocity ``v`` of each parameter starting at zero.

    The rate is ``step_decay(lr, self.epoch, milestones, factor)``: call
    :meth:`next_epoch` after each epoch (or set ``epoch``).

    >>> W = np.array([1.0, 2.0])
    >>> opt = SGD({"W": W}, lr=0.5, milestones=(1,))
    >>> opt.step([np.array([1.0, 1.0])])
    >>> W
    array([0.5, 1.5])
    >>> opt.next_epoch()
    1
    >>> opt.lr
    0.05
    """

    def __init__(self, params, lr, milestones=(), factor=0.1, momentum=0.0):
        if not isinstance(params, Mapping) or not params:
            raise sg.ArgumentError(
                f"SGD: params must be a non-empty dict of name -> array, got {params!r}"
            )
        for name, w in params.items():
            if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.floating):
                what = w.dtype if isinstance(w, np.ndarray) else type(w).__name__
                raise sg.ArgumentError(
                    f"SGD: parameter {name!r} must be a float NumPy array (it is updated "
                    f"in place), got {what}"
                )
            if not w.flags.writeable:
                raise sg.ArgumentError(f"SGD: parameter {name!r} is a read-only array")
        self.params = dict(params)
        self.base_lr = _real("lr", lr, low=0.0)
        self.milestones = tuple(milestones)
        self.factor = _real("factor", factor, low=0.0)
        self.momentum = _real("momentum", momentum, low=0.0, below=1.0)
        self.epoch = 0
        self._velocity = {}

    @property
    def lr(self):
        """The learning rate of the current epoch."""
        return step_decay(self.base_lr, self.epoch, self.milestones, self.factor)

    def next_epoch(self):
        """Start the next epoch (the rate drops at each milestone); returns its number."""
        self.epoch += 1
        return self.epoch

    def step(self, grads):
        """Update every parameter from its gradient.

        ``grads`` is a list in the order of ``params`` (what ``value_and_grad`` returns for
        ``wrt`` in that order) or a dict by name; with one parameter, its gradient alone
        will do.  All gradients are checked before any parameter changes.
        """
        grads = self._match(grads)
        lr = self.lr
        for name, w in self.params.items():
            g = grads[name]
            if self.momentum == 0.0:
                w -= lr * g
            else:
                v = self._velocity.setdefault(name, np.zeros_like(w))
                v *= self.momentum
                v -= lr * g
                w += v

    def _match(self, grads):
        """``grads`` as a dict name -> array, every shape equal to its parameter's."""
        names = list(self.params)
        if isinstance(grads, (np.ndarray, float, int)):  # value_and_grad's one-tensor form
            grads = [grads]
        if isinstance(grads, Mapping):
            missing = [n for n in names if n not in grads]
            unknown = [n for n in grads if n not in self.params]
            if missing or unknown:
                raise sg.ArgumentError(
                    f"SGD.step: grads must have one entry per parameter {names}; "
                    f"missing {missing}, unknown {unknown}"
                )
        else:
            try:
                grads = list(grads)
            except TypeError:
                raise sg.ArgumentError(
                    f"SGD.step: grads must be a list or a dict of arrays, got {grads!r}"
                ) from None
            if len(grads) != len(names):
                raise sg.ArgumentError(
                    f"SGD.step: got {len(grads)} gradients for {len(names)} parameters "
                    f"{names}; pass them in that order, or as a dict by name"
                )
            grads = dict(zip(names, grads))
        checked = {}
        for name in names:
            g = np.asarray(grads[name])
            if g.shape != self.params[name].shape:
                raise sg.ShapeError(
                    f"SGD.step: the gradient for {name!r} has shape {g.shape}, but the "
                    f"parameter has shape {self.params[name].shape}"
                )
            checked[name] = g
        return checked

    def __repr__(self):
        return (
            f"SGD(params={list(self.params)}, lr={self.base_lr}, milestones={self.milestones}, "
            f"factor={self.factor}, momentum={self.momentum}, epoch={self.epoch})"
        )


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _real(name, value, low, below=math.inf):
    """``value`` as a float in ``[low, below)``, or an ArgumentError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not low <= number < below:
        bounds = f"in [{low}, {below})" if below < math.inf else f">= {low} and finite"
        raise sg.ArgumentError(f"SGD: {name} must be a number {bounds}, got {value!r}")
    return number
