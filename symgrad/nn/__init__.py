"""Neural-network pieces on top of the public API: losses, layers, optimisers, schedules,
and the training loop ``fit``."""

from . import losses, optim, schedules
from .layers import MLP, Linear
from .train import History, TrainingError, fit

__all__ = ["MLP", "History", "Linear", "TrainingError", "fit", "losses", "optim", "schedules"]
