"""Learning-rate schedules: the factor the base rate is multiplied by, as a function of epoch.

A schedule is a callable ``schedule(epoch) -> factor``; an optimiser given
``schedule=...`` runs epoch ``e`` at ``lr * schedule(e)`` (any callable of the epoch will
do).  Epochs count from 0, as ``optimizer.epoch`` does; call ``optimizer.next_epoch()``
after each epoch (``sg.nn.fit`` does).  The same schedule object can drive any optimiser::

    opt = sg.nn.optim.Adam(params, lr=1e-3, schedule=sg.nn.schedules.step())

=============  ===============================================================  ===========
schedule        factor at epoch ``e``                                            PyTorch
=============  ===============================================================  ===========
``constant()``  ``1``                                                            ``ConstantLR(factor=1)``
``step()``      ``factor ** (number of milestones m with e >= m)``               ``MultiStepLR``
``exponential`` ``gamma ** e``                                                   ``ExponentialLR``
``cosine``      ``min + (1 - min) * (1 + cos(pi * min(e, epochs) / epochs)) / 2``  ``CosineAnnealingLR``
=============  ===============================================================  ===========

``step()``'s defaults are the lecture's: x0.1 after epochs 30, 60 and 90 (ResNets).
The cosine factor stays at ``min`` after ``epochs`` (PyTorch's closed form would rise again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ArgumentError

__all__ = ["Constant", "Cosine", "Exponential", "Step", "constant", "cosine", "exponential", "step"]


def _epoch(epoch):
    if isinstance(epoch, bool) or not float(epoch).is_integer() or epoch < 0:
        raise ArgumentError(f"a schedule takes an epoch, an integer >= 0, got {epoch!r}")
    return int(epoch)


def _number(what, value, low, high=math.inf, high_open=False):
    """``value`` as a float in ``[low, high]`` (``[low, high)`` if ``high_open``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    inside = low <= number < high if high_open else low <= number <= high
    if isinstance(value, bool) or not inside or math.isinf(number):
        bracket = ")" if high_open or high == math.inf else "]"
        raise ArgumentError(f"{what} must be a number in [{low}, {high}{bracket}, got {value!r}")
    return number


@dataclass(frozen=True)
class Constant:
    """Factor 1 at every epoch.

    >>> constant()(0), constant()(1000)
    (1.0, 1.0)
    """

    def __call__(self, epoch):
        _epoch(epoch)
        return 1.0


@dataclass(frozen=True)
class Step:
    """Step decay: ``factor`` once per milestone reached (the lecture's ResNet recipe).

    Epoch ``m`` is the first one run at the reduced rate (PyTorch's ``MultiStepLR``).

    >>> s = step()
    >>> [f"{s(e):g}" for e in (0, 29, 30, 59, 60, 89, 90, 500)]
    ['1', '1', '0.1', '0.1', '0.01', '0.01', '0.001', '0.001']
    """

    milestones: tuple = (30, 60, 90)
    factor: float = 0.1

    def __post_init__(self):
        try:
            milestones = tuple(self.milestones)
        except TypeError:
            milestones = None
        if milestones is None or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones
        ):
            raise ArgumentError(
                f"step: milestones must be integers >= 0 (epochs), got {self.milestones!r}"
            )
        object.__setattr__(self, "milestones", milestones)
        object.__setattr__(self, "factor", _number("step: factor", self.factor, 0.0))

    def __call__(self, epoch):
        epoch = _epoch(epoch)
        rate = 1.0
        for milestone in self.milestones:
            if epoch >= milestone:
                rate *= self.factor  # repeated multiplication, as `lr *= 0.1` by hand
        return rate


@dataclass(frozen=True)
class Exponential:
    """``gamma ** epoch`` (PyTorch's ``ExponentialLR``).

    >>> exponential(0.5)(3)
    0.125
    """

    gamma: float

    def __post_init__(self):
        object.__setattr__(self, "gamma", _number("exponential: gamma", self.gamma, 0.0))

    def __call__(self, epoch):
        return self.gamma ** _epoch(epoch)


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing from 1 down to ``min_factor`` over ``epochs`` epochs, then flat.

    ``min_factor + (1 - min_factor) * (1 + cos(pi * e / epochs)) / 2`` for ``e <= epochs``
    (PyTorch's ``CosineAnnealingLR`` with ``T_max=epochs``, ``eta_min=min_factor * lr``).

    >>> c = cosine(10)
    >>> [round(c(e), 4) for e in (0, 5, 10, 20)]
    [1.0, 0.5, 0.0, 0.0]
    """

    epochs: int
    min_factor: float = 0.0

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ArgumentError(f"cosine: epochs must be an integer >= 1, got {self.epochs!r}")
        object.__setattr__(
            self, "min_factor", _number("cosine: min_factor", self.min_factor, 0.0, 1.0)
        )

    def __call__(self, epoch):
        progress = min(_epoch(epoch), self.epochs) / self.epochs
        return self.min_factor + (1.0 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2


def constant():
    """The constant schedule (factor 1)."""
    return Constant()


def step(milestones=(30, 60, 90), factor=0.1):
    """Step decay: x``factor`` after each epoch in ``milestones`` (default x0.1 at 30, 60, 90)."""
    return Step(milestones, factor)


def exponential(gamma):
    """Exponential decay: factor ``gamma ** epoch``."""
    return Exponential(gamma)


def cosine(epochs, min_factor=0.0):
    """Cosine annealing to ``min_factor`` over ``epochs`` epochs."""
    return Cosine(epochs, min_factor)
