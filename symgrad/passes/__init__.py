"""Graph -> graph passes, and the order the compiler runs them in."""

from .fuse import fuse
from .share import share_calls
from .simplify import simplify


def optimize(outputs):
    """The simplification pipeline: identities and folding, fusion, sharing of calls that
    several fused formulas make, then identities again (fusion exposes new constants)."""
    return simplify(share_calls(fuse(simplify(outputs))))


__all__ = ["optimize", "simplify", "fuse", "share_calls"]
