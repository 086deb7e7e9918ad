"""Reverse-mode differentiation that builds graph nodes."""

from .reverse import grad, vjp

__all__ = ["grad", "vjp"]
