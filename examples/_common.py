"""Pieces the example scripts share: the symgrad import, the command line, small helpers.

The scripts run as ``python examples/NAME.py``, which puts this folder on ``sys.path``, so
they import from here with ``from _common import ...``.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

try:
    import symgrad as sg
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import symgrad as sg

__all__ = ["accuracy", "backend_kwargs", "make_parser", "sg"]


def backend_kwargs(name):
    """Pass ``backend=`` only when one was asked for, so the default is symgrad's own."""
    name = name or os.environ.get("SYMGRAD_BACKEND")
    return {"backend": name} if name else {}


def make_parser(doc, quick_help=None):
    """The examples' command line: ``--backend``, and ``--quick`` / ``--seed`` if
    ``quick_help`` (the help text of ``--quick``) is given.  The description is the first
    line of ``doc``, the script's docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--backend", choices=["numba", "numpy"], default=None)
    if quick_help is not None:
        parser.add_argument("--quick", action="store_true", help=quick_help)
        parser.add_argument("--seed", type=int, default=0)
    return parser


def accuracy(predict, X, y, **params):
    """Share of rows of ``X`` whose highest score from ``predict`` is at the label ``y``."""
    return float(np.mean(np.argmax(predict(X=X, **params), axis=1) == y))
