"""Graph -> graph passes, and the order the compiler runs them in."""

from .fuse import fuse
from .simplify import simplify


def optimize(outputs):
    """The simplification pipeline: identities and folding, fusion, then identities again
    (fusion exposes new constant formulas)."""
    return simplify(fuse(simplify(outputs)))


__all__ = ["optimize", "simplify", "fuse"]
