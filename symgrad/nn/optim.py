"""Optimisers on NumPy arrays (SGD, Adam, AdamW, RMSprop), minibatches, step decay.

The lecture's training recipe.

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

Every optimiser updates the arrays of ``params`` in place from a gradient dict (or list
in ``params``' order), with PyTorch's ``torch.optim`` update formula and defaults (each
written out in its docstring; ``t`` counts steps from 1, ``lr`` is the current epoch's rate
``lr * schedule(epoch)``, see ``sg.nn.schedules``).  All gradients are checked (names and
shapes) before any parameter changes.

Only NumPy and the public ``symgrad`` API are used here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

import symgrad as sg

from . import schedules

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "minibatches", "step_decay"]


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


class Optimizer:
    """What every optimiser shares: the parameters, the epoch, the rate, gradient checks.

    ``params`` maps names to float NumPy arrays, updated in place (the optimiser keeps the
    arrays, in the dict's order).  ``lr`` is the base rate; the rate of epoch ``e`` is
    ``lr * schedule(e)`` (``schedule`` any callable of the epoch, by default constant).
    Subclasses implement ``_update(name, w, g, lr)`` for one parameter and keep their
    per-parameter state in ``self.state[name]``.
    """

    def __init__(self, params, lr, schedule=None):
        kind = type(self).__name__
        if not isinstance(params, Mapping) or not params:
            raise sg.ArgumentError(
                f"{kind}: params must be a non-empty dict of name -> array, got {params!r}"
            )
        for name, w in params.items():
            if not isinstance(w, np.ndarray) or not np.issubdtype(w.dtype, np.floating):
                what = w.dtype if isinstance(w, np.ndarray) else type(w).__name__
                raise sg.ArgumentError(
                    f"{kind}: parameter {name!r} must be a float NumPy array (it is updated "
                    f"in place), got {what}"
                )
            if not w.flags.writeable:
                raise sg.ArgumentError(f"{kind}: parameter {name!r} is a read-only array")
        if schedule is not None and not callable(schedule):
            raise sg.ArgumentError(
                f"{kind}: schedule must be a function of the epoch (see sg.nn.schedules), "
                f"got {schedule!r}"
            )
        self.params = dict(params)
        self.base_lr = self._real("lr", lr, low=0.0)
        self.schedule = schedule if schedule is not None else schedules.constant()
        self.epoch = 0
        self.steps = 0  # t - 1: the number of steps taken
        self.state = {name: {} for name in self.params}

    @property
    def lr(self):
        """The learning rate of the current epoch: ``base_lr * schedule(epoch)``."""
        return self.base_lr * self.schedule(self.epoch)

    def next_epoch(self):
        """Start the next epoch (the schedule's rate applies); returns its number."""
        self.epoch += 1
        return self.epoch

    def step(self, grads):
        """Update every parameter in place from its gradient.

        ``grads`` is a dict by name (what ``value_and_grad`` returns for a dict ``wrt``) or a
        list in the order of ``params``; with one parameter, its gradient alone will do.
        All gradients are checked before any parameter changes.
        """
        grads = self._match(grads)
        lr = self.lr
        self.steps += 1
        for name, w in self.params.items():
            self._update(name, w, grads[name], lr)

    def _update(self, name, w, g, lr):
        raise NotImplementedError

    def _match(self, grads):
        """``grads`` as a dict name -> array, every shape equal to its parameter's."""
        kind, names = type(self).__name__, list(self.params)
        if isinstance(grads, (np.ndarray, float, int)):  # value_and_grad's one-tensor form
            grads = [grads]
        if isinstance(grads, Mapping):
            missing = [n for n in names if n not in grads]
            unknown = [n for n in grads if n not in self.params]
            if missing or unknown:
                raise sg.ArgumentError(
                    f"{kind}.step: grads must have one entry per parameter {names}; "
                    f"missing {missing}, unknown {unknown}"
                )
        else:
            try:
                grads = list(grads)
            except TypeError:
                raise sg.ArgumentError(
                    f"{kind}.step: grads must be a list or a dict of arrays, got {grads!r}"
                ) from None
            if len(grads) != len(names):
                raise sg.ArgumentError(
                    f"{kind}.step: got {len(grads)} gradients for {len(names)} parameters "
                    f"{names}; pass them in that order, or as a dict by name"
                )
            grads = dict(zip(names, grads))
        checked = {}
        for name in names:
            g = np.asarray(grads[name])
            if g.shape != self.params[name].shape:
                raise sg.ShapeError(
                    f"{kind}.step: the gradient for {name!r} has shape {g.shape}, but the "
                    f"parameter has shape {self.params[name].shape}"
                )
            checked[name] = g
        return checked

    def _real(self, name, value, low, below=math.inf, high=None):
        """``value`` as a float in ``[low, below)`` (or ``[low, high]``), else an error."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        inside = low <= number <= high if high is not None else low <= number < below
        if isinstance(value, bool) or not inside or math.isinf(number):
            if high is not None:
                bounds = f"in [{low}, {high}]"
            else:
                bounds = f"in [{low}, {below})" if below < math.inf else f">= {low} and finite"
            raise sg.ArgumentError(
                f"{type(self).__name__}: {name} must be a number {bounds}, got {value!r}"
            )
        return number

    def _state(self, name, key, like):
        """The per-parameter buffer ``key`` (zeros like ``like`` on first use)."""
        return self.state[name].setdefault(key, np.zeros_like(like))

    def __repr__(self):
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}(params={list(self.params)}, {hyper}, epoch={self.epoch})"

    def hyperparameters(self):
        """The constructor's numbers, by name (``lr`` is the base rate)."""
        return {"lr": self.base_lr}


class SGD(Optimizer):
    """Stochastic gradient descent (``torch.optim.SGD``), with optional step decay.

    Per parameter ``w`` with gradient ``g`` at step ``t``::

        g = g + weight_decay * w                  # if weight_decay != 0
        if momentum != 0:
            b = g if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        w -= lr * g

    With the defaults that is the lecture's ``w -= lr * g`` exactly.  ``lr`` has no default
    (PyTorch's is 1e-3); the arguments after ``momentum`` are keyword-only, since PyTorch's
    positional order (``dampening`` third) differs from the one documented here.  Step decay: ``milestones``/``factor`` are a shorthand for
    ``schedule=sg.nn.schedules.step(milestones, factor)``.

    >>> W = np.array([1.0, 2.0])
    >>> opt = SGD({"W": W}, lr=0.5, milestones=(1,))
    >>> opt.step({"W": np.array([1.0, 1.0])})
    >>> W
    array([0.5, 1.5])
    >>> opt.next_epoch()
    1
    >>> opt.lr
    0.05
    """

    def __init__(
        self,
        params,
        lr,
        momentum=0.0,
        *,
        nesterov=False,
        weight_decay=0.0,
        dampening=0.0,
        milestones=(),
        factor=0.1,
        schedule=None,
    ):
        factor = self._real("factor", factor, low=0.0)
        if milestones:
            if schedule is not None:
                raise sg.ArgumentError("SGD: give either milestones (step decay) or a schedule")
            schedule = schedules.step(tuple(milestones), factor)
        super().__init__(params, lr, schedule)
        self.momentum = self._real("momentum", momentum, low=0.0, below=1.0)
        self.dampening = self._real("dampening", dampening, low=0.0, high=1.0)
        self.weight_decay = self._real("weight_decay", weight_decay, low=0.0)
        if not isinstance(nesterov, bool):
            raise sg.ArgumentError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise sg.ArgumentError("SGD: nesterov needs momentum > 0 and dampening = 0")
        self.nesterov = nesterov

    @property
    def milestones(self):
        return getattr(self.schedule, "milestones", ())

    def _update(self, name, w, g, lr):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            state = self.state[name]
            if "momentum_buffer" not in state:
                b = state["momentum_buffer"] = np.array(g, dtype=w.dtype)
            else:
                b = state["momentum_buffer"]
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        w -= lr * g

    def hyperparameters(self):
        return {
            "lr": self.base_lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "dampening": self.dampening,
            "milestones": self.milestones,
        }


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, ``amsgrad=False``): defaults lr=1e-3, betas=(0.9, 0.999),
    eps=1e-8, weight_decay=0.

    Per parameter at step ``t``, with ``m`` and ``v`` starting at zero::

        g = g + weight_decay * w                  # L2 penalty in the gradient (if != 0)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    >>> w = np.array([1.0])
    >>> Adam({"w": w}, lr=0.1).step({"w": np.array([3.0])})   # first step: lr * sign(g)
    >>> w
    array([0.9])
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, schedule=None
    ):
        super().__init__(params, lr, schedule)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise sg.ArgumentError(
                f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}"
            ) from None
        self.betas = (
            self._real("betas[0]", beta1, low=0.0, below=1.0),
            self._real("betas[1]", beta2, low=0.0, below=1.0),
        )
        self.eps = self._real("eps", eps, low=0.0)
        self.weight_decay = self._real("weight_decay", weight_decay, low=0.0)

    def _update(self, name, w, g, lr):
        if self.weight_decay:
            g = g + self.weight_decay * w
        self._adam(name, w, g, lr)

    def _adam(self, name, w, g, lr):
        beta1, beta2 = self.betas
        t = self.steps
        m, v = self._state(name, "exp_avg", w), self._state(name, "exp_avg_sq", w)
        m += (1 - beta1) * (g - m)  # torch's lerp: m + (1 - beta1) * (g - m)
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = lr / (1 - beta1**t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        w -= step_size * (m / denom)

    def hyperparameters(self):
        return {
            "lr": self.base_lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay; defaults lr=1e-3,
    betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2.

    Per parameter at step ``t``::

        w *= 1 - lr * weight_decay                # decay first, not through the gradient
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, schedule=None
    ):
        super().__init__(params, lr, betas, eps, weight_decay, schedule=schedule)

    def _update(self, name, w, g, lr):
        w *= 1 - lr * self.weight_decay
        self._adam(name, w, g, lr)


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``): defaults lr=1e-2, alpha=0.99, eps=1e-8,
    weight_decay=0, momentum=0, centered=False.

    Per parameter, with ``v``, ``b`` and ``a`` starting at zero::

        g = g + weight_decay * w                  # if weight_decay != 0
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            d = sqrt(v - a * a) + eps
        else:
            d = sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / d
            w -= lr * b
        else:
            w -= lr * g / d
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        *,
        schedule=None,
    ):
        super().__init__(params, lr, schedule)
        self.alpha = self._real("alpha", alpha, low=0.0, high=1.0)
        self.eps = self._real("eps", eps, low=0.0)
        self.weight_decay = self._real("weight_decay", weight_decay, low=0.0)
        self.momentum = self._real("momentum", momentum, low=0.0, below=1.0)
        if not isinstance(centered, bool):
            raise sg.ArgumentError(f"RMSprop: centered must be True or False, got {centered!r}")
        self.centered = centered

    def _update(self, name, w, g, lr):
        if self.weight_decay:
            g = g + self.weight_decay * w
        v = self._state(name, "square_avg", w)
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        if self.centered:
            a = self._state(name, "grad_avg", w)
            a += (1 - self.alpha) * (g - a)  # torch's lerp
            d = np.sqrt(v - a * a) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if self.momentum:
            b = self._state(name, "momentum_buffer", w)
            b *= self.momentum
            b += g / d
            w -= lr * b
        else:
            w -= lr * (g / d)

    def hyperparameters(self):
        return {
            "lr": self.base_lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
