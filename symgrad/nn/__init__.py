"""Neural-network pieces on top of the public API: losses, and SGD in ``optim``."""

from . import losses, optim, schedules

__all__ = ["losses", "optim", "schedules"]
