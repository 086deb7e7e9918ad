"""Neural-network pieces on top of the public API: losses."""

from . import losses

__all__ = ["losses"]
