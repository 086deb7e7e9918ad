"""Backends lower an optimised graph to something callable.

A backend is a function ``build(outputs, signature, options, given=()) -> program``, where
``program(values, dims, given_values=())`` takes the bound input values (in the order of
``signature.inputs``), the named dim sizes and the values of the ``given`` nodes (saved
forward values, for a backward program), returns the output values in order, and
``program.source`` shows what runs.
Backends import neither ``autodiff`` nor ``passes``: they see finished graphs only.
"""

from ..errors import ArgumentError

BACKENDS = ("numba", "numpy", "auto")


def get(name: str):
    """The ``build`` function of backend ``name``."""
    if name == "numpy":
        from .numpy_backend import build
    elif name == "numba":
        from .numba_backend import build
    elif name == "auto":  # the interpreter at once, the Numba kernel when compiled
        from .tiered import build
    else:
        raise ArgumentError(f"backend must be one of {BACKENDS}, got {name!r}")
    return build


def settings(name: str) -> tuple:
    """What backend ``name``'s programs depend on besides the graph and the options (its
    code generator's settings and versions): part of a warm-start key."""
    if name == "numba":  # ("auto" stores no kernel key: see compile._store_graph)
        from .numba_backend import settings

        return settings()
    return ()
